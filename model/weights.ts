/**
 * Loading the weights of a HuggingFace Qwen3 checkpoint (`model.safetensors`, or shards listed by
 * `model.safetensors.index.json`) as float32 arrays.
 *
 * @module
 */

import { exists } from "../internal/exists.ts";
import type { Qwen3Config } from "./config.ts";
import { openSafetensors, readTensorF32, type SafetensorsFile } from "../internal/safetensors.ts";
import { modelTensorTable, type TensorEntry } from "./tensor_table.ts";

/**
 * The weights of one decoder layer, every matrix row-major `[out, in]` as in PyTorch, with
 * `H = hiddenSize`, `I = intermediateSize`, `D = headDim`.
 */
export interface Qwen3LayerWeights {
  /** RMSNorm weight before attention, `[H]`. */
  inputLayernorm: Float32Array;
  /** Query projection, `[numAttentionHeads * D, H]`. */
  qProj: Float32Array;
  /** Key projection, `[numKeyValueHeads * D, H]`. */
  kProj: Float32Array;
  /** Value projection, `[numKeyValueHeads * D, H]`. */
  vProj: Float32Array;
  /** Output projection, `[H, numAttentionHeads * D]`. */
  oProj: Float32Array;
  /** Per-head RMSNorm weight of the queries, `[D]`. */
  qNorm: Float32Array;
  /** Per-head RMSNorm weight of the keys, `[D]`. */
  kNorm: Float32Array;
  /** RMSNorm weight before the MLP, `[H]`. */
  postAttentionLayernorm: Float32Array;
  /** SwiGLU gate projection, `[I, H]`. */
  gateProj: Float32Array;
  /** SwiGLU up projection, `[I, H]`. */
  upProj: Float32Array;
  /** SwiGLU down projection, `[H, I]`. */
  downProj: Float32Array;
}

/** All weights of a Qwen3 causal language model as float32, row-major. */
export interface Qwen3Weights {
  /** Token embeddings, `[vocabSize, hiddenSize]`. */
  embedTokens: Float32Array;
  /** The decoder layers in order. */
  layers: Qwen3LayerWeights[];
  /** Final RMSNorm weight, `[hiddenSize]`. */
  norm: Float32Array;
  /** LM head, `[vocabSize, hiddenSize]`; the same array as `embedTokens` when embeddings are tied. */
  lmHead: Float32Array;
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

/** Where each tensor lives: one file, or shards named by an index. */
interface TensorSource {
  /** The file that holds `name`; throws naming the file(s) searched when none does. */
  fileFor(name: string): Promise<SafetensorsFile>;
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
    close(): void {
      for (const file of open.values()) file.close();
      open.clear();
    },
  };
}

/**
 * Loads every weight of a HuggingFace Qwen3 checkpoint as float32 (F32 copied, BF16/F16
 * converted exactly), checking each tensor's shape against the config.
 *
 * The directory must hold `model.safetensors` or, for sharded checkpoints,
 * `model.safetensors.index.json` whose `weight_map` names the shard of each tensor. Only the
 * tensors the model needs are read, one at a time; with tied embeddings `lm_head.weight` is not
 * read even if present, and `lmHead` is the `embedTokens` array itself.
 *
 * @param dir The checkpoint directory.
 * @param config The model's configuration (see {@linkcode readQwen3Config}).
 * @returns The weights.
 * @throws {Deno.errors.NotFound} If neither checkpoint file exists, or a shard listed in the index
 * is missing; the message names the index and the shard.
 * @throws {Error} If a tensor is missing; the message names the tensor and the file(s) searched.
 * @throws {RangeError} If a tensor's shape is wrong; the message names the file, tensor, expected
 * and actual shape.
 * @throws {TypeError} If a tensor's dtype is not a float type, or the index is malformed.
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
export async function loadQwen3Weights(dir: string, config: Qwen3Config): Promise<Qwen3Weights> {
  const reader = await openQwen3Weights(dir);
  try {
    // Every tensor of the table, in checkpoint order (with tied embeddings the table has no
    // lm_head.weight, and the LM head is the embedding array itself).
    const top: Partial<Record<"embedTokens" | "norm" | "lmHead", Float32Array>> = {};
    const layers = Array.from(
      { length: config.numHiddenLayers },
      () => ({}) as Partial<Qwen3LayerWeights>,
    );
    for (const entry of modelTensorTable(config)) {
      const data = await reader.read(entry);
      if (entry.layer === null) top[entry.field as keyof typeof top] = data;
      else layers[entry.layer][entry.field as keyof Qwen3LayerWeights] = data;
    }
    const embedTokens = top.embedTokens!;
    const norm = top.norm!;
    const lmHead = top.lmHead ?? embedTokens;
    return { embedTokens, layers: layers as Qwen3LayerWeights[], norm, lmHead };
  } finally {
    reader.close();
  }
}

/**
 * A checkpoint opened by {@linkcode openQwen3Weights}: reads one tensor at a time.
 *
 * @example Usage
 * ```ts
 * import type { Qwen3WeightReader } from "./weights.ts";
 *
 * async function sumOf(reader: Qwen3WeightReader, name: string, shape: number[]) {
 *   return (await reader.read({ name, shape })).reduce((a, b) => a + b, 0);
 * }
 * ```
 */
export interface Qwen3WeightReader {
  /**
   * Reads one tensor of {@linkcode modelTensorTable} as float32, checking its shape.
   *
   * @param entry The table row (its checkpoint `name` and `shape`).
   * @returns A fresh array.
   */
  read(entry: Pick<TensorEntry, "name" | "shape">): Promise<Float32Array>;
  /** Closes the files. */
  close(): void;
}

/**
 * Opens a HuggingFace Qwen3 checkpoint (`model.safetensors`, or shards listed by
 * `model.safetensors.index.json`) to read its tensors one at a time, as
 * {@linkcode loadQwen3Weights} does, without holding the others: for writers that stream a model.
 *
 * @param dir The checkpoint directory.
 * @returns The reader; close it when done.
 * @throws {Deno.errors.NotFound} As {@linkcode loadQwen3Weights}; its `read` throws as it does
 * for a missing tensor, a wrong shape or dtype.
 *
 * @example Read the fixture's final norm
 * ```ts
 * import assert from "node:assert/strict";
 * import { readQwen3Config } from "./config.ts";
 * import { modelTensorTable, type TensorEntry } from "./tensor_table.ts";
 * import { openQwen3Weights } from "./weights.ts";
 *
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const reader = await openQwen3Weights(dir);
 * try {
 *   const norm = modelTensorTable(config).find((e) => e.field === "norm")!;
 *   assert.equal((await reader.read(norm)).length, config.hiddenSize);
 * } finally {
 *   reader.close();
 * }
 * ```
 */
export async function openQwen3Weights(dir: string): Promise<Qwen3WeightReader> {
  const singlePath = joinPath(dir, "model.safetensors");
  const indexPath = joinPath(dir, "model.safetensors.index.json");
  let source: TensorSource;
  if (await exists(singlePath)) {
    source = await singleFileSource(singlePath);
  } else if (await exists(indexPath)) {
    source = await shardedSource(dir, indexPath);
  } else {
    throw new Deno.errors.NotFound(
      `Cannot load Qwen3 weights from "${dir}": neither "${singlePath}" nor "${indexPath}" exists`,
    );
  }
  return {
    read: async (entry) =>
      readTensorF32(await source.fileFor(entry.name), entry.name, { expectedShape: entry.shape }),
    close: () => source.close(),
  };
}
