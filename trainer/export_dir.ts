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
}

/**
 * Checks an export directory before anything is trained: it must not exist, or be an empty
 * directory or a previous halo export (holding {@linkcode EXPORT_MARKER}, or only the files an
 * export writes); it must not be a file, nor `model.path`, inside it, or a folder holding it.
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
  const info = await statIfExists(dir);
  if (info === null) return;
  if (!info.isDirectory) {
    throw new RangeError(`${what}: it is a file; ${flag} takes a directory (created if missing)`);
  }
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  if (names.length === 0 || names.includes(EXPORT_MARKER)) return;
  const foreign = names.filter((n) => !EXPORT_FILES.has(n)).sort();
  if (foreign.length > 0) {
    throw new RangeError(
      `${what}: it holds files that are not a halo export (${foreign.slice(0, 5).join(", ")}` +
        `${foreign.length > 5 ? ", ..." : ""}), which an export would replace: give an empty ` +
        `or new directory, or a previous export`,
    );
  }
}

/**
 * Writes an export: `write` fills a temporary directory beside `dir` (plus
 * {@linkcode EXPORT_MARKER}), its files are flushed, then it is renamed to `dir`. A previous export
 * at `dir` is renamed away first and deleted after: no file of it survives beside the new one. A
 * failed write removes the temporary directory and leaves `dir` as it was.
 *
 * @param dir The export directory (checked with {@linkcode checkExportDir} first).
 * @param write Writes the export's files into the directory it is given.
 * @param marker What the marker file records besides `format`; default nothing.
 *
 * @example Usage
 * ```ts
 * import { writeExportDir } from "./export_dir.ts";
 * import assert from "node:assert/strict";
 *
 * const root = await Deno.makeTempDir();
 * await writeExportDir(`${root}/e`, (tmp) => Deno.writeTextFile(`${tmp}/a.json`, "1"));
 * await writeExportDir(`${root}/e`, (tmp) => Deno.writeTextFile(`${tmp}/b.json`, "2"));
 * assert.deepEqual([...Deno.readDirSync(`${root}/e`)].map((e) => e.name).sort(), [
 *   "b.json",
 *   "halo_export.json",
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeExportDir(
  dir: string,
  write: (tmp: string) => Promise<unknown>,
  marker: Record<string, unknown> = {},
): Promise<void> {
  const parent = dirname(resolve(dir));
  const name = basename(resolve(dir));
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
