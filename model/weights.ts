/**
 * Loading the weights of a HuggingFace Qwen3 checkpoint (`model.safetensors`, or shards listed by
 * `model.safetensors.index.json`) as float32 arrays.
 *
 * @module
 */

import { exists } from "../internal/exists.ts";
import type { Qwen3Config } from "./config.ts";
import {
  checkShape,
  openSafetensors,
  readTensorF16,
  readTensorF32,
  type SafetensorsFile,
  type SafetensorsTensorInfo,
} from "../internal/safetensors.ts";
import { modelTensorTable, type TensorEntry } from "./tensor_table.ts";

/**
 * The weights of one decoder layer, every matrix row-major `[out, in]` as in PyTorch, with
 * `H = hiddenSize`, `I = intermediateSize`, `D = headDim`. The projections are float32 values
 * (`M = Float32Array`, the default), or f16 bit patterns (`M = Uint16Array`) when loaded with
 * `matrixDtype: "f16"` for a WebGPU model that stores its weights in f16; the norms are float32.
 */
export interface Qwen3LayerWeights<M extends Float32Array | Uint16Array = Float32Array> {
  /** RMSNorm weight before attention, `[H]`. */
  inputLayernorm: Float32Array;
  /** Query projection, `[numAttentionHeads * D, H]`. */
  qProj: M;
  /** Key projection, `[numKeyValueHeads * D, H]`. */
  kProj: M;
  /** Value projection, `[numKeyValueHeads * D, H]`. */
  vProj: M;
  /** Output projection, `[H, numAttentionHeads * D]`. */
  oProj: M;
  /** Per-head RMSNorm weight of the queries, `[D]`. */
  qNorm: Float32Array;
  /** Per-head RMSNorm weight of the keys, `[D]`. */
  kNorm: Float32Array;
  /** RMSNorm weight before the MLP, `[H]`. */
  postAttentionLayernorm: Float32Array;
  /** SwiGLU gate projection, `[I, H]`. */
  gateProj: M;
  /** SwiGLU up projection, `[I, H]`. */
  upProj: M;
  /** SwiGLU down projection, `[H, I]`. */
  downProj: M;
}

/**
 * All weights of a Qwen3 causal language model, row-major: float32 (the default `M`), or with the
 * matrices (embeddings, projections, LM head) as f16 bit patterns (`M = Uint16Array`, see
 * {@linkcode LoadQwen3WeightsOptions.matrixDtype}).
 */
export interface Qwen3Weights<M extends Float32Array | Uint16Array = Float32Array> {
  /** Token embeddings, `[vocabSize, hiddenSize]`. */
  embedTokens: M;
  /** The decoder layers in order. */
  layers: Qwen3LayerWeights<M>[];
  /** Final RMSNorm weight, `[hiddenSize]`. */
  norm: Float32Array;
  /** LM head, `[vocabSize, hiddenSize]`; the same array as `embedTokens` when embeddings are tied. */
  lmHead: M;
}

