/**
 * Self-describing training checkpoints, saved atomically as a whole.
 *
 * A run directory holds one folder per checkpoint, `step_000100/`, with
 * - `model.safetensors` (full weights) or `adapter_model.safetensors` (adapters only),
 * - `optimizer.safetensors` (the optimizer state tensors),
 * - `meta.json`: the run's config, step, data position, RNG state, metrics, Deno version and git
 *   sha, plus the byte size and SHA-256 of each tensor file, so that a resume needs nothing else.
 *
 * {@linkcode loadCheckpoint} checks each tensor file's size and content hash against `meta.json`
 * and names the file that differs (a flipped byte is caught, not only a truncation). Checkpoints
 * saved before the hashes existed have no `sha256` entries: they still load, checked by size only
 * ({@linkcode checkpointUnhashed} says so, and a resume warns).
 *
 * {@linkcode saveCheckpoint} writes everything into a temporary folder `step_000100.tmp-<random>`,
 * flushes every file to disk, then renames the folder into place: a process killed mid-save leaves
 * at most a `*.tmp-*` folder (ignored by {@linkcode latestCheckpoint}, removed by the next save),
 * never a half checkpoint. Old checkpoints are pruned the same way (renamed away, then deleted).
 *
 * @example Save, find and load
 * ```ts
 * import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const runDir = await Deno.makeTempDir();
 * try {
 *   const weights = { "model.norm.weight": new Float32Array([1, 2, 3]) };
 *   await saveCheckpoint(runDir, {
 *     step: 100,
 *     tensors: weights,
 *     optimizer: { "mu/model.norm.weight": new Float32Array(3) },
 *     meta: { config: { lr: 1e-3 }, dataPosition: 1600, rng: [1, 2], metrics: { loss: 0.5 } },
 *   });
 *   const dir = await latestCheckpoint(runDir);
 *   strictEqual(dir, `${runDir}/step_000100`);
 *   const checkpoint = await loadCheckpoint(dir!);
 *   deepStrictEqual(checkpoint.tensors["model.norm.weight"].data, weights["model.norm.weight"]);
 *   strictEqual(checkpoint.meta.dataPosition, 1600);
 * } finally {
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 *
 * @module
 */

import { basename, join } from "node:path";
import { createHash } from "node:crypto";
import {
  openSafetensors,
  readTensorF32,
  readTensorI32,
  type SafetensorsFile,
  type TensorToWrite,
  writeSafetensors,
} from "../internal/safetensors.ts";
import { show } from "../internal/show.ts";
import { isPlainObject } from "../internal/is_plain_object.ts";
import { writeFileSynced } from "../internal/atomic_write.ts";
import { readJsonFile } from "../internal/read_json.ts";
import {
  type DirFingerprint,
  type FileFingerprint,
  fingerprintDifference,
  fingerprintFiles,
  fingerprintModel,
  parseFingerprint,
} from "../internal/fingerprint.ts";

export type { DirFingerprint, FileFingerprint, TensorToWrite };

/**
 * A tensor to save: a bare `Float32Array` (stored as F32 of shape `[length]`), or a full
 * description with dtype and shape.
 *
 * @example Usage
 * ```ts
 * import type { CheckpointTensor } from "./checkpoint.ts";
 *
 * const flat: CheckpointTensor = new Float32Array(4);
 * const shaped: CheckpointTensor = { dtype: "F32", shape: [2, 2], data: new Float32Array(4) };
 * ```
 */
export type CheckpointTensor = Float32Array | TensorToWrite;

/**
 * Which weights a checkpoint holds: the whole `"model"` (`model.safetensors`) or only the
 * `"adapter"` (`adapter_model.safetensors`, as PEFT names it).
 *
 * @example Usage
 * ```ts
 * import type { CheckpointWeights } from "./checkpoint.ts";
 *
 * const weights: CheckpointWeights = "adapter";
 * ```
 */
export type CheckpointWeights = "model" | "adapter";

/**
 * What the caller puts in `meta.json` besides the step (which comes from
 * {@linkcode SaveCheckpointOptions.step}).
 *
 * `config` and `rng` must be plain JSON (null, booleans, finite numbers, strings, lists and
 * mappings; encode a `bigint` RNG state as a string).
 *
 * @example Usage
 * ```ts
 * import type { CheckpointMetaInput } from "./checkpoint.ts";
 *
 * const meta: CheckpointMetaInput = {
 *   config: { trainer: { lr: 1e-3 } },
 *   dataPosition: 3200,
 *   rng: { seed: 0, counter: 51 },
 *   metrics: { "loss/sft": 0.41, "eval/accuracy": 0.62 },
 *   gitSha: "f4364a0",
 * };
 * ```
 */
