/** Gradients returned by {@linkcode swigluBackwardRef}. */
export interface SwigluBackwardRefResult {
  /** `dL/dgate = dOut · up · σ(g) · (1 + g · (1 − σ(g)))`. */
  dGate: Float64Array;
  /** `dL/dup = dOut · silu(g)`. */
  dUp: Float64Array;
}

/**
 * Float64 reference of the backward of SwiGLU `out = silu(gate) · up`, elementwise.
 *
 * @param dOut Gradient of the output.
 * @param gate Forward gate input (same length).
 * @param up Forward up input (same length).
 * @returns `dGate` and `dUp`.
 *
 * @example At gate 0: silu(0) = 0 and silu'(0) = 1/2
 * ```ts
 * import { swigluBackwardRef } from "./swiglu_backward_ref.ts";
 * const { dGate, dUp } = swigluBackwardRef([1], [0], [4]);
 * console.log(dGate, dUp); // [2] [0]
 * ```
 */
export function swigluBackwardRef(
  dOut: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
): SwigluBackwardRefResult {
  const n = gate.length;
  const dGate = new Float64Array(n);
  const dUp = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const sig = 1 / (1 + Math.exp(-g));
    dUp[i] = dOut[i] * g * sig;
    dGate[i] = dOut[i] * up[i] * sig * (1 + g * (1 - sig));
  }
  return { dGate, dUp };
}
