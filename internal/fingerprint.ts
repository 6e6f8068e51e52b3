/**
 * Fingerprints of model, adapter and data files: enough to notice that a file changed between
 * two runs (a resumed training, a resumed evaluation), fast enough for a 28 GB model.
 *
 * A weights file (`*.safetensors`) is **not hashed in full**: its fingerprint is its size and a
 * SHA-256 of its safetensors header (names, dtypes, shapes, offsets) plus
 * {@linkcode SAMPLE_WINDOWS} evenly spaced windows of {@linkcode SAMPLE_BYTES} bytes of its
 * tensor data (about 1 MiB read per file, whatever its size); a file no larger than that is hashed
 * whole. A change confined to bytes between the windows goes unnoticed: this is a fingerprint, not
 * a proof of identity. A fine-tuned copy of a model changes nearly every byte, so the windows see
 * it. Other files (`config.json`, a JSONL data file) are hashed in full.
 *
 * @example Record, then compare
 * ```ts
 * import { fingerprintDifference, fingerprintModel } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/config.json`, "{}");
 *   const before = await fingerprintModel(dir);
 *   assert.equal(fingerprintDifference(before, await fingerprintModel(dir)), null);
 *   await Deno.writeTextFile(`${dir}/config.json`, '{"a": 1}');
 *   assert.match(fingerprintDifference(before, await fingerprintModel(dir))!, /config\.json/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { createHash } from "node:crypto";
import { isPlainObject } from "./is_plain_object.ts";
import { show } from "./show.ts";

/** How many windows of a weights file's tensor data are hashed. */
export const SAMPLE_WINDOWS = 16;
/** The size of each window, in bytes (64 KiB). */
export const SAMPLE_BYTES = 64 * 1024;

/**
 * One file's fingerprint.
 *
 * @example Usage
 * ```ts
 * import type { FileFingerprint } from "./fingerprint.ts";
 *
 * const f: FileFingerprint = { bytes: 2, sha256: "0".repeat(64), sampled: false };
 * ```
 */
export interface FileFingerprint {
  /** The file's size in bytes. */
  bytes: number;
  /** SHA-256 (lowercase hex) of the whole file, or of its header and sampled windows. */
  sha256: string;
  /** `true`: the hash covers the header and sampled windows only (see the module doc). */
  sampled: boolean;
}

/**
 * The fingerprint of a directory: file name → its fingerprint.
 *
 * @example Usage
 * ```ts
 * import type { DirFingerprint } from "./fingerprint.ts";
 *
 * const f: DirFingerprint = { "config.json": { bytes: 2, sha256: "0".repeat(64), sampled: false } };
 * ```
 */
export type DirFingerprint = Record<string, FileFingerprint>;

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < length) {
    const n = await file.read(out.subarray(done));
    if (n === null) break;
    done += n;
  }
  return out.subarray(0, done);
}

/**
 * Fingerprints one file: the SHA-256 of all of it, or (`sampled: true`) of its safetensors header
 * and {@linkcode SAMPLE_WINDOWS} evenly spaced windows of its data (a file without a valid
 * safetensors header is sampled from byte 0; a small file is hashed whole either way).
 *
 * @param path The file.
 * @param options `sampled`: sample a large file (default false: hash it all).
 * @returns Its size and hash.
 *
 * @example Usage
 * ```ts
 * import { fingerprintFile } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * const f = await fingerprintFile(path);
 * assert.equal(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
 * await Deno.remove(path);
 * ```
 */
export async function fingerprintFile(
  path: string,
  options: { sampled?: boolean } = {},
): Promise<FileFingerprint> {
  const file = await Deno.open(path, { read: true });
  try {
    const bytes = (await file.stat()).size;
    const hash = createHash("sha256");
    let start = 0;
    if (options.sampled) {
      const head = await readAt(file, 0, 8);
      if (head.length === 8) {
        const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
        if (n <= bytes - 8) start = 8 + n;
      }
    }
    const rest = bytes - start;
    if (!options.sampled || rest <= SAMPLE_WINDOWS * SAMPLE_BYTES) {
      // The whole file, in chunks.
      for (let at = 0; at < bytes; at += 1 << 22) {
        hash.update(await readAt(file, at, Math.min(1 << 22, bytes - at)));
      }
      return { bytes, sha256: hash.digest("hex"), sampled: false };
    }
    hash.update(await readAt(file, 0, start));
    for (let i = 0; i < SAMPLE_WINDOWS; i++) {
      const at = start + Math.floor(i * (rest - SAMPLE_BYTES) / (SAMPLE_WINDOWS - 1));
      hash.update(await readAt(file, at, SAMPLE_BYTES));
    }
    return { bytes, sha256: hash.digest("hex"), sampled: true };
  } finally {
    file.close();
  }
}

