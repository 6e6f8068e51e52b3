/**
 * Float64 reference of the router backward through the renormalised gates:
 * `dz_i = g_i · (dg_i − Σ_e g_e·dg_e)` per token (the gates are a softmax over the selected
 * experts of the logits, and 0 outside them).
 *
 * @param gates Gates `[tokens, E]` (0 outside the selection).
 * @param dGates `d loss / d gates` `[tokens, E]`.
 * @param experts E.
 * @returns `d loss / d logits` `[tokens, E]`.
 *
 * @example Two selected experts with gates ½ and ½
 * ```ts
 * import { moeRouteBackwardRef } from "./moe_route_backward_ref.ts";
 * console.log(Array.from(moeRouteBackwardRef([0.5, 0.5, 0], [1, 3, 7], 3))); // [-0.5, 0.5, 0]
 * ```
 */
export function moeRouteBackwardRef(
  gates: ArrayLike<number>,
  dGates: ArrayLike<number>,
  experts: number,
): Float64Array {
  const out = new Float64Array(gates.length);
  for (let o = 0; o < gates.length; o += experts) {
    let mean = 0;
    for (let e = 0; e < experts; e++) mean += gates[o + e] * dGates[o + e];
    for (let e = 0; e < experts; e++) out[o + e] = gates[o + e] * (dGates[o + e] - mean);
  }
  return out;
}