export interface CheckpointMetaInput {
  /** The run's configuration (a `TrainConfig`, validated on resume by `cli/load_config.ts`). */
  config: unknown;
  /** How far the data stream has been read: the index of the next example. */
  dataPosition: number;
  /** The state of the run's random generators, to continue the same streams on resume. */
  rng: unknown;
  /**
   * What identifies the data that `dataPosition` counts into (plain JSON; the RL trainer stores
   * its prompt counts and content hashes), checked on resume; absent: none is written.
   */
  data?: unknown;
  /**
   * The fingerprint of the frozen base model the adapters were trained on
   * ({@linkcode fingerprintModel}: `config.json` and each weights file, sampled), checked by a
   * resume, `deno task eval` and `deno task gguf` ({@linkcode checkBaseModel}); absent: none is
   * written (a full-weights checkpoint, or a `builtin:` model).
   */
  baseModel?: DirFingerprint;
  /**
   * The fingerprint of the files besides the weights that the checkpoint reads from its base
   * model (`model.path`): {@linkcode CHECKPOINT_BASE_FILES} (the tokenizer files and
   * `config.json`), those present, hashed whole (`fingerprintFiles`); checked like
   * {@linkcode baseModel}; absent: none is written (a `builtin:` model).
   */
  baseFiles?: DirFingerprint;
  /** The latest metrics; non-finite values round-trip (stored as `"NaN"`, `"Infinity"`, ...). */
  metrics: Readonly<Record<string, number>>;
  /** The git commit of the code; `null`/absent when unknown. */
  gitSha?: string | null;
  /** The Deno version; default `Deno.version.deno`. */
  denoVersion?: string;
}

/**
 * The contents of a checkpoint's `meta.json`, as {@linkcode loadCheckpoint} returns them.
 *
 * @example Usage
 * ```ts
 * import type { CheckpointMeta } from "./checkpoint.ts";
 *
 * function describe(meta: CheckpointMeta): string {
 *   return `step ${meta.step} (${meta.weights}), saved ${meta.savedAt}`;
 * }
 * ```
 */
export interface CheckpointMeta {
  /** Always `"halo.checkpoint"`. */
  format: "halo.checkpoint";
  /** Version of the layout; `1`. */
  version: 1;
  /** The optimizer step the checkpoint was taken after. */
  step: number;
  /** Which weights the checkpoint holds. */
  weights: CheckpointWeights;
  /**
   * The tensor files, their sizes in bytes and the SHA-256 of their contents (lowercase hex;
   * absent in checkpoints saved before the hashes existed, which are checked by size only).
   */
  files: {
    weights: CheckpointFile;
    optimizer: CheckpointFile;
  };
  /** The run's configuration. */
  config: unknown;
  /** The index of the next example of the data stream. */
  dataPosition: number;
  /** The state of the run's random generators. */
  rng: unknown;
  /** What identifies the run's data; `null` when the checkpoint records none (saved before). */
  data: unknown;
  /** The fingerprint of the adapters' base model; `null` when none was recorded. */
  baseModel: DirFingerprint | null;
  /** The fingerprint of the tokenizer files and `config.json` it reads from its base model;
   * `null` when none was recorded. */
  baseFiles: DirFingerprint | null;
  /** The metrics at save time. */
  metrics: Record<string, number>;
  /** The Deno version that saved it. */
  denoVersion: string;
  /** The git commit of the code, or `null`. */
  gitSha: string | null;
  /** When it was saved (ISO 8601). */
  savedAt: string;
}

/**
 * One tensor file of a checkpoint as `meta.json` records it.
 *
 * @example Usage
 * ```ts
 * import type { CheckpointFile } from "./checkpoint.ts";
 *
 * const file: CheckpointFile = { name: "model.safetensors", bytes: 1024, sha256: "ab".repeat(32) };
 * ```
 */
export interface CheckpointFile {
  /** The file name in the checkpoint folder. */
  name: string;
  /** Its size in bytes. */
  bytes: number;
  /** The SHA-256 of its contents, 64 lowercase hex digits; absent in older checkpoints. */
  sha256?: string;
}

/**
 * Options of {@linkcode saveCheckpoint}.
 *
 * @example Usage
 * ```ts
 * import type { SaveCheckpointOptions } from "./checkpoint.ts";
 *
 * const options: SaveCheckpointOptions = {
 *   step: 200,
 *   weights: "adapter",
 *   tensors: { "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": new Float32Array(8) },
 *   optimizer: {},
 *   meta: { config: {}, dataPosition: 0, rng: null, metrics: {} },
 *   keep: 3,
 * };
 * ```
 */