/**
 * Fingerprints a model or adapter directory: `config.json` and `adapter_config.json` (when
 * present) hashed whole, each `*.safetensors` sampled (see {@linkcode fingerprintFile}).
 *
 * @param dir The directory.
 * @returns File name → fingerprint, in name order.
 *
 * @example Usage
 * ```ts
 * import { fingerprintModel } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, "{}");
 * assert.deepEqual(Object.keys(await fingerprintModel(dir)), ["config.json"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function fingerprintModel(dir: string): Promise<DirFingerprint> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const n = entry.name;
    if (n !== "config.json" && n !== "adapter_config.json" && !n.endsWith(".safetensors")) continue;
    // A Hugging Face cache snapshot holds symlinks to the blobs: follow them.
    const isFile = entry.isFile ||
      (entry.isSymlink && (await Deno.stat(join(dir, n)).then((s) => s.isFile, () => false)));
    if (isFile) names.push(n);
  }
  names.sort();
  const out: DirFingerprint = {};
  for (const n of names) {
    out[n] = await fingerprintFile(join(dir, n), { sampled: n.endsWith(".safetensors") });
  }
  return out;
}

/**
 * Fingerprints the named files of a directory, those present (a symbolic link is followed), each
 * hashed whole: for a set of small files a run reads, e.g. a base model's tokenizer files and
 * `config.json`. A name that is absent (or not a file) is left out, so that it appearing later
 * shows as a difference.
 *
 * @param dir The directory.
 * @param names The file names to fingerprint.
 * @returns File name → fingerprint, in name order.
 *
 * @example Usage
 * ```ts
 * import { fingerprintFiles } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/tokenizer.json`, "{}");
 * const f = await fingerprintFiles(dir, ["tokenizer.json", "chat_template.jinja"]);
 * assert.deepEqual(Object.keys(f), ["tokenizer.json"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function fingerprintFiles(
  dir: string,
  names: readonly string[],
): Promise<DirFingerprint> {
  const out: DirFingerprint = {};
  for (const n of [...new Set(names)].sort()) {
    const path = join(dir, n);
    const isFile = await Deno.stat(path).then((s) => s.isFile, (error) => {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    });
    if (isFile) out[n] = await fingerprintFile(path);
  }
  return out;
}

function describe(f: FileFingerprint | undefined): string {
  if (f === undefined) return "absent";
  return `${f.bytes} bytes, sha256${f.sampled ? " (sampled)" : ""} ${f.sha256.slice(0, 16)}…`;
}

/**
 * What differs between a recorded fingerprint and the current one: the first file that was
 * added, removed or changed, with both fingerprints; `null` when they agree.
 *
 * @param recorded The fingerprint recorded earlier.
 * @param current The fingerprint now.
 * @param dir The directory, to name the file by its path; default none.
 * @returns A sentence naming the file, or `null`.
 *
 * @example Usage
 * ```ts
 * import { fingerprintDifference } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * const a = { "x.safetensors": { bytes: 1, sha256: "a".repeat(64), sampled: false } };
 * const b = { "x.safetensors": { bytes: 1, sha256: "b".repeat(64), sampled: false } };
 * assert.match(fingerprintDifference(a, b, "m")!, /"m\/x\.safetensors"/);
 * ```
 */
export function fingerprintDifference(
  recorded: DirFingerprint,
  current: DirFingerprint,
  dir?: string,
): string | null {
  const names = [...new Set([...Object.keys(recorded), ...Object.keys(current)])].sort();
  for (const n of names) {
    const a = recorded[n];
    const b = current[n];
    if (a?.bytes === b?.bytes && a?.sha256 === b?.sha256) continue;
    const path = dir === undefined ? n : join(dir, n);
    return `file "${path}" changed: recorded ${describe(a)}, now ${describe(b)}`;
  }
  return null;
}

/**
 * Checks a fingerprint read from JSON.
 *
 * @param value The JSON value.
 * @param file The file it was read from (for the error message).
 * @param key Its key in that file.
 * @returns The fingerprint.
 * @throws {TypeError} When it is not a mapping of `{bytes, sha256, sampled}`.
 *
 * @example Usage
 * ```ts
 * import { parseFingerprint } from "./fingerprint.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseFingerprint({ a: 1 }, "meta.json", "baseModel"), /key "baseModel\.a"/);
 * ```
 */
export function parseFingerprint(value: unknown, file: string, key: string): DirFingerprint {
  if (!isPlainObject(value)) {
    throw new TypeError(
      `"${file}": key "${key}" must be a mapping of file fingerprints: current value is ` +
        show(value),
    );
  }
  const out: DirFingerprint = {};
  for (const [n, f] of Object.entries(value)) {
    if (
      !isPlainObject(f) || typeof f.bytes !== "number" || !Number.isSafeInteger(f.bytes) ||
      typeof f.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(f.sha256) ||
      typeof f.sampled !== "boolean"
    ) {
      throw new TypeError(
        `"${file}": key "${key}.${n}" must be {"bytes": <size>, "sha256": <hex>, ` +
          `"sampled": <boolean>}: current value is ${show(f)}`,
      );
    }
    out[n] = { bytes: f.bytes, sha256: f.sha256, sampled: f.sampled };
  }
  return out;
}