/** Options of {@linkcode loadQwen3Weights}. */
export interface LoadQwen3WeightsOptions {
  /**
   * `"f32"` (default): every tensor as float32. `"f16"`: the embeddings, projections and LM head
   * as f16 bit patterns (`Uint16Array`, rounded to nearest, ties to even: bit-identical to
   * float32 then f16), read without a float32 copy of a BF16 or F16 tensor, for a WebGPU model
   * with `weightDtype: "f16"` (half the host memory of float32); the norms stay float32. A value
   * that f16 cannot hold finitely is an error naming the tensor.
   */
  matrixDtype?: "f32" | "f16";
  /**
   * Receives the warnings about tensors of the checkpoint that the model does not use (e.g.
   * `model.rotary_emb.inv_freq`, or a tied `lm_head.weight` that differs from the embeddings,
   * ignored as transformers ignores it); default `console.warn`. Unused tensors that would change
   * the model (a layer past `num_hidden_layers`, a bias) are errors instead.
   */
  warn?: (message: string) => void;
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

/** Where each tensor lives: one file, or shards named by an index. */
interface TensorSource {
  /** The file that holds `name`; throws naming the file(s) searched when none does. */
  fileFor(name: string): Promise<SafetensorsFile>;
  /** Every tensor name of the checkpoint (the file's, or the index's `weight_map`'s). */
  names(): string[];
  /** The file that holds `name` (for messages; the tensor must be one of `names()`). */
  pathOf(name: string): string;
  close(): void;
}

async function singleFileSource(path: string): Promise<TensorSource> {
  const file = await openSafetensors(path);
  return {
    fileFor(name: string): Promise<SafetensorsFile> {
      if (!file.tensors.has(name)) {
        return Promise.reject(
          new Error(`Cannot load Qwen3 weights: tensor "${name}" not found in "${path}"`),
        );
      }
      return Promise.resolve(file);
    },
    names: () => [...file.tensors.keys()],
    pathOf: () => path,
    close(): void {
      file.close();
    },
  };
}

async function shardedSource(dir: string, indexPath: string): Promise<TensorSource> {
  const where = `Cannot load Qwen3 weights from index "${indexPath}"`;
  let index: unknown;
  try {
    index = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new SyntaxError(`${where}: invalid JSON: ${error.message}`, { cause: error });
    }
    throw error;
  }
  const weightMap = typeof index === "object" && index !== null
    ? (index as Record<string, unknown>).weight_map
    : undefined;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new TypeError(
      `${where}: key "weight_map" must be an object of tensor name to shard file`,
    );
  }
  const shardOf = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (
      typeof shard !== "string" || shard === "" || shard.startsWith("/") ||
      shard.split(/[\\/]/).includes("..") || /^[A-Za-z]:/.test(shard)
    ) {
      throw new TypeError(
        `${where}: tensor "${name}" must map to a shard file name inside the checkpoint ` +
          `directory: current value is ${JSON.stringify(shard)}`,
      );
    }
    shardOf.set(name, shard);
  }
  // Check every shard up front so a missing one fails before gigabytes are converted.
  for (const shard of new Set(shardOf.values())) {
    if (!(await exists(joinPath(dir, shard)))) {
      throw new Deno.errors.NotFound(
        `${where}: shard "${joinPath(dir, shard)}" listed in the index does not exist`,
      );
    }
  }
  const open = new Map<string, SafetensorsFile>();
  return {
    async fileFor(name: string): Promise<SafetensorsFile> {
      const shard = shardOf.get(name);
      if (shard === undefined) {
        throw new Error(
          `Cannot load Qwen3 weights: tensor "${name}" not found in the weight_map of ` +
            `"${indexPath}"`,
        );
      }
      let file = open.get(shard);
      if (file === undefined) {
        file = await openSafetensors(joinPath(dir, shard));
        open.set(shard, file);
      }
      if (!file.tensors.has(name)) {
        throw new Error(
          `Cannot load Qwen3 weights: tensor "${name}" not found in shard "${file.path}", where ` +
            `"${indexPath}" places it`,
        );
      }
      return file;
    },
    names: () => [...shardOf.keys()],
    pathOf: (name: string) => joinPath(dir, shardOf.get(name) ?? ""),
    close(): void {
      for (const file of open.values()) file.close();
      open.clear();
    },
  };
}

function checkMatrixDtype(dir: string, options: LoadQwen3WeightsOptions): "f32" | "f16" {
  const matrixDtype = options.matrixDtype ?? "f32";
  if (matrixDtype !== "f32" && matrixDtype !== "f16") {
    throw new TypeError(
      `Cannot load Qwen3 weights from "${dir}": option "matrixDtype" must be "f32" or "f16": ` +
        `current value is ${JSON.stringify(matrixDtype)}`,
    );
  }
  return matrixDtype;
}

/**
 * One tensor of the table, shape checked: the matrices (every 2-D tensor; the norms are 1-D
 * gains) as f16 bits with `matrixDtype: "f16"`, everything else as float32.
 */
function readEntry(
  file: SafetensorsFile,
  entry: Pick<TensorEntry, "name" | "shape">,
  matrixDtype: "f32" | "f16",
): Float32Array | Uint16Array {
  return entry.shape.length === 2 && matrixDtype === "f16"
    ? readTensorF16(file, entry.name, { expectedShape: entry.shape })
    : readTensorF32(file, entry.name, { expectedShape: entry.shape });
}

/** Bytes compared per read when checking a tied `lm_head.weight` against the embeddings. */
const COMPARE_CHUNK_BYTES = 16 << 20;

/** Reads `length` bytes at `position` of an open file into `buffer` (which it fills). */
async function readAt(file: Deno.FsFile, position: number, buffer: Uint8Array, path: string) {
  await file.seek(position, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) throw new RangeError(`Cannot read "${path}": unexpected end of file`);
    filled += n;
  }
}

