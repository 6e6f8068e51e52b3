/**
 * Random initialisation of a Qwen3 model from its configuration, as HuggingFace's
 * `Qwen3PreTrainedModel._init_weights` does it: every linear layer and the embedding drawn from a
 * normal distribution `N(0, std²)` (`initializer_range`), every RMSNorm weight set to 1. The
 * numbers come from a seeded counter-free stream (mulberry32 + Box–Muller, no `Math.random`), so a
 * seed always gives the same weights.
 *
 * @example A fresh 2-layer model that runs on the CPU backend
 * ```ts
 * import { initQwen3Weights } from "./init.ts";
 * import { CpuQwen3 } from "./qwen3_cpu.ts";
 * import type { Qwen3Config } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config: Qwen3Config = {
 *   vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
 *   numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 8, rmsNormEps: 1e-6, ropeTheta: 10000,
 *   maxPositionEmbeddings: 64, tieWordEmbeddings: true, eosTokenIds: [54], bosTokenId: null,
 *   padTokenId: 52,
 * };
 * const model = new CpuQwen3(config, initQwen3Weights(config, { seed: 0 }));
 * const { logits } = await model.forward({ inputIds: [[1, 2, 3]] });
 * strictEqual(logits.length, 3 * 64);
 * ```
 *
 * @module
 */

import { fmix32, mulberry32 } from "../internal/random.ts";
import type { Qwen3Config } from "./config.ts";
import type { Qwen3LayerWeights, Qwen3Weights } from "./weights.ts";

/**
 * Options of {@linkcode initQwen3Weights}.
 *
 * @example Usage
 * ```ts
 * import type { InitQwen3Options } from "./init.ts";
 *
 * const options: InitQwen3Options = { seed: 7, std: 0.02 };
 * ```
 */
export interface InitQwen3Options {
  /** Seed of the stream, a non-negative safe integer. */
  seed: number;
  /** Standard deviation of the normal init of matrices (`initializer_range`). Default `0.02`. */
  std?: number;
}

/** Mixes both 32-bit halves of a safe integer seed into one 32-bit state. */
function seedState(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return fmix32((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0);
}

function normal(n: number, std: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box–Muller; 1 − u keeps the logarithm finite.
    const u = 1 - rand();
    const v = rand();
    const radius = Math.sqrt(-2 * Math.log(u));
    out[i] = std * radius * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = std * radius * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function positiveInteger(config: Qwen3Config, key: keyof Qwen3Config): number {
  const value = config[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Cannot initialise Qwen3 weights: config key "${key}" must be a positive integer: ` +
        `current value is ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Draws fresh weights for a Qwen3 model of the given shape: the embedding, every projection and
 * (when not tied) the LM head from `N(0, std²)`, every RMSNorm weight (input, post-attention,
 * q/k and final norms) equal to 1. Tensors are drawn in checkpoint order (embedding, then layer
 * by layer q, k, v, o, gate, up, down, then the LM head) from one stream, so a seed fixes them
 * all. With `tieWordEmbeddings` the `lmHead` is the `embedTokens` array itself.
 *
 * @param config The model shape (only the sizes and `tieWordEmbeddings` are read).
 * @param options The seed and the standard deviation.
 * @returns The weights, float32.
 * @throws {RangeError} When a size is not a positive integer, the seed is not a non-negative safe
 *   integer, or `std` is not a finite number > 0.
 *
 * @example Tied embeddings share one array
 * ```ts
 * import { initQwen3Weights } from "./init.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [], bosTokenId: null,
 *   padTokenId: null,
 * };
 * const weights = initQwen3Weights(config, { seed: 1 });
 * strictEqual(weights.lmHead, weights.embedTokens);
 * strictEqual(weights.norm[0], 1);
 * deepStrictEqual(initQwen3Weights(config, { seed: 1 }).layers[0].qProj, weights.layers[0].qProj);
 * ```
 */
export function initQwen3Weights(config: Qwen3Config, options: InitQwen3Options): Qwen3Weights {
  const { seed } = options;
  const std = options.std ?? 0.02;
  if (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(
      `Cannot initialise Qwen3 weights: option "seed" must be a non-negative safe integer: ` +
        `current value is ${JSON.stringify(seed)}`,
    );
  }
  if (typeof std !== "number" || !Number.isFinite(std) || std <= 0) {
    throw new RangeError(
      `Cannot initialise Qwen3 weights: option "std" must be a finite number > 0: current ` +
        `value is ${JSON.stringify(std)}`,
    );
  }
  const V = positiveInteger(config, "vocabSize");
  const H = positiveInteger(config, "hiddenSize");
  const I = positiveInteger(config, "intermediateSize");
  const L = positiveInteger(config, "numHiddenLayers");
  const D = positiveInteger(config, "headDim");
  const q = positiveInteger(config, "numAttentionHeads") * D;
  const kv = positiveInteger(config, "numKeyValueHeads") * D;
  const rand = mulberry32(seedState(seed));
  const draw = (n: number): Float32Array => normal(n, std, rand);
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);

  const embedTokens = draw(V * H);
  const layers: Qwen3LayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    const qProj = draw(q * H);
    const kProj = draw(kv * H);
    const vProj = draw(kv * H);
    const oProj = draw(H * q);
    const gateProj = draw(I * H);
    const upProj = draw(I * H);
    const downProj = draw(H * I);
    layers.push({
      inputLayernorm: ones(H),
      qProj,
      kProj,
      vProj,
      oProj,
      qNorm: ones(D),
      kNorm: ones(D),
      postAttentionLayernorm: ones(H),
      gateProj,
      upProj,
      downProj,
    });
  }
  const lmHead = config.tieWordEmbeddings ? embedTokens : draw(V * H);
  return { embedTokens, layers, norm: ones(H), lmHead };
}
