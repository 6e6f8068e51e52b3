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
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await Deno.open(temp, { write: true, createNew: true });
  let closed = false;
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
    file.close();
    closed = true;
    await Deno.rename(temp, path);
  } catch (error) {
    if (!closed) file.close();
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
