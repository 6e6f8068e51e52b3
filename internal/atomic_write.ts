/**
 * Writing a file so that readers see either the old contents or the new, never half of them.
 *
 * @module
 */
import { join } from "node:path";

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
  const temp = tempPathBeside(path);
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

/** A fresh temporary file name in the folder of `path`: `.<name>.<uuid>.tmp`. */
function tempPathBeside(path: string): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
}

/** The largest single write of {@linkcode writeAll}. */
const IO_CHUNK_BYTES = 1 << 30;

/**
 * Writes all of `bytes` to `file`, in writes of at most 1 GiB.
 *
 * @param file An open file.
 * @param bytes The bytes.
 * @returns Nothing once every byte is written.
 *
 * @example Append to an open file
 * ```ts
 * import { writeAll } from "./atomic_write.ts";
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path, { write: true });
 * await writeAll(file, new TextEncoder().encode("hello"));
 * ```
 */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(
      bytes.subarray(written, Math.min(bytes.length, written + IO_CHUNK_BYTES)),
    );
  }
}

/** Options of {@linkcode writeFileAtomicStreamed}. */
export interface WriteFileAtomicStreamedOptions {
  /** The error to throw when the temporary file cannot be created (default: the error itself). */
  createError?: (error: unknown, temp: string) => Error;
}

/**
 * {@linkcode writeFileAtomic} for contents written piece by piece: `write` fills a new temporary
 * file beside `path` (with {@linkcode writeAll}), which is then flushed to disk and renamed over
 * `path`; if anything fails the temporary file is removed and `path` is untouched.
 *
 * @param path The destination file.
 * @param write Writes the contents to the open temporary file.
 * @param options How a failure to create the temporary file is reported.
 * @returns Nothing once the file is in place.
 *
 * @example Write a file in two pieces
 * ```ts
 * import { writeAll, writeFileAtomicStreamed } from "./atomic_write.ts";
 * const dir = await Deno.makeTempDir();
 * const text = new TextEncoder();
 * await writeFileAtomicStreamed(`${dir}/a.txt`, async (file) => {
 *   await writeAll(file, text.encode("hello "));
 *   await writeAll(file, text.encode("world"));
 * });
 * console.log(await Deno.readTextFile(`${dir}/a.txt`)); // hello world
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomicStreamed(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
  options: WriteFileAtomicStreamedOptions = {},
): Promise<void> {
  const temp = tempPathBeside(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(temp, { write: true, createNew: true });
  } catch (error) {
    throw options.createError?.(error, temp) ?? error;
  }
  let closed = false;
  try {
    await write(file);
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

/**
 * Writes each file of a directory tree to disk (fsync), so a rename publishes complete files.
 *
 * @param dir The directory.
 *
 * @example Usage
 * ```ts
 * import { syncTree } from "./atomic_write.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "1");
 * await syncTree(dir);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function syncTree(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await syncTree(path);
    else if (entry.isFile) {
      using file = await Deno.open(path, { read: true, write: true });
      await file.sync();
    }
  }
}