/** Where a tensor's data starts in its file: after the 8-byte length and the JSON header. */
async function dataStartOf(file: Deno.FsFile, path: string): Promise<number> {
  const length = new Uint8Array(8);
  await readAt(file, 0, length, path);
  return 8 + Number(new DataView(length.buffer).getBigUint64(0, true));
}

/**
 * Whether two tensors (same dtype and shape) hold the same bytes, read in chunks of
 * {@linkcode COMPARE_CHUNK_BYTES} so that a large embedding matrix is never held twice.
 */
async function sameTensorBytes(
  a: { path: string; info: SafetensorsTensorInfo },
  b: { path: string; info: SafetensorsTensorInfo },
): Promise<boolean> {
  const fa = await Deno.open(a.path, { read: true });
  try {
    const fb = await Deno.open(b.path, { read: true });
    try {
      const startA = (await dataStartOf(fa, a.path)) + a.info.dataOffsets[0];
      const startB = (await dataStartOf(fb, b.path)) + b.info.dataOffsets[0];
      const total = a.info.dataOffsets[1] - a.info.dataOffsets[0];
      const bufA = new Uint8Array(Math.min(COMPARE_CHUNK_BYTES, total));
      const bufB = new Uint8Array(bufA.length);
      for (let done = 0; done < total; done += bufA.length) {
        const n = Math.min(bufA.length, total - done);
        const ca = bufA.subarray(0, n);
        const cb = bufB.subarray(0, n);
        await readAt(fa, startA + done, ca, a.path);
        await readAt(fb, startB + done, cb, b.path);
        const words = n >> 2; // compare 4 bytes at a time (no BigInt per word), then the tail
        const wa = new Uint32Array(bufA.buffer, 0, words);
        const wb = new Uint32Array(bufB.buffer, 0, words);
        for (let i = 0; i < words; i++) if (wa[i] !== wb[i]) return false;
        for (let i = words << 2; i < n; i++) if (ca[i] !== cb[i]) return false;
      }
      return true;
    } finally {
      fb.close();
    }
  } finally {
    fa.close();
  }
}

/** How many unused tensor names a warning lists before "and N more". */
const WARN_NAMES = 8;

/**
 * Checks the checkpoint's tensors that the table does not read: errors for the ones that mean the
 * config and the file disagree (a layer at or past `num_hidden_layers`; a bias of a tensor the
 * model has, as Qwen3 has none and running without a trained bias is wrong); a warning for a
 * tied `lm_head.weight` whose dtype, shape or bytes differ from `model.embed_tokens.weight`
 * (ignored, as transformers ignores it); and one warning listing the rest (e.g.
 * `model.rotary_emb.inv_freq`, which older exports saved).
 */
async function checkUnusedTensors(
  source: TensorSource,
  config: Qwen3Config,
  table: readonly TensorEntry[],
  warn: (message: string) => void,
): Promise<void> {
  const used = new Set(table.map((entry) => entry.name));
  const where = (name: string): string =>
    `Cannot load Qwen3 weights: "${source.pathOf(name)}" has tensor "${name}"`;
  const harmless: string[] = [];
  const L = config.numHiddenLayers;
  for (const name of source.names()) {
    if (used.has(name)) continue;
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    if (layer !== null && Number(layer[1]) >= L) {
      throw new RangeError(
        `${where(name)} of layer ${layer[1]}, but the config's key "num_hidden_layers" is ${L} ` +
          `(layers 0 to ${L - 1}): the config and the checkpoint disagree`,
      );
    }
    if (name.endsWith(".bias") && used.has(`${name.slice(0, -".bias".length)}.weight`)) {
      throw new RangeError(
        `${where(name)}, but Qwen3 has no biases (the config's "attention_bias" is false): ` +
          `the model would run without this trained bias`,
      );
    }
    if (name === "lm_head.weight" && config.tieWordEmbeddings) {
      const embed = "model.embed_tokens.weight";
      const a = (await source.fileFor(embed)).tensors.get(embed)!;
      const b = (await source.fileFor(name)).tensors.get(name)!;
      const same = a.dtype === b.dtype && a.shape.join() === b.shape.join() &&
        await sameTensorBytes(
          { path: source.pathOf(embed), info: a },
          { path: source.pathOf(name), info: b },
        );
      if (!same) {
        // transformers ties the head to the embeddings after loading and drops this tensor too.
        warn(
          `${where(name)} (${b.dtype} [${b.shape}]) that differs from "${embed}" in ` +
            `"${source.pathOf(embed)}" (${a.dtype} [${a.shape}]); the config's key ` +
            `"tie_word_embeddings" is true, so the LM head is the embedding matrix and this ` +
            `tensor is ignored, as transformers does (set the key to false to use it)`,
        );
      }
      continue; // the tied copy HF checkpoints may carry: nothing to say
    }
    harmless.push(name);
  }
  if (harmless.length > 0) {
    const files = [...new Set(harmless.map((name) => source.pathOf(name)))];
    const listed = harmless.slice(0, WARN_NAMES).map((name) => `"${name}"`).join(", ");
    const more = harmless.length > WARN_NAMES ? ` and ${harmless.length - WARN_NAMES} more` : "";
    warn(
      `Qwen3 weights: ${harmless.length} tensor(s) of ${
        files.map((f) => `"${f}"`).join(", ")
      } not used by the model, ignored: ${listed}${more}`,
    );
  }
}

