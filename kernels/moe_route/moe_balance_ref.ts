/**
 * Float64 references of HILO's load-balancing loss, one term per routed projection (each has its
 * own router), in the form of MoLA/AdaMoLE's `TopKMoeLayer.get_layer_loss`
 * (zefang-liu/AdaMoLE `src/mole/layer.py`, after the Switch Transformer):
 *
 *   `loss = E · Σ_e f_e · P_e`, `f_e = count_e / N`, `P_e = psum_e / N`,
 *
 * over the N real tokens of one backward call (a micro-batch): `count_e` the tokens that selected
 * expert e (`Σ_e f_e = k` for top-k), `psum_e` the sum of the router probabilities of e. The
 * GPU runs it in two steps: the statistics `[count_0..count_{E−1}, psum_0..psum_{E−1}, N]` of a
 * projection ({@linkcode moeBalanceStatsRef}) and the logits' gradient of `coef ×` its loss
 * ({@linkcode moeBalanceBackwardRef}; `f` is a constant, as `bincount` is in PyTorch).
 *
 * @module
 */
import { moeRouteRef, type MoeRouteRefOptions } from "./moe_route_ref.ts";

/**
 * The statistics `[count_0..count_{E−1}, psum_0..psum_{E−1}, N]` of one projection's logits
 * over its real tokens, added to `into` when given (statistics of several rows of one
 * micro-batch add up).
 *
 * @param logits Router logits `[m, E]`.
 * @param mask 1 for real tokens `[m]`.
 * @param options Experts and activation rule (as `moeRouteRef`).
 * @param into Statistics to add to; default zeros.
 * @returns The statistics (`into` itself when given).
 *
 * @example Two real tokens, two experts, top-1
 * ```ts
 * import { moeBalanceStatsRef } from "./moe_balance_ref.ts";
 * const s = moeBalanceStatsRef([0, 1, 2, 0, 5, 5], [1, 1, 0], { experts: 2, topK: 1 });
 * console.log(s[0], s[1], s[4]); // 1 1 2
 * ```
 */
export function moeBalanceStatsRef(
  logits: ArrayLike<number>,
  mask: ArrayLike<number>,
  options: MoeRouteRefOptions,
  into?: Float64Array,
): Float64Array {
  const E = options.experts;
  const out = into ?? new Float64Array(2 * E + 1);
  const { probs, selected } = moeRouteRef(logits, options);
  for (let t = 0; t < mask.length; t++) {
    if (!mask[t]) continue;
    out[2 * E]++;
    for (let e = 0; e < E; e++) {
      out[e] += selected[t * E + e];
      out[E + e] += probs[t * E + e];
    }
  }
  return out;
}

/**
 * The balance loss of one projection's statistics: `E · Σ_e (count_e / N)·(psum_e / N)`.
 *
 * @param stats Statistics from {@linkcode moeBalanceStatsRef}.
 * @param experts E.
 * @returns The loss (0 without real tokens).
 *
 * @example Perfect balance gives k (here top-1: 1)
 * ```ts
 * import { moeBalanceLossRef } from "./moe_balance_ref.ts";
 * console.log(moeBalanceLossRef([1, 1, 1, 1, 2], 2)); // 1
 * ```
 */
export function moeBalanceLossRef(stats: ArrayLike<number>, experts: number): number {
  const E = experts;
  const N = stats[2 * E];
  if (N === 0) return 0;
  let loss = 0;
  for (let e = 0; e < E; e++) loss += E * (stats[e] / N) * (stats[E + e] / N);
  return loss;
}

/**
 * The logits' gradient of `coef × E·Σ_e f_e·P_e` for one projection (the counts `f` are
 * constants): `coef·p_e·(dp_e − Σ_j p_j·dp_j)`, `dp_e = E·count_e / N²`, 0 for padding.
 *
 * @param logits Router logits `[m, E]`.
 * @param mask 1 for real tokens `[m]`.
 * @param stats The projection's statistics over the whole micro-batch.
 * @param options Experts E and the coefficient.
 * @returns `[m, E]`.
 *
 * @example Equal counts and uniform probabilities have no gradient
 * ```ts
 * import { moeBalanceBackwardRef } from "./moe_balance_ref.ts";
 * const d = moeBalanceBackwardRef([0, 0], [1], [1, 1, 0.5, 0.5, 1], { experts: 2, coef: 1 });
 * console.log(Array.from(d)); // [0, 0]
 * ```
 */
export function moeBalanceBackwardRef(
  logits: ArrayLike<number>,
  mask: ArrayLike<number>,
  stats: ArrayLike<number>,
  options: { experts: number; coef: number },
): Float64Array {
  const { experts: E, coef } = options;
  const { probs } = moeRouteRef(logits, { experts: E, topK: 1 });
  const N = stats[2 * E];
  const out = new Float64Array(logits.length);
  if (N === 0) return out;
  const dp = Array.from({ length: E }, (_, e) => E * stats[e] / (N * N));
  for (let t = 0; t < mask.length; t++) {
    if (!mask[t]) continue;
    let pm = 0;
    for (let e = 0; e < E; e++) pm += probs[t * E + e] * dp[e];
    for (let e = 0; e < E; e++) out[t * E + e] = coef * probs[t * E + e] * (dp[e] - pm);
  }
  return out;
}
