/**
 * Float64 reference of the GPU sampler: the sampling distribution by sorting (softmax of
 * `logits / temperature` restricted by top-k, then top-p, then min-p, as HuggingFace's warpers),
 * and one draw from it by the Gumbel-max trick with the same Philox numbers as `sample.wgsl`.
 *
 * @module
 */
import { gumbelNoise, sampleUniform } from "./philox_ref.ts";

/** How the next token is chosen from one row of logits. */
export interface SamplingParams {
  /** `0` picks the most likely token (greedy; the filters are ignored); else the softmax temperature. */
  temperature: number;
  /** Keep the `topK` most likely tokens (ties with the last one included); `0` or ≥ vocab = off. */
  topK?: number;
  /** Then keep the smallest top set whose mass is at least `topP` (ties included); `1` = off. */
  topP?: number;
  /** Then keep tokens whose probability is at least `minP` times the largest; `0` = off. */
  minP?: number;
}

/** One draw of {@linkcode sampleRef}. */
export interface SampleRefResult {
  /** The chosen token id. */
  token: number;
  /** Its log-probability under the sampling distribution (0 for greedy). */
  logprob: number;
  /** Its log-probability under the model: `log_softmax(logits)[token]`. */
  modelLogprob: number;
}

/**
 * The probability of each token under the sampling distribution.
 *
 * @param logits One row of raw logits.
 * @param params Temperature and filters.
 * @returns Probabilities (0 for filtered tokens), summing to 1.
 *
 * @example Top-2 of three tokens
 * ```ts
 * import { samplingDistributionRef } from "./sample_ref.ts";
 * const p = samplingDistributionRef([0, Math.log(2), Math.log(3)], { temperature: 1, topK: 2 });
 * console.log(p); // Float64Array [0, 0.4, 0.6]
 * ```
 */
export function samplingDistributionRef(
  logits: ArrayLike<number>,
  params: SamplingParams,
): Float64Array {
  const v = logits.length;
  const out = new Float64Array(v);
  if (params.temperature === 0) {
    let best = 0;
    for (let j = 1; j < v; j++) if (logits[j] > logits[best]) best = j;
    out[best] = 1;
    return out;
  }
  const z = Float64Array.from(logits, (l) => l / params.temperature);
  const order = Array.from({ length: v }, (_, j) => j).sort((a, b) => z[b] - z[a] || a - b);
  const zmax = z[order[0]];
  // The kept set is always a top set {j : z[j] >= threshold}.
  let threshold = -Infinity;
  const topK = params.topK ?? 0;
  if (topK > 0 && topK < v) threshold = z[order[topK - 1]];
  const topP = params.topP ?? 1;
  if (topP < 1) {
    let mass = 0;
    for (const j of order) if (z[j] >= threshold) mass += Math.exp(z[j] - zmax);
    let cum = 0;
    for (const j of order) {
      cum += Math.exp(z[j] - zmax);
      if (cum >= topP * mass) {
        threshold = Math.max(threshold, z[j]);
        break;
      }
    }
  }
  const minP = params.minP ?? 0;
  let total = 0;
  for (let j = 0; j < v; j++) {
    const w = Math.exp(z[j] - zmax);
    if (z[j] >= threshold && (minP <= 0 || w >= minP)) {
      out[j] = w;
      total += w;
    }
  }
  for (let j = 0; j < v; j++) out[j] /= total;
  return out;
}

/** The RNG coordinates of one draw of {@linkcode sampleRef}, and the ids banned from it. */
export interface SampleRefOptions extends SamplingParams {
  /** RNG seed. */
  seed: number;
  /** Sequence index (RNG stream). */
  sequence: number;
  /** Output step (RNG counter). */
  step: number;
  /**
   * Ids whose logits count as −∞ for the choice and the sampling distribution (HuggingFace's
   * `min_new_tokens` bans the EOS ids so); the model log-prob uses the raw logits. Default none.
   */
  bannedTokenIds?: readonly number[];
}

/**
 * Draws one token as the GPU sampler does: `argmax_j (logits[j] / T − log(−log u_j))` over the
 * kept tokens, with `u_j = sampleUniform(seed, sequence, step, j)` (Gumbel-max; the noise from
 * {@linkcode gumbelNoise}, as the GPU computes it), or the lowest
 * index of the largest logit when greedy; banned ids are never drawn.
 *
 * @param logits One row of raw logits.
 * @param options Sampling parameters and the RNG coordinates.
 * @returns The token and its log-probabilities.
 *
 * @example Greedy
 * ```ts
 * import { sampleRef } from "./sample_ref.ts";
 * const r = sampleRef([1, 3, 2], { temperature: 0, seed: 0, sequence: 0, step: 0 });
 * console.log(r.token, r.logprob); // 1 0
 * ```
 */
export function sampleRef(
  logits: ArrayLike<number>,
  options: SampleRefOptions,
): SampleRefResult {
  const v = logits.length;
  let lmax = -Infinity;
  for (let j = 0; j < v; j++) lmax = Math.max(lmax, logits[j]);
  let sum = 0;
  for (let j = 0; j < v; j++) sum += Math.exp(logits[j] - lmax);
  const logZ = lmax + Math.log(sum);
  const banned = options.bannedTokenIds ?? [];
  let allowed: ArrayLike<number> = logits;
  if (banned.length > 0) {
    const masked = Float64Array.from(logits);
    for (const id of banned) masked[id] = -Infinity;
    allowed = masked;
  }
  const dist = samplingDistributionRef(allowed, options);
  let token = -1;
  if (options.temperature === 0) {
    token = dist.indexOf(1);
  } else {
    let best = -Infinity;
    for (let j = 0; j < v; j++) {
      if (dist[j] === 0) continue;
      const u = sampleUniform(options.seed, options.sequence, options.step, j);
      const score = logits[j] / options.temperature + gumbelNoise(u);
      if (score > best) {
        best = score;
        token = j;
      }
    }
  }
  return {
    token,
    logprob: options.temperature === 0 ? 0 : Math.log(dist[token]),
    modelLogprob: logits[token] - logZ,
  };
}