/** The checkpoint's tensors: `model.safetensors`, or the shards of its index. */
async function openSource(dir: string): Promise<TensorSource> {
  const singlePath = joinPath(dir, "model.safetensors");
  const indexPath = joinPath(dir, "model.safetensors.index.json");
  if (await exists(singlePath)) return await singleFileSource(singlePath);
  if (await exists(indexPath)) return await shardedSource(dir, indexPath);
  throw new Deno.errors.NotFound(
    `Cannot load Qwen3 weights from "${dir}": neither "${singlePath}" nor "${indexPath}" exists`,
  );
}

/**
 * Loads every weight of a HuggingFace Qwen3 checkpoint as float32 (F32 copied, BF16/F16
 * converted exactly), checking each tensor's shape against the config.
 *
 * The directory must hold `model.safetensors` or, for sharded checkpoints,
 * `model.safetensors.index.json` whose `weight_map` names the shard of each tensor. Only the
 * tensors the model needs are read, one at a time; with tied embeddings `lmHead` is the
 * `embedTokens` array itself, and an `lm_head.weight` in the file is only compared with the
 * embeddings (in chunks), as are the checkpoint's other tensors that the model does not use: a
 * layer at or past `num_hidden_layers` or a bias (Qwen3 has none) is an error; a tied
 * `lm_head.weight` that differs from the embeddings (ignored, as transformers does) and anything
 * else (e.g. `model.rotary_emb.inv_freq`) get warnings through `options.warn`.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration (see {@linkcode readQwen3Config}).
 * @param options `matrixDtype: "f16"` reads the matrices as f16 bits (see
 * {@linkcode LoadQwen3WeightsOptions}).
 * @returns The weights.
 * @throws {Deno.errors.NotFound} If neither checkpoint file exists, or a shard listed in the index
 * is missing; the message names the index and the shard.
 * @throws {Error} If a tensor is missing; the message names the tensor and the file(s) searched.
 * @throws {RangeError} If a tensor's shape is wrong; the message names the file, tensor, expected
 * and actual shape.
 * @throws {TypeError} If a tensor's dtype is not a float type, or the index is malformed.
 * @throws {RangeError} If the checkpoint has a tensor the config disagrees with (a layer at or
 * past `num_hidden_layers`, a bias, a tied `lm_head.weight` unlike the embeddings); the message
 * names the file, the tensor and the config key.
 * @throws {RangeError} With `matrixDtype: "f16"`, if a matrix holds a value that f16 cannot hold
 * finitely (|x| ≥ 65520, ±Inf, NaN); the message names the file, tensor, row and column.
 *
 * @example Load the test fixture
 * ```ts
 * import assert from "node:assert/strict";
 * import { readQwen3Config } from "./config.ts";
 * import { loadQwen3Weights } from "./weights.ts";
 *
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const weights = await loadQwen3Weights(dir, config);
 * assert.equal(weights.layers.length, config.numHiddenLayers);
 * assert.equal(weights.embedTokens.length, config.vocabSize * config.hiddenSize);
 * assert.equal(weights.lmHead, weights.embedTokens); // tied embeddings
 * ```
 */
