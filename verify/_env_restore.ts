// Copyright 2025 the halo authors. MIT license.
// Internal: restores `process.env` after the Compute Engine module loaded (see
// `_env_patch.ts`).

import { savedEnv } from "./_env_patch.ts";

const proc = (globalThis as { process?: { env?: object } }).process;
if (proc !== undefined && savedEnv !== undefined) proc.env = savedEnv;
