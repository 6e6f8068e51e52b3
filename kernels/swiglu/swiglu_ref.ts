/**
 * Float64 reference of SwiGLU: `silu(gate) * up`, elementwise.
 *
 * @param gate Gate projection output.
 * @param up Up projection output (same length).
 * @returns The activation.
 *
 * @example silu(0) · 5 = 0
 * ```ts
 * import { swigluRef } from "./swiglu_ref.ts";
 * console.log(swigluRef([0], [5])[0]); // 0
 * ```
 */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
  return out;
}
