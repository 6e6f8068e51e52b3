// Copyright 2025 the halo authors. MIT license.
/**
 * Paths compared as the file system sees them, for "is this output inside that input" checks.
 *
 * @module
 */
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";

/**
 * The absolute path with symbolic links resolved as far as it exists (a path that does not exist
 * yet keeps its missing tail under its nearest existing, resolved, ancestor).
 *
 * @param path Any path.
 * @returns The resolved absolute path.
 *
 * @example Usage
 * ```ts
 * import { realPathLoose } from "./real_path.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.realPath(await Deno.makeTempDir());
 * assert.equal(await realPathLoose(`${dir}/not/yet`), `${dir}/not/yet`);
 * await Deno.remove(dir);
 * ```
 */
export async function realPathLoose(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await Deno.realPath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realPathLoose(parent), basename(abs));
  }
}

/**
 * Whether `child` is `parent` or lies below it (both absolute, compared as written).
 *
 * @param parent A directory path.
 * @param child Another path.
 * @returns `true` when `child` is inside `parent` or equal to it.
 *
 * @example Usage
 * ```ts
 * import { isWithin } from "./real_path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isWithin("/m", "/m/out.gguf"), true);
 * assert.equal(isWithin("/m", "/m2/out.gguf"), false);
 * ```
 */
export function isWithin(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}
