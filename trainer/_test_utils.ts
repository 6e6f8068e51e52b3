// Private to trainer/ tests: a one-layer Qwen3 config small enough for finite differences.
import type { Qwen3Config } from "../model/config.ts";

/** A tiny one-layer model (20 tokens, hidden 8); override fields as needed. */
export const TINY_CONFIG: Qwen3Config = Object.freeze({
  vocabSize: 20,
  hiddenSize: 8,
  intermediateSize: 12,
  numHiddenLayers: 1,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  maxPositionEmbeddings: 16,
  tieWordEmbeddings: true,
  eosTokenIds: [],
  bosTokenId: null,
  padTokenId: null,
});
