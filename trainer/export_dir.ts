/**
 * The `--export DIR` (and `<run>/final`) directory of a run: checked before training, written
 * into a temporary directory beside it and renamed into place, so that it never mixes files of
 * two exports (a stale `chat_template.jinja` or `adapter_config.json` beside a new model) and a
 * run killed mid-export leaves the previous export whole.
 *
 * @example Check, then write
 * ```ts
 * import { checkExportDir, writeExportDir } from "./export_dir.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * try {
 *   const dir = `${root}/export`;
 *   await checkExportDir(dir, { modelPath: "models/arithmetic-tiny" });
 *   await writeExportDir(dir, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "{}"));
 *   assert.equal(await Deno.readTextFile(`${dir}/config.json`), "{}");
 * } finally {
 *   await Deno.remove(root, { recursive: true });
 * }
 * ```
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { syncTree } from "../internal/atomic_write.ts";
import { statIfExists } from "../internal/exists.ts";
import { isWithin, realPathLoose } from "../internal/real_path.ts";

/** The file every export holds: says the directory is a halo export (and may be replaced). */
export const EXPORT_MARKER = "halo_export.json";

/** The files a halo export writes (a directory of only these, from before the marker, is one). */
const EXPORT_FILES: ReadonlySet<string> = new Set([
  EXPORT_MARKER,
  "config.json",
  "model.safetensors",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
  "adapter_config.json",
  "adapter_model.safetensors",
]);

/** Options of {@linkcode checkExportDir}. */
export interface CheckExportDirOptions {
  /** The run's `model.path` (the base model): the export may not be it, inside it or above it. */
  modelPath?: string;
  /** How the error names the directory; default `--export`. */
  flag?: string;
  /** Told what an interrupted export left behind and what was done with it; default
   * `console.warn` (prefixed `Warning: `). */
  warn?: (message: string) => void;
}

/**
 * Checks an export directory before anything is trained: it must not exist, or be an empty
 * directory or a previous halo export (only the files an export writes, with or without
 * {@linkcode EXPORT_MARKER}: a marked directory that also holds other files is refused, since a
 * replace would delete them); it must not be a file, nor `model.path`, inside it, or a folder
 * holding it.
 *
 * It first cleans up after an export that was killed midway (see {@linkcode writeExportDir}):
 * when `dir` is missing and the previous export sits renamed aside as `.NAME.old-<uuid>` beside
 * it (holding the marker), that is renamed back to `dir`; such folders left beside an existing
 * `dir`, and unfinished `.NAME.tmp-<uuid>` folders, are deleted. Only folders of exactly those
 * names that hold nothing but files an export writes are touched; each step is reported through
 * `warn`.
 *
 * @param dir The export directory.
 * @param options The run's model path and the flag to name.
 * @throws {RangeError} Naming the flag and what is wrong.
 *
 * @example Usage
 * ```ts
 * import { checkExportDir } from "./export_dir.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   checkExportDir("models/arithmetic-tiny", { modelPath: "models/arithmetic-tiny" }),
 *   /--export "models\/arithmetic-tiny" is the model directory/,
 * );
 * ```
 */
export async function checkExportDir(
  dir: string,
  options: CheckExportDirOptions = {},
): Promise<void> {
  const flag = options.flag ?? "--export";
  const what = `Cannot export to ${flag} "${dir}"`;
  const modelPath = options.modelPath;
  if (modelPath !== undefined && !modelPath.startsWith("builtin:")) {
    const target = await realPathLoose(dir);
    const model = await realPathLoose(modelPath);
    if (isWithin(target, model) || isWithin(model, target)) {
      throw new RangeError(
        `${what}: ${flag} "${dir}" is the model directory "${modelPath}" (key "model.path"), ` +
          `inside it or a folder holding it: the export would overwrite the base model; give ` +
          `another directory`,
      );
    }
  }
  await recoverExportDir(dir, options.warn ?? warnConsole);
  await checkReplaceable(dir, what, flag);
}