export interface SaveCheckpointOptions {
  /** The optimizer step, a non-negative safe integer; names the folder `step_NNNNNN`. */
  step: number;
  /** The weights (the whole model, or the adapters when `weights` is `"adapter"`). */
  tensors: Readonly<Record<string, CheckpointTensor>>;
  /** The optimizer state tensors (may be empty). */
  optimizer: Readonly<Record<string, CheckpointTensor>>;
  /** Everything else a resume needs. */
  meta: CheckpointMetaInput;
  /** Which weights `tensors` holds. Default `"model"`. */
  weights?: CheckpointWeights;
  /** After saving, keep only the newest this many checkpoints (never the new one); `0` keeps all (default). */
  keep?: number;
  /** Replace an existing checkpoint of the same step instead of failing. Default `false`. */
  overwrite?: boolean;
  /**
   * Called before each file of the checkpoint is written, with its name (`model.safetensors`,
   * `optimizer.safetensors`, `meta.json`); a throw aborts the save as a failed write would. For
   * fault-injection tests.
   */
  beforeWrite?: (file: string) => void | Promise<void>;
}

/**
 * One tensor read back from a checkpoint: float dtypes as `Float32Array` (F16 and BF16 widened
 * exactly), integer dtypes as `Int32Array`.
 *
 * @example Usage
 * ```ts
 * import type { LoadedTensor } from "./checkpoint.ts";
 *
 * const t: LoadedTensor = { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) };
 * ```
 */
export interface LoadedTensor {
  /** The dtype as stored. */
  dtype: string;
  /** The dimensions, outermost first. */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array | Int32Array;
}

/**
 * A checkpoint read back by {@linkcode loadCheckpoint}.
 *
 * @example Usage
 * ```ts
 * import type { LoadedCheckpoint } from "./checkpoint.ts";
 *
 * function resumeStep(checkpoint: LoadedCheckpoint): number {
 *   return checkpoint.meta.step + 1;
 * }
 * ```
 */
export interface LoadedCheckpoint {
  /** The checkpoint folder. */
  dir: string;
  /** The contents of `meta.json`. */
  meta: CheckpointMeta;
  /** The weights by name. */
  tensors: Record<string, LoadedTensor>;
  /** The optimizer state by name. */
  optimizer: Record<string, LoadedTensor>;
}

const FORMAT = "halo.checkpoint";
const WEIGHT_FILES: Readonly<Record<CheckpointWeights, string>> = {
  model: "model.safetensors",
  adapter: "adapter_model.safetensors",
};
const OPTIMIZER_FILE = "optimizer.safetensors";
const META_FILE = "meta.json";
const COMPLETE = /^step_(\d+)$/;
const TEMPORARY = /^step_\d+\.tmp-/;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The error again with `prefix: ` in front of its message, keeping its class by meaning. */
function withContext(error: unknown, prefix: string): Error {
  const message = `${prefix}: ${errorMessage(error)}`;
  if (error instanceof TypeError) return new TypeError(message, { cause: error });
  if (error instanceof RangeError) return new RangeError(message, { cause: error });
  if (error instanceof SyntaxError) return new SyntaxError(message, { cause: error });
  for (const kind of Object.values(Deno.errors)) {
    if (error instanceof kind) return new kind(message, { cause: error });
  }
  return new Error(message, { cause: error });
}

/** The SHA-256 of a file's contents (lowercase hex), read in chunks (checkpoints can be GBs). */
async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buffer = new Uint8Array(1 << 22);
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

function stepDirName(step: number): string {
  return `step_${String(step).padStart(6, "0")}`;
}

/** The path of the first value that is not plain JSON, or `null` when all is JSON. */
function nonJsonAt(value: unknown, path: string): { path: string; value: unknown } | null {
  if (value === null || typeof value === "string" || typeof value === "boolean") return null;
  if (typeof value === "number") return Number.isFinite(value) ? null : { path, value };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = nonJsonAt(value[i], `${path}[${i}]`);
      if (bad !== null) return bad;
    }
    return null;
  }
  if (isPlainObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      const bad = nonJsonAt(child, `${path}.${key}`);
      if (bad !== null) return bad;
    }
    return null;
  }
  return { path, value };
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) {
    return `a ${value.constructor?.name ?? "object"}`;
  }
  return typeof value === "bigint" ? `${value}n` : show(value);
}

