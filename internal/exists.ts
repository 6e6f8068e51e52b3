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
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