export async function loadQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options?: LoadQwen3WeightsOptions & { matrixDtype?: "f32" },
): Promise<Qwen3Weights>;
/**
 * {@linkcode loadQwen3Weights} with `matrixDtype: "f16"`: the embeddings, projections and LM head
 * as f16 bit patterns, the norms as float32.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration.
 * @param options `matrixDtype: "f16"`.
 * @returns The weights, matrices as f16 bits.
 */
export async function loadQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options: LoadQwen3WeightsOptions & { matrixDtype: "f16" },
): Promise<Qwen3Weights<Uint16Array>>;
/**
 * {@linkcode loadQwen3Weights} with a `matrixDtype` known only at run time.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration.
 * @param options The matrices' type.
 * @returns The weights, matrices as float32 or f16 bits.
 */
export async function loadQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options?: LoadQwen3WeightsOptions,
): Promise<Qwen3Weights | Qwen3Weights<Uint16Array>>;
export async function loadQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options: LoadQwen3WeightsOptions = {},
): Promise<Qwen3Weights | Qwen3Weights<Uint16Array>> {
  const matrixDtype = checkMatrixDtype(dir, options);
  const source = await openSource(dir);
  try {
    const table = modelTensorTable(config);
    await checkUnusedTensors(source, config, table, options.warn ?? console.warn);
    // Every tensor of the table, in checkpoint order (with tied embeddings the table has no
    // lm_head.weight, and the LM head is the embedding array itself).
    const top: Record<string, Float32Array | Uint16Array> = {};
    const layers = Array.from(
      { length: config.numHiddenLayers },
      () => ({}) as Record<string, Float32Array | Uint16Array>,
    );
    for (const entry of table) {
      const data = readEntry(await source.fileFor(entry.name), entry, matrixDtype);
      if (entry.layer === null) top[entry.field] = data;
      else layers[entry.layer][entry.field] = data;
    }
    const embedTokens = top.embedTokens;
    const lmHead = top.lmHead ?? embedTokens;
    return { embedTokens, layers, norm: top.norm, lmHead } as unknown as
      | Qwen3Weights
      | Qwen3Weights<Uint16Array>;
  } finally {
    source.close();
  }
}

/** Weights whose tensors are read from the checkpoint when accessed; see {@linkcode openQwen3Weights}. */
export interface OpenQwen3Weights<M extends Float32Array | Uint16Array = Float32Array> {
  /**
   * The weights. Each access to a layer's field reads that tensor from disk again (nothing keeps
   * it); `embedTokens`, `norm` and `lmHead` are read once, on first access, and kept (with tied
   * embeddings `lmHead` is the `embedTokens` array).
   */
  readonly weights: Qwen3Weights<M>;
  /**
   * Reads one tensor of the table (`modelTensorTable(config)`) from disk, keeping nothing: for a
   * consumer that holds each tensor only while it writes it (the GGUF export), where `weights`
   * would keep the embeddings and LM head.
   *
   * @param entry The table row.
   * @returns A fresh array (f16 bits for a matrix with `matrixDtype: "f16"`).
   * @throws {RangeError} If the entry is not a tensor of the table.
   */
  read(entry: Pick<TensorEntry, "name" | "shape">): M | Float32Array;
  /** Closes the checkpoint files; a later access to a tensor not yet read throws. */
  close(): void;
  /** `close()`, for a `using` declaration. */
  [Symbol.dispose](): void;
}

/**
 * Opens a checkpoint's weights for one pass of reading: every tensor is located and its shape
 * and dtype checked now, and the tensors the model does not use as in
 * {@linkcode loadQwen3Weights} (so a bad checkpoint fails before any upload), and read only when its
 * field is accessed. A consumer that reads each tensor once and keeps none, as the upload of
 * `WebGpuQwen3`, then holds at most one layer tensor (plus the embeddings and LM head) on the
 * host at a time, instead of the whole model as {@linkcode loadQwen3Weights} does.
 *
 * @param dir The checkpoint directory (as for {@linkcode loadQwen3Weights}).
 * @param config The model's configuration.
 * @param options `matrixDtype: "f16"` reads the matrices as f16 bits.
 * @returns The weights and a `close()` to call when done.
 * @throws {Deno.errors.NotFound} As {@linkcode loadQwen3Weights}.
 * @throws {Error} If a tensor is missing, naming the tensor and the file(s) searched.
 * @throws {RangeError} If a tensor's shape is wrong, naming the file, tensor and both shapes.
 * @throws {TypeError} If a tensor's dtype is not F32, F16, BF16 or F64.
 * @throws {RangeError} If the checkpoint has a tensor the config disagrees with, as
 * {@linkcode loadQwen3Weights}.
 *
 * @example Read the fixture's layer 0 query projection, and nothing else
 * ```ts
 * import assert from "node:assert/strict";
 * import { readQwen3Config } from "./config.ts";
 * import { openQwen3Weights } from "./weights.ts";
 *
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const open = await openQwen3Weights(dir, config);
 * try {
 *   const q = open.weights.layers[0].qProj;
 *   assert.equal(q.length, config.numAttentionHeads * config.headDim * config.hiddenSize);
 *   assert.notEqual(open.weights.layers[0].qProj, q); // read again: nothing is kept
 *   assert.equal(open.weights.lmHead, open.weights.embedTokens); // tied
 * } finally {
 *   open.close();
 * }
 * ```
 */