function toTensorToWrite(tensor: CheckpointTensor, name: string, where: string): TensorToWrite {
  if (tensor instanceof Float32Array) {
    return { dtype: "F32", shape: [tensor.length], data: tensor };
  }
  if (isPlainObject(tensor) && typeof tensor.dtype === "string") return tensor;
  throw new TypeError(
    `${where}: tensor "${name}" must be a Float32Array or {dtype, shape, data}: current value is ${
      describe(tensor)
    }`,
  );
}

function encodeMetric(value: number): number | string {
  if (Number.isFinite(value)) return value;
  return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
}

function decodeMetric(value: unknown): number | null {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return null;
}

/** Flushes a directory's entries (renames, creations) to disk; best effort where unsupported. */
async function syncDir(path: string): Promise<void> {
  let dir: Deno.FsFile | undefined;
  try {
    dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic.
  } finally {
    dir?.close();
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Complete checkpoints of a run, oldest first. */
async function listCheckpoints(runDir: string): Promise<{ step: number; dir: string }[]> {
  const found: { step: number; dir: string }[] = [];
  try {
    for await (const entry of Deno.readDir(runDir)) {
      const match = COMPLETE.exec(entry.name);
      if (match === null || !entry.isDirectory) continue;
      const dir = join(runDir, entry.name);
      try {
        if (!(await Deno.stat(join(dir, META_FILE))).isFile) continue;
      } catch {
        continue;
      }
      found.push({ step: Number(match[1]), dir });
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return found.sort((a, b) => a.step - b.step || (a.dir < b.dir ? -1 : 1));
}

/** Renames a folder out of sight, then deletes it, so a crash never leaves it half deleted. */
async function removeAtomically(runDir: string, dir: string): Promise<void> {
  const hidden = join(runDir, `${basename(dir)}.tmp-removing-${crypto.randomUUID()}`);
  await Deno.rename(dir, hidden);
  await Deno.remove(hidden, { recursive: true });
}

/**
 * Saves a checkpoint as `runDir/step_NNNNNN/` atomically: all files go into a temporary folder
 * beside it, are flushed to disk, and the folder is renamed into place (then the run directory is
 * flushed). On failure the temporary folder is removed and the error rethrown, naming the
 * checkpoint; earlier checkpoints are never touched by a failed save.
 *
 * After a successful save, leftover `step_*.tmp-*` folders of killed saves are deleted, and with
 * `keep > 0` all but the newest `keep` checkpoints are pruned (the new one is always kept). One
 * process should save into a run directory at a time. Needs `--allow-read --allow-write`.
 *
 * @param runDir The run directory (created if missing).
 * @param options The step, tensors, optimizer state, meta, and save options.
 * @returns The path of the new checkpoint folder.
 * @throws {TypeError} When a tensor, the metrics or the meta are malformed (the message names the
 *   key).
 * @throws {RangeError} When the step or data position is not a non-negative safe integer.
 * @throws {Deno.errors.AlreadyExists} When the checkpoint exists and `overwrite` is not set.
 *
 * @example Keep only the newest two checkpoints
 * ```ts
 * import { saveCheckpoint } from "./checkpoint.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const runDir = await Deno.makeTempDir();
 * try {
 *   for (const step of [10, 20, 30]) {
 *     await saveCheckpoint(runDir, {
 *       step,
 *       tensors: { w: new Float32Array([step]) },
 *       optimizer: {},
 *       meta: { config: {}, dataPosition: step * 8, rng: step, metrics: {} },
 *       keep: 2,
 *     });
 *   }
 *   const names = [...Deno.readDirSync(runDir)].map((e) => e.name).sort();
 *   deepStrictEqual(names, ["step_000020", "step_000030"]);
 * } finally {
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 */
export async function saveCheckpoint(
  runDir: string,
  options: SaveCheckpointOptions,
): Promise<string> {
  const { step, meta } = options;
  const name = Number.isSafeInteger(step) && step >= 0 ? stepDirName(step) : "step_?";
  const finalDir = join(runDir, name);
  const where = `Cannot save checkpoint "${finalDir}"`;
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(
      `${where}: option "step" must be a non-negative safe integer: current value is ${show(step)}`,
    );
  }
  const weights = options.weights ?? "model";
  if (weights !== "model" && weights !== "adapter") {
    throw new TypeError(
      `${where}: option "weights" must be "model" or "adapter": current value is ${show(weights)}`,
    );
  }
  const keep = options.keep ?? 0;
  if (!Number.isSafeInteger(keep) || keep < 0) {
    throw new RangeError(
      `${where}: option "keep" must be a non-negative integer: current value is ${show(keep)}`,
    );
  }
  if (!isPlainObject(meta)) {
    throw new TypeError(
      `${where}: option "meta" must be an object: current value is ${show(meta)}`,
    );
  }
  if (!Number.isSafeInteger(meta.dataPosition) || meta.dataPosition < 0) {
    throw new RangeError(
      `${where}: meta key "dataPosition" must be a non-negative safe integer: current value is ${
        show(meta.dataPosition)
      }`,
    );
  }
  for (const key of ["config", "rng", "data"] as const) {
    if (key === "data" && meta.data === undefined) continue;
    if (!Object.hasOwn(meta, key)) {
      throw new TypeError(`${where}: meta key "${key}" is missing`);
    }
    const bad = nonJsonAt(meta[key], key);
    if (bad !== null) {
      throw new TypeError(
        `${where}: meta key "${bad.path}" must be JSON (null, boolean, finite number, string, ` +
          `list or mapping): current value is ${describe(bad.value)}`,
      );
    }
  }
  if (!isPlainObject(meta.metrics)) {
    throw new TypeError(
      `${where}: meta key "metrics" must be a mapping of numbers: current value is ${
        show(meta.metrics)
      }`,
    );
  }
  const metrics: Record<string, number | string> = {};
  for (const [key, value] of Object.entries(meta.metrics)) {
    if (typeof value !== "number") {
      throw new TypeError(
        `${where}: meta key "metrics.${key}" must be a number: current value is ${show(value)}`,
      );
    }
    metrics[key] = encodeMetric(value);
  }
  const gitSha = meta.gitSha ?? null;
  if (gitSha !== null && typeof gitSha !== "string") {
    throw new TypeError(
      `${where}: meta key "gitSha" must be a string or null: current value is ${show(gitSha)}`,
    );
  }
  const denoVersion = meta.denoVersion ?? Deno.version.deno;
  if (typeof denoVersion !== "string") {
    throw new TypeError(
      `${where}: meta key "denoVersion" must be a string: current value is ${show(denoVersion)}`,
    );
  }
  const groups: [string, Readonly<Record<string, CheckpointTensor>>, string][] = [
    [WEIGHT_FILES[weights], options.tensors, "tensors"],
    [OPTIMIZER_FILE, options.optimizer, "optimizer"],
  ];
  const prepared = groups.map(([file, tensors, key]) => {
    if (!isPlainObject(tensors)) {
      throw new TypeError(
        `${where}: option "${key}" must be a mapping of tensors: current value is ${show(tensors)}`,
      );
    }
    const out: Record<string, TensorToWrite> = {};
    for (const [tensorName, tensor] of Object.entries(tensors)) {
      out[tensorName] = toTensorToWrite(tensor, tensorName, `${where}: option "${key}"`);
    }
    return { file, tensors: out };
  });

  await Deno.mkdir(runDir, { recursive: true });
  if (!options.overwrite && await isDirectory(finalDir)) {
    throw new Deno.errors.AlreadyExists(
      `${where}: the checkpoint already exists (pass "overwrite: true" to replace it)`,
    );
  }
  const tempDir = join(runDir, `${name}.tmp-${crypto.randomUUID()}`);
  await Deno.mkdir(tempDir);
  try {
    const entries: Record<string, CheckpointFile> = {};
    for (const { file, tensors } of prepared) {
      await options.beforeWrite?.(file);
      const path = join(tempDir, file);
      await writeSafetensors(path, tensors, { metadata: { format: "pt" } });
      // The hash of the bytes as they are on disk, written into meta.json last: the folder's
      // rename makes files and hashes appear together.
      entries[file] = {
        name: file,
        bytes: (await Deno.stat(path)).size,
        sha256: await fileSha256(path),
      };
    }
    const metaJson = {
      format: FORMAT,
      version: 1,
      step,
      weights,
      files: { weights: entries[WEIGHT_FILES[weights]], optimizer: entries[OPTIMIZER_FILE] },
      config: meta.config,
      dataPosition: meta.dataPosition,
      rng: meta.rng,
      ...(meta.data === undefined ? {} : { data: meta.data }),
      ...(meta.baseModel === undefined ? {} : { baseModel: meta.baseModel }),
      ...(meta.baseFiles === undefined ? {} : { baseFiles: meta.baseFiles }),
      metrics,
      denoVersion,
      gitSha,
      savedAt: new Date().toISOString(),
    };
    await options.beforeWrite?.(META_FILE);
    await writeFileSynced(
      join(tempDir, META_FILE),
      new TextEncoder().encode(`${JSON.stringify(metaJson, null, 2)}\n`),
    );
    await syncDir(tempDir);
    if (await isDirectory(finalDir)) {
      // overwrite: move the old one out of sight first; a crash in between leaves the older steps.
      await removeAtomically(runDir, finalDir);
    }
    await Deno.rename(tempDir, finalDir);
    await syncDir(runDir);
  } catch (error) {
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
    throw withContext(error, where);
  }

  // Housekeeping after the checkpoint is safely in place; failures here do not lose data.
  for await (const entry of Deno.readDir(runDir)) {
    if (entry.isDirectory && TEMPORARY.test(entry.name)) {
      await Deno.remove(join(runDir, entry.name), { recursive: true }).catch(() => {});
    }
  }
  if (keep > 0) {
    const all = await listCheckpoints(runDir);
    const others = all.filter((c) => c.dir !== finalDir);
    const excess = others.length - (keep - 1);
    for (const old of others.slice(0, Math.max(0, excess))) {
      await removeAtomically(runDir, old.dir);
    }
    if (excess > 0) await syncDir(runDir);
  }
  return finalDir;
}

/**
 * The newest complete checkpoint of a run: the `step_NNNNNN` folder with the highest step that
 * holds a `meta.json`. Temporary `*.tmp-*` folders of interrupted saves are ignored.
 *
 * @param runDir The run directory.
 * @returns The checkpoint folder, or `null` when there is none (or no run directory).
 *
 * @example A fresh run has no checkpoint
 * ```ts
 * import { latestCheckpoint } from "./checkpoint.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const runDir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${runDir}/step_000500.tmp-1234`); // a save that was killed
 *   strictEqual(await latestCheckpoint(runDir), null);
 * } finally {
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 */
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  const all = await listCheckpoints(runDir);
  return all.length === 0 ? null : all[all.length - 1].dir;
}

function metaError(path: string, key: string, expected: string, value: unknown): TypeError {
  return new TypeError(
    `Cannot load checkpoint "${path}": key "${key}" must be ${expected}: current value is ${
      show(value)
    }`,
  );
}

function parseMeta(json: unknown, path: string, dir: string): CheckpointMeta {
  if (!isPlainObject(json)) throw metaError(path, "<root>", "an object", json);
  if (json.format !== FORMAT) throw metaError(path, "format", `"${FORMAT}"`, json.format);
  if (json.version !== 1) {
    throw new RangeError(
      `Cannot load checkpoint "${path}": key "version" must be 1 (this halo reads version 1): ` +
        `current value is ${show(json.version)}`,
    );
  }
  const step = json.step;
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw metaError(path, "step", "a non-negative integer", step);
  }
  const match = COMPLETE.exec(basename(dir));
  if (match !== null && Number(match[1]) !== step) {
    throw new RangeError(
      `Cannot load checkpoint "${path}": key "step" must match the folder name ` +
        `"${basename(dir)}" (${Number(match[1])}): current value is ${step}`,
    );
  }
  const weights = json.weights;
  if (weights !== "model" && weights !== "adapter") {
    throw metaError(path, "weights", '"model" or "adapter"', weights);
  }
  const files = json.files;
  if (!isPlainObject(files)) throw metaError(path, "files", "an object", files);
  const fileEntry = (
    key: "weights" | "optimizer",
    name: string,
  ): CheckpointFile => {
    const entry = files[key];
    if (!isPlainObject(entry) || entry.name !== name) {
      throw metaError(
        path,
        `files.${key}`,
        `{"name": "${name}", "bytes": <size>, "sha256": <hex>}`,
        entry,
      );
    }
    if (typeof entry.bytes !== "number" || !Number.isSafeInteger(entry.bytes) || entry.bytes < 0) {
      throw metaError(path, `files.${key}.bytes`, "a non-negative integer", entry.bytes);
    }
    if (entry.sha256 === undefined) return { name, bytes: entry.bytes };
    if (typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
      throw metaError(path, `files.${key}.sha256`, "64 lowercase hex digits", entry.sha256);
    }
    return { name, bytes: entry.bytes, sha256: entry.sha256 };
  };
  const weightsFile = fileEntry("weights", WEIGHT_FILES[weights]);
  const optimizerFile = fileEntry("optimizer", OPTIMIZER_FILE);
  for (const key of ["config", "rng"]) {
    if (!Object.hasOwn(json, key)) {
      throw new TypeError(`Cannot load checkpoint "${path}": key "${key}" is missing`);
    }
  }
  const dataPosition = json.dataPosition;
  if (
    typeof dataPosition !== "number" || !Number.isSafeInteger(dataPosition) || dataPosition < 0
  ) {
    throw metaError(path, "dataPosition", "a non-negative integer", dataPosition);
  }
  if (!isPlainObject(json.metrics)) {
    throw metaError(path, "metrics", "a mapping of numbers", json.metrics);
  }
  const metrics: Record<string, number> = {};
  for (const [key, value] of Object.entries(json.metrics)) {
    const decoded = decodeMetric(value);
    if (decoded === null) throw metaError(path, `metrics.${key}`, "a number", value);
    metrics[key] = decoded;
  }
  if (typeof json.denoVersion !== "string") {
    throw metaError(path, "denoVersion", "a string", json.denoVersion);
  }
  const gitSha = json.gitSha ?? null;
  if (gitSha !== null && typeof gitSha !== "string") {
    throw metaError(path, "gitSha", "a string or null", gitSha);
  }
  if (typeof json.savedAt !== "string") throw metaError(path, "savedAt", "a string", json.savedAt);
  return {
    format: FORMAT,
    version: 1,
    step,
    weights,
    files: { weights: weightsFile, optimizer: optimizerFile },
    config: json.config,
    dataPosition,
    rng: json.rng,
    data: json.data ?? null,
    baseModel: json.baseModel === undefined
      ? null
      : parseFingerprint(json.baseModel, path, "baseModel"),
    baseFiles: json.baseFiles === undefined
      ? null
      : parseFingerprint(json.baseFiles, path, "baseFiles"),
    metrics,
    denoVersion: json.denoVersion,
    gitSha,
    savedAt: json.savedAt,
  };
}

const INTEGER_DTYPES = new Set(["I64", "I32", "I16", "I8", "U16", "U8"]);

async function readTensors(
  path: string,
  expected: CheckpointFile,
): Promise<Record<string, LoadedTensor>> {
  const expectedBytes = expected.bytes;
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load checkpoint "${path}": file not found`, {
        cause: error,
      });
    }
    throw error;
  }
  if (size !== expectedBytes) {
    throw new RangeError(
      `Cannot load checkpoint "${path}": the file must be ${expectedBytes} bytes as meta.json ` +
        `records: current size is ${size}`,
    );
  }
  if (expected.sha256 !== undefined) {
    const actual = await fileSha256(path);
    if (actual !== expected.sha256) {
      throw new RangeError(
        `Cannot load checkpoint "${path}": the file's SHA-256 must be ${expected.sha256} as ` +
          `meta.json records: current hash is ${actual} (the file is damaged or was replaced)`,
      );
    }
  }
  let file: SafetensorsFile;
  try {
    file = await openSafetensors(path);
  } catch (error) {
    throw withContext(error, `Cannot load checkpoint "${path}"`);
  }
  try {
    const out: Record<string, LoadedTensor> = {};
    for (const [name, info] of file.tensors) {
      const data = INTEGER_DTYPES.has(info.dtype)
        ? readTensorI32(file, name)
        : readTensorF32(file, name);
      out[name] = { dtype: info.dtype, shape: [...info.shape], data };
    }
    return out;
  } finally {
    file.close();
  }
}

