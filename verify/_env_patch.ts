// Copyright 2025 the halo authors. MIT license.
// Internal: the Compute Engine's LaTeX module reads `process.env.CE_CACHE_STATS` and
// `process.env.CE_TYPE_FACTS_ASSERT` while it loads. Under Deno without `--allow-env` that
// read throws `NotCapable` and the whole import fails (e.g. `deno task verify`, which only
// has `--allow-read`). While that module loads, reads that are not permitted return
// `undefined` instead of throwing; `_env_restore.ts`, imported right after the library,
// puts the original `process.env` back. Nothing changes when env access is granted.

interface ProcessLike {
  env?: object;
}

const proc = (globalThis as { process?: ProcessLike }).process;

/** The original `process.env`, restored by `_env_restore.ts`. */
export const savedEnv: object | undefined = proc?.env;

function envGranted(): boolean {
  try {
    return Deno.permissions.querySync({ name: "env" }).state === "granted";
  } catch {
    return true;
  }
}

if (proc !== undefined && savedEnv !== undefined && !envGranted()) {
  const real = savedEnv;
  // The target is a fresh object so that Proxy invariant checks never reach the real
  // (permission-checked) environment object.
  proc.env = new Proxy({}, {
    get(_target, key) {
      try {
        return Reflect.get(real, key);
      } catch {
        return undefined;
      }
    },
    has(_target, key) {
      try {
        return Reflect.has(real, key);
      } catch {
        return false;
      }
    },
  });
}
