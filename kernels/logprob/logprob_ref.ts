/**
 * Float64 reference of per-row log-softmax gathered at target ids: `logits[r, t_r] − lse_r`
 * (0 where the target is negative: no target), with each row's log-sum-exp and the entropy
 * `−Σ_j p_j log p_j` of its softmax (as `log S + Σ_j e_j (m − x_j) / S`, `e_j = exp(x_j − m)`,
 * `S = Σ_j e_j`, `m` the row max: one pass, no cancellation).
 *
 * @param logits `[rows, v]`.
 * @param targets One id per row.
 * @param v Row length (vocabulary size).
 * @returns Log-probabilities `logprobs`, log-sum-exps `lse` and entropies `entropy`, one per row.
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
): { logprobs: Float64Array; lse: Float64Array; entropy: Float64Array } {
  const rows = targets.length;
  const logprobs = new Float64Array(rows);
  const lse = new Float64Array(rows);
  const entropy = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits[r * v + j]);
    let sum = 0;
    let weighted = 0;
    for (let j = 0; j < v; j++) {
      const x = logits[r * v + j];
      const e = Math.exp(x - max);
      sum += e;
      weighted += e * (max - x);
    }
    lse[r] = max + Math.log(sum);
    entropy[r] = Math.log(sum) + weighted / sum;
    logprobs[r] = targets[r] >= 0 ? logits[r * v + targets[r]] - lse[r] : 0;
  }
  return { logprobs, lse, entropy };
}
