// Random Qwen3 weights in memory for benchmarks: the tiny fixture shape or a Qwen3-0.6B shape
// (hidden 1024, 28 layers, 16/8 heads of 128, MLP 3072). On a software adapter the 0.6B shape is
// cut (fewer layers, smaller vocabulary) unless HALO_BENCH_FULL=1.
import type { Qwen3Config } from "../model/config.ts";
import type { Qwen3Weights } from "../model/weights.ts";

/**
 * The Qwen3-0.6B shape; `layers` and `vocab` may be cut for slow adapters; `maxPositions`
 * (default 4096) sizes the RoPE table.
 */
export function qwen3_0p6bConfig(
  options: { layers?: number; vocab?: number; maxPositions?: number } = {},
): Qwen3Config {
  return {
    vocabSize: options.vocab ?? 151936,
    hiddenSize: 1024,
    intermediateSize: 3072,
    numHiddenLayers: options.layers ?? 28,
    numAttentionHeads: 16,
    numKeyValueHeads: 8,
    headDim: 128,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    maxPositionEmbeddings: options.maxPositions ?? 4096,
    tieWordEmbeddings: true,
    eosTokenIds: [0],
    bosTokenId: null,
    padTokenId: null,
  };
}

/** Whether the full-size shapes were asked for. */
export function benchFull(): boolean {
  return Deno.env.get("HALO_BENCH_FULL") === "1";
}

/** Random weights of a config (uniform ±0.05, norms around 1), deterministic. */
export function randomWeights(c: Qwen3Config, seed = 1): Qwen3Weights {
  let state = seed >>> 0;
  const fill = (n: number, center = 0, spread = 0.05) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      a[i] = center + spread * ((state / 4294967296) * 2 - 1);
    }
    return a;
  };
  const [h, qd, kvd, inter] = [
    c.hiddenSize,
    c.numAttentionHeads * c.headDim,
    c.numKeyValueHeads * c.headDim,
    c.intermediateSize,
  ];
  const embed = fill(c.vocabSize * h);
  return {
    embedTokens: embed,
    lmHead: c.tieWordEmbeddings ? embed : fill(c.vocabSize * h),
    norm: fill(h, 1, 0.1),
    layers: Array.from({ length: c.numHiddenLayers }, () => ({
      inputLayernorm: fill(h, 1, 0.1),
      qProj: fill(qd * h),
      kProj: fill(kvd * h),
      vProj: fill(kvd * h),
      oProj: fill(h * qd),
      qNorm: fill(c.headDim, 1, 0.1),
      kNorm: fill(c.headDim, 1, 0.1),
      postAttentionLayernorm: fill(h, 1, 0.1),
      gateProj: fill(inter * h),
      upProj: fill(inter * h),
      downProj: fill(h * inter),
    })),
  };
}