/**
 * Loads a checkpoint folder: validates `meta.json` (format, version, step against the folder
 * name, file names, sizes and SHA-256 hashes) and reads every tensor of the weights and optimizer
 * files. A checkpoint saved before the hashes existed loads checked by size only
 * ({@linkcode checkpointUnhashed}). Needs `--allow-read`.
 *
 * @param dir The checkpoint folder, e.g. from {@linkcode latestCheckpoint}.
 * @returns The meta, weights and optimizer state.
 * @throws {Deno.errors.NotFound} When `meta.json` or a tensor file is missing.
 * @throws {SyntaxError} When `meta.json` is not JSON or a tensor file's header is corrupt.
 * @throws {TypeError} When a key of `meta.json` is missing or malformed.
 * @throws {RangeError} When the version is unknown, the step does not match the folder, or a
 *   tensor file's size or SHA-256 differs from `meta.json` (truncated or damaged). Every message
 *   names the file.
 *
 * @example A missing checkpoint names the file
 * ```ts
 * import { loadCheckpoint } from "./checkpoint.ts";
 * import { rejects } from "node:assert/strict";
 *
 * await rejects(loadCheckpoint("out/none/step_000001"), {
 *   message: 'Cannot load checkpoint "out/none/step_000001/meta.json": file not found',
 * });
 * ```
 */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const metaPath = join(dir, META_FILE);
  const json = await readJsonFile(metaPath, { context: "Cannot load checkpoint" });
  const meta = parseMeta(json, metaPath, dir);
  const tensors = await readTensors(join(dir, meta.files.weights.name), meta.files.weights);
  const optimizer = await readTensors(join(dir, meta.files.optimizer.name), meta.files.optimizer);
  return { dir, meta, tensors, optimizer };
}

