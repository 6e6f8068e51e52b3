/**
 * Float64 reference of the backward of the token log-probabilities
 * `logprobs[r] = logits[r, t_r] − lse_r`: `dlogits[r, :] = dLogprob[r] · (onehot(t_r) − softmax(logits[r, :]))`,
 * and zero rows where `t_r < 0` (no target).
 *
 * @param dLogprob Gradient of the log-probabilities `[rows]`.
 * @param logits Forward logits `[rows, v]`.
 * @param targets Target id per row (negative = none).
 * @param v Row length (vocabulary size).
 * @returns `dlogits` `[rows, v]`.
 *
 * @example Two equal logits, target 1
 * ```ts
 * import { logprobBackwardRef } from "./logprob_backward_ref.ts";
 * console.log(logprobBackwardRef([1], [0, 0], [1], 2)); // [-0.5, 0.5]
 * ```
 */
export function logprobBackwardRef(
  dLogprob: ArrayLike<number>,
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  v: number,
): Float64Array {
  const rows = targets.length;
  const dlogits = new Float64Array(rows * v);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t < 0) continue;
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits[r * v + j]);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(logits[r * v + j] - max);
    const g = dLogprob[r];
    for (let j = 0; j < v; j++) {
      dlogits[r * v + j] = -g * Math.exp(logits[r * v + j] - max) / sum;
    }
    dlogits[r * v + t] += g;
  }
  return dlogits;
}
