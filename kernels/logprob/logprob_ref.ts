/**
 * Float64 reference of per-row log-softmax gathered at target ids: `logits[r, t_r] − lse_r`
 * (0 where the target is negative: no target).
 *
 * @param logits `[rows, v]`.
 * @param targets One id per row.
 * @param v Row length (vocabulary size).
 * @returns Log-probabilities `logprobs` and log-sum-exps `lse`, one per row.
 *
 * @example Two equal logits
 * ```ts
 * import { logprobRef } from "./logprob_ref.ts";
 * console.log(logprobRef([0, 0], [1], 2).logprobs[0]); // -0.693…
 * ```
 */
export function logprobRef(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  v: number,
): { logprobs: Float64Array; lse: Float64Array } {
  const rows = targets.length;
  const logprobs = new Float64Array(rows);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits[r * v + j]);
    let sum = 0;
    for (let j = 0; j < v; j++) sum += Math.exp(logits[r * v + j] - max);
    lse[r] = max + Math.log(sum);
    logprobs[r] = targets[r] >= 0 ? logits[r * v + targets[r]] - lse[r] : 0;
  }
  return { logprobs, lse };
}