function warnConsole(message: string): void {
  console.warn(`Warning: ${message}`);
}

/** Throws unless `dir` is missing, empty, or holds only files an export writes. */
async function checkReplaceable(dir: string, what: string, flag: string): Promise<void> {
  const info = await statIfExists(dir);
  if (info === null) return;
  if (!info.isDirectory) {
    throw new RangeError(`${what}: it is a file; ${flag} takes a directory (created if missing)`);
  }
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  const foreign = names.filter((n) => !EXPORT_FILES.has(n)).sort();
  if (foreign.length === 0) return;
  const list = `${foreign.slice(0, 5).join(", ")}${foreign.length > 5 ? ", ..." : ""}`;
  throw new RangeError(
    names.includes(EXPORT_MARKER)
      ? `${what}: it is a halo export (it holds ${EXPORT_MARKER}) but also holds entries an ` +
        `export does not write (${list}), which replacing the export would delete: move them ` +
        `out, or give another directory`
      : `${what}: it holds files that are not a halo export (${list}), which an export would ` +
        `replace: give an empty or new directory, or a previous export`,
  );
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
/** A `writeFileAtomic` temporary file (`.NAME.<uuid>.tmp`), in a folder of a killed export. */
const ATOMIC_TEMP = new RegExp(`^\\.(.+)\\.${UUID}\\.tmp$`);

/** Whether a leftover folder holds only (plain) files an export writes, or their temporaries. */
async function holdsOnlyExportFiles(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) return false;
    if (EXPORT_FILES.has(entry.name)) continue;
    const temp = ATOMIC_TEMP.exec(entry.name);
    if (temp === null || !EXPORT_FILES.has(temp[1])) return false;
  }
  return true;
}

/**
 * Cleans up after a {@linkcode writeExportDir} that was killed: puts back the previous export a
 * replace had renamed aside (`.NAME.old-<uuid>`, holding the marker) when `dir` is missing, and
 * deletes the folders it leaves that are of no use: `.NAME.old-<uuid>` beside an existing `dir`
 * (the replace had landed) and unfinished `.NAME.tmp-<uuid>`. A folder of such a name that holds
 * anything but files an export writes is left alone (and reported). One process should export to
 * a directory at a time: another's export in progress would be removed.
 */
async function recoverExportDir(dir: string, warn: (message: string) => void): Promise<void> {
  const parent = dirname(resolve(dir));
  const name = basename(resolve(dir));
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch (error) {
    // A parent that is missing, or that may be written but not listed: nothing to recover.
    if (
      error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      return;
    }
    throw error;
  }
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const leftover = new RegExp(`^\\.${escaped}\\.(tmp|old)-${UUID}$`);
  const temps: string[] = [];
  const olds: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const match = leftover.exec(entry.name);
    // isDirectory is false for a symbolic link: a link is never followed, nor removed.
    if (match === null || !entry.isDirectory) continue;
    const path = join(parent, entry.name);
    if (!(await holdsOnlyExportFiles(path))) {
      warn(
        `export directory "${dir}": left "${path}" alone: its name is that of a folder an ` +
          `interrupted export leaves, but it holds entries an export does not write`,
      );
      continue;
    }
    (match[1] === "tmp" ? temps : olds).push(path);
  }
  if (olds.length > 0 && (await lstatIfExists(dir)) === null) {
    // A replace was killed between renaming the previous export aside and renaming the new one
    // into place: put the previous one back (the newest, when there are several).
    const marked: { path: string; mtime: number }[] = [];
    for (const old of olds) {
      const marker = await statIfExists(join(old, EXPORT_MARKER));
      if (marker !== null) marked.push({ path: old, mtime: marker.mtime?.getTime() ?? 0 });
    }
    const newest = marked.sort((a, b) => b.mtime - a.mtime)[0];
    if (newest === undefined) {
      warn(
        `export directory "${dir}" is missing and "${olds.join('", "')}" (the previous export ` +
          `a killed replace renamed aside) holds no ${EXPORT_MARKER}; left as it is: move it back ` +
          `to "${dir}" if it is a whole export, or delete it`,
      );
      olds.length = 0;
    } else {
      await Deno.rename(newest.path, dir);
      olds.splice(olds.indexOf(newest.path), 1);
      warn(
        `export directory "${dir}" was missing (an export was killed while replacing it): ` +
          `restored the previous export from "${newest.path}"`,
      );
    }
  }
  for (const old of olds) {
    await Deno.remove(old, { recursive: true });
    warn(`export directory "${dir}": removed "${old}", a previous export left by a killed replace`);
  }
  for (const temp of temps) {
    await Deno.remove(temp, { recursive: true });
    warn(`export directory "${dir}": removed "${temp}", the unfinished export of a killed run`);
  }
}