/**
 * The tensor files of a checkpoint whose `meta.json` records no SHA-256 (saved before the hashes
 * existed): they were checked by size only.
 *
 * @param checkpoint A loaded checkpoint.
 * @returns The file names without a hash; empty for a checkpoint of this version.
 *
 * @example A new checkpoint has hashes
 * ```ts
 * import { checkpointUnhashed, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const runDir = await Deno.makeTempDir();
 * try {
 *   const dir = await saveCheckpoint(runDir, {
 *     step: 1,
 *     tensors: { w: new Float32Array(2) },
 *     optimizer: {},
 *     meta: { config: {}, dataPosition: 0, rng: null, metrics: {} },
 *   });
 *   deepStrictEqual(checkpointUnhashed(await loadCheckpoint(dir)), []);
 * } finally {
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 */
export function checkpointUnhashed(checkpoint: LoadedCheckpoint): string[] {
  const { weights, optimizer } = checkpoint.meta.files;
  return [weights, optimizer].filter((f) => f.sha256 === undefined).map((f) => f.name);
}

/**
 * The files a checkpoint reads from its base model (`model.path`) besides the weights on a
 * resume, an evaluation or a GGUF export: the model config and the tokenizer files (a
 * full-weights checkpoint's weights all come from the checkpoint; an adapter checkpoint's
 * frozen base weights are fingerprinted as `baseModel`). Their fingerprint is the checkpoint's
 * `baseFiles`.
 *
 * @example Usage
 * ```ts
 * import { CHECKPOINT_BASE_FILES } from "./checkpoint.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(CHECKPOINT_BASE_FILES.includes("tokenizer.json"));
 * ```
 */