export async function openQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options?: LoadQwen3WeightsOptions & { matrixDtype?: "f32" },
): Promise<OpenQwen3Weights>;
/**
 * {@linkcode openQwen3Weights} with `matrixDtype: "f16"`: the matrices as f16 bits.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration.
 * @param options `matrixDtype: "f16"`.
 * @returns The weights and a `close()`.
 */
export async function openQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options: LoadQwen3WeightsOptions & { matrixDtype: "f16" },
): Promise<OpenQwen3Weights<Uint16Array>>;
/**
 * {@linkcode openQwen3Weights} with a `matrixDtype` known only at run time.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration.
 * @param options The matrices' type.
 * @returns The weights and a `close()`.
 */
export async function openQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options?: LoadQwen3WeightsOptions,
): Promise<OpenQwen3Weights | OpenQwen3Weights<Uint16Array>>;
export async function openQwen3Weights(
  dir: string,
  config: Qwen3Config,
  options: LoadQwen3WeightsOptions = {},
): Promise<OpenQwen3Weights | OpenQwen3Weights<Uint16Array>> {
  const matrixDtype = checkMatrixDtype(dir, options);
  const source = await openSource(dir);
  try {
    const table = modelTensorTable(config);
    const files = new Map<string, SafetensorsFile>();
    for (const entry of table) {
      const file = await source.fileFor(entry.name);
      const info = file.tensors.get(entry.name)!;
      checkShape(file, info, entry.shape);
      if (!["F32", "F16", "BF16", "F64"].includes(info.dtype)) {
        throw new TypeError(
          `Cannot read tensor "${entry.name}" from "${file.path}": unsupported dtype ` +
            `"${info.dtype}" (expected F32, F16, BF16 or F64)`,
        );
      }
      files.set(entry.name, file);
    }
    await checkUnusedTensors(source, config, table, options.warn ?? console.warn);
    const read = (entry: Pick<TensorEntry, "name" | "shape">): Float32Array | Uint16Array => {
      const file = files.get(entry.name);
      if (file === undefined) {
        throw new RangeError(
          `Cannot read tensor "${entry.name}" from "${dir}": not a tensor of the model's table`,
        );
      }
      return readEntry(file, entry, matrixDtype);
    };
    const top: Record<string, unknown> = {};
    const kept = new Map<string, Float32Array | Uint16Array>();
    const layers = Array.from({ length: config.numHiddenLayers }, () => ({}));
    for (const entry of table) {
      const getter = entry.layer === null
        ? () => {
          let data = kept.get(entry.name);
          if (data === undefined) kept.set(entry.name, data = read(entry));
          return data;
        }
        : () => read(entry);
      Object.defineProperty(entry.layer === null ? top : layers[entry.layer], entry.field, {
        get: getter,
        enumerable: true,
      });
    }
    top.layers = layers;
    if (!("lmHead" in top)) {
      Object.defineProperty(top, "lmHead", {
        get: () => (top as { embedTokens: unknown }).embedTokens,
        enumerable: true,
      });
    }
    return {
      weights: top as unknown as Qwen3Weights & Qwen3Weights<Uint16Array>,
      read: read as (entry: Pick<TensorEntry, "name" | "shape">) => Float32Array & Uint16Array,
      close: () => source.close(),
      [Symbol.dispose]: () => source.close(),
    };
  } catch (error) {
    source.close();
    throw error;
  }
}