async function lstatIfExists(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Options of {@linkcode writeExportDir}. */
export interface WriteExportDirOptions {
  /** Told what a killed earlier export left behind and what was done with it; default
   * `console.warn` (prefixed `Warning: `). */
  warn?: (message: string) => void;
}

/**
 * Writes an export: `write` fills a temporary directory `.NAME.tmp-<uuid>` beside `dir` (plus
 * {@linkcode EXPORT_MARKER}), its files are flushed, then it is renamed to `dir`. A previous export
 * at `dir` is renamed away first (`.NAME.old-<uuid>`) and deleted after: no file of it survives
 * beside the new one. A failed write removes the temporary directory and leaves `dir` as it was;
 * what a killed one leaves is cleaned up first, as {@linkcode checkExportDir} does, and `dir` is
 * checked again (it may hold only files an export writes: `write` writes only those).
 *
 * @param dir The export directory (checked with {@linkcode checkExportDir} first).
 * @param write Writes the export's files into the directory it is given.
 * @param marker What the marker file records besides `format`; default nothing.
 * @param options Where warnings go.
 * @throws {RangeError} When `dir` is a file or holds files an export does not write.
 *
 * @example Usage
 * ```ts
 * import { writeExportDir } from "./export_dir.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await writeExportDir(`${root}/e`, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "1"));
 * await writeExportDir(`${root}/e`, (tmp) => Deno.writeTextFile(`${tmp}/tokenizer.json`, "2"));
 * assert.deepEqual([...Deno.readDirSync(`${root}/e`)].map((e) => e.name).sort(), [
 *   "halo_export.json",
 *   "tokenizer.json",
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeExportDir(
  dir: string,
  write: (tmp: string) => Promise<unknown>,
  marker: Record<string, unknown> = {},
  options: WriteExportDirOptions = {},
): Promise<void> {
  const parent = dirname(resolve(dir));
  const name = basename(resolve(dir));
  await recoverExportDir(dir, options.warn ?? warnConsole);
  await checkReplaceable(dir, `Cannot export to "${dir}"`, "the export directory");
  await Deno.mkdir(parent, { recursive: true });
  // mkdir honours the umask (makeTempDir would make the export private, mode 0700).
  const tmp = join(parent, `.${name}.tmp-${crypto.randomUUID()}`);
  await Deno.mkdir(tmp);
  let old: string | null = null;
  try {
    await write(tmp);
    await Deno.writeTextFile(
      join(tmp, EXPORT_MARKER),
      `${JSON.stringify({ format: "halo.export", ...marker }, null, 2)}\n`,
    );
    await syncTree(tmp);
    if (await Deno.stat(dir).then(() => true, () => false)) {
      old = join(parent, `.${name}.old-${crypto.randomUUID()}`);
      await Deno.rename(dir, old);
    }
    await Deno.rename(tmp, dir);
  } catch (error) {
    // Put the previous export back if the new one did not land.
    if (old !== null && !(await Deno.stat(dir).then(() => true, () => false))) {
      await Deno.rename(old, dir).catch(() => {});
      old = null;
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw error;
  }
  if (old !== null) await Deno.remove(old, { recursive: true }).catch(() => {});
}