export const CHECKPOINT_BASE_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
];

/**
 * Checks that a checkpoint's base model is the one it was trained on: compares the fingerprints
 * its `meta.json` records with the base directory's now: key `baseFiles` (the tokenizer files
 * and `config.json`: {@linkcode CHECKPOINT_BASE_FILES}) and, of an adapter checkpoint, key
 * `baseModel` (`config.json` and the weights, sampled).
 *
 * @param checkpoint The loaded checkpoint.
 * @param baseDir The base model directory it is about to be used with.
 * @returns A warning when the checkpoint records no fingerprint (saved before they were
 *   recorded: the base cannot be checked), else `null`. An adapter checkpoint that records
 *   `baseModel` but not `baseFiles` (saved before adapter checkpoints recorded them) gets no
 *   warning: its weights, the main thing, are checked.
 * @throws {RangeError} When a file of the base model differs from the record, naming the file
 *   and both fingerprints.
 *
 * @example Usage
 * ```ts
 * import { checkBaseModel, type LoadedCheckpoint } from "./checkpoint.ts";
 * import assert from "node:assert/strict";
 *
 * const checkpoint = {
 *   dir: "out/r/step_000001",
 *   meta: { weights: "model", baseModel: null, baseFiles: null },
 * };
 * assert.match(
 *   (await checkBaseModel(checkpoint as LoadedCheckpoint, "models/m"))!,
 *   /records no fingerprint of the tokenizer files and config\.json/,
 * );
 * ```
 */
