/**
 * Writing a file so that readers see either the old contents or the new, never half of them.
 *
 * @module
 */

/**
 * Writes `data` to a temporary file beside `path`, flushes it to disk, then renames it over
 * `path`; on failure the temporary file is removed and `path` is untouched.
 *
 * @param path The destination file.
 * @param data The contents (a string is written as UTF-8).
 * @returns Nothing once the file is in place.
 *
 * @example Write a JSON file atomically
 * ```ts
 * import { writeFileAtomic } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/config.json`, JSON.stringify({ a: 1 }));
 * console.log(await Deno.readTextFile(`${dir}/config.json`)); // {"a":1}
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const temp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  try {
    await writeFileSynced(temp, data);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/**
 * Creates `path` (it must not exist yet), writes `data` to it and flushes it to disk before
 * returning: the building block of {@linkcode writeFileAtomic}, and of writers that make a whole
 * folder atomic by renaming the folder.
 *
 * @param path The new file.
 * @param data The contents (a string is written as UTF-8).
 * @returns Nothing once the contents are on disk.
 *
 * @example Write a file that must be new
 * ```ts
 * import { writeFileSynced } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileSynced(`${dir}/meta.json`, "{}");
 * console.log(await Deno.readTextFile(`${dir}/meta.json`)); // {}
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileSynced(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
}
