/**
 * Whether a path exists.
 *
 * @module
 */

/**
 * Whether `path` exists (file, directory or anything else); errors other than "not found" (for
 * example a permission error) are thrown, not read as "missing".
 *
 * @param path The path.
 * @returns `true` when it exists.
 *
 * @example A directory that exists and a file that does not
 * ```ts
 * import { exists } from "./exists.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(await exists("."), true);
 * strictEqual(await exists("./no-such-file-here.txt"), false);
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  return (await statIfExists(path)) !== null;
}

/**
 * `Deno.stat` of `path` (links followed), or `null` when it does not exist; other errors are
 * thrown.
 *
 * @param path The path.
 * @returns Its file info, or `null`.
 *
 * @example Usage
 * ```ts
 * import { statIfExists } from "./exists.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual((await statIfExists("."))?.isDirectory, true);
 * strictEqual(await statIfExists("./no-such-file-here.txt"), null);
 * ```
 */
export async function statIfExists(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