export async function checkBaseModel(
  checkpoint: Pick<LoadedCheckpoint, "dir"> & {
    meta: Pick<CheckpointMeta, "weights" | "baseModel" | "baseFiles">;
  },
  baseDir: string,
): Promise<string | null> {
  const { weights, baseModel, baseFiles } = checkpoint.meta;
  const full = weights === "model";
  const refuse = (difference: string, sampled: boolean) =>
    new RangeError(
      `Checkpoint "${checkpoint.dir}" was trained on a different base model "${baseDir}" ` +
        `(key "model.path"): ${difference} (a fingerprint: the file's size and the SHA-256 of ` +
        `${sampled ? "its header and sampled chunks" : "its contents"}); use the base model it ` +
        `was trained on`,
    );
  if (!full && baseModel !== null) {
    const difference = fingerprintDifference(baseModel, await fingerprintModel(baseDir), baseDir);
    if (difference !== null) throw refuse(difference, true);
  }
  if (baseFiles !== null) {
    const current = await fingerprintFiles(baseDir, CHECKPOINT_BASE_FILES);
    const difference = fingerprintDifference(baseFiles, current, baseDir);
    if (difference !== null) throw refuse(difference, false);
  }
  if ((full ? baseFiles : baseModel) === null) {
    const what = full
      ? "the tokenizer files and config.json it reads from its base model"
      : "its base model";
    return `checkpoint "${checkpoint.dir}" records no fingerprint of ${what} (saved before ` +
      `they were recorded): cannot check that "${baseDir}" is the model it was trained on`;
  }
  return null;
}
