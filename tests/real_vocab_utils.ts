// Shared set-up of tests/webgpu_real_vocab_test.ts (a LoRA training step) and
// tests/webgpu_real_vocab_logprobs_test.ts (token log-probs, keepActivations), split in two files
// so that the parallel test runner can run them at once: Qwen3's real vocabulary (151,936) on
// WebGPU with a tiny hidden size, 2 × 1,024 tokens whose logits (1.2 GB in float32) never exist
// whole: the LM head runs in blocks of tokens. Checked against the float64 CPU backend.
//
// The CPU reference does not materialise the logits either: a CPU model with the same layers and
// the first 4,096 embedding rows (every id here is below 4,096, so its hidden states are the real
// model's) gives the final-norm states x in float64; the log-softmax over the real head is then
// streamed row by row at 48 positions spread over every block (and the log-prob gradient
// d lp / d x = e_target − Σ_j p_j e_j, pushed through the CPU backward as a final-norm
// cotangent, gives the LoRA gradient of Σ_p c_p · lp_p).
//
// Tolerances: log-probs and entropies 1e-4 absolute (a float32 log-sum-exp over 151,936 terms;
// measured 4.2e-6), LoRA gradients 1e-4 relative to each tensor's largest entry (float32 forward
// and backward, the LM head's d x summing 151,936 products; measured 4.1e-5). The gradient test
// caught Mesa's loop limit cutting that sum off at ~58,000 terms (kernels/matmul/matmul.wgsl).
//
// `keepActivations` at the real vocabulary (tests/webgpu_real_vocab_logprobs_test.ts): 256
// tokens in the default LM-head blocks (each block's logits kept in a buffer within one binding,
// not recomputed) give the same LoRA gradients and log-probs bit for bit as the recomputing step.
import type { Qwen3Config } from "../model/config.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { Lora } from "../model/adapter_types.ts";

/** Log-probs and entropies: absolute tolerance. */
export const LP_TOL = 1e-4;
/** LoRA gradients: tolerance relative to each tensor's largest entry. */
export const GRAD_TOL = 1e-4;
/** Qwen3's vocabulary. */
export const V = 151936;
/** Embedding rows of the CPU model (every id of {@linkcode ids} is below it). */
export const SMALL_V = 4096;
/** Batch and sequence length. */
export const [B, T] = [2, 1024];
/** The model: the real vocabulary, hidden size 8, 2 layers. */
export const config: Qwen3Config = {
  vocabSize: V,
  hiddenSize: 8,
  intermediateSize: 16,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  numKeyValueHeads: 1,
  headDim: 4,
  rmsNormEps: 1e-6,
  ropeTheta: 1e4,
  maxPositionEmbeddings: T,
  tieWordEmbeddings: true,
  eosTokenIds: [],
  bosTokenId: null,
  padTokenId: null,
};
/** Hidden size. */
export const H = config.hiddenSize;
/** Large embeddings: peaked next-token distributions (not all near log V). */
export const weights = initQwen3Weights(config, { seed: 5, std: 0.6 });
/** The embedding, tied to the LM head. */
export const embed = weights.embedTokens;
/** Token ids `[B, T]`, all below {@linkcode SMALL_V}. */
export const ids = Array.from(
  { length: B },
  (_, b) => Array.from({ length: T }, (_, t) => (b * 7919 + t * 104729 + t * t) % SMALL_V),
);
/** 48 scored positions (flat index b·T + t, t < T − 1) over both sequences and every block. */
export const positions = Array.from({ length: 48 }, (_, i) => {
  const flat = Math.floor((i * (B * T - 2)) / 47);
  return flat % T === T - 1 ? flat - 1 : flat;
});

/** A CPU model with the same layers and the first SMALL_V embedding rows (untied, zero head). */
export function smallCpu(lora?: Lora): CpuQwen3 {
  const c = { ...config, vocabSize: SMALL_V, tieWordEmbeddings: false };
  const cpu = new CpuQwen3(c, {
    ...weights,
    embedTokens: embed.slice(0, SMALL_V * H),
    lmHead: new Float32Array(SMALL_V * H),
  });
  if (lora) cpu.setAdapters(lora);
  return cpu;
}

/** Streams the real head over one final-norm row: lse, the target's log-prob, entropy, Σ p e. */
export function headRow(
  x: Float64Array,
  offset: number,
  target: number,
): { logprob: number; entropy: number; meanE: Float64Array } {
  const z = new Float64Array(V);
  let max = -Infinity;
  for (let j = 0; j < V; j++) {
    let s = 0;
    for (let k = 0; k < H; k++) s += embed[j * H + k] * x[offset + k];
    z[j] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(z[j] - max);
  const lse = max + Math.log(sum);
  let entropy = 0;
  const meanE = new Float64Array(H);
  for (let j = 0; j < V; j++) {
    const p = Math.exp(z[j] - lse);
    if (p > 0) entropy -= p * (z[j] - lse);
    for (let k = 0; k < H; k++) meanE[k] += p * embed[j * H + k];
  }
  return { logprob: z[target] - lse, entropy, meanE };
}
