/** Options of {@linkcode hiloGateBackwardRef}. */
export interface HiloGateBackwardRefOptions {
  /** Rank r (row width of `u` and `du`). */
  r: number;
  /** Experts E. */
  experts: number;
  /** The expert. */
  expert: number;
}

/** Result of {@linkcode hiloGateBackwardRef}. */
export interface HiloGateBackwardRefResult {
  /** `d loss / d g_e` per token `[m]`: `Σ_j du[t, j]·u[t, j]`. */
  dGate: Float64Array;
  /** `du` with each row times the token's gate `[m, r]`. */
  du: Float64Array;
  /** `u` with each row times the token's gate `[m, r]`. */
  u: Float64Array;
}

/**
 * Float64 reference of the HILO gate backward of one expert (see `hilo_gate_backward.wgsl`).
 *
 * @param u The expert's down projection `x·A_eᵀ` `[m, r]`.
 * @param du `scale·dy·B_e` `[m, r]`.
 * @param gates Router gates `[m, E]`.
 * @param options Rank, experts and expert.
 * @returns The gate gradient and the gated rows.
 *
 * @example One token, rank 2, gate ½
 * ```ts
 * import { hiloGateBackwardRef } from "./hilo_gate_backward_ref.ts";
 * const r = hiloGateBackwardRef([1, 2], [3, 4], [0.5], { r: 2, experts: 1, expert: 0 });
 * console.log(r.dGate[0], Array.from(r.du)); // 11 [1.5, 2]
 * ```
 */
export function hiloGateBackwardRef(
  u: ArrayLike<number>,
  du: ArrayLike<number>,
  gates: ArrayLike<number>,
  options: HiloGateBackwardRefOptions,
): HiloGateBackwardRefResult {
  const { r, experts: E, expert } = options;
  const m = u.length / r;
  const dGate = new Float64Array(m);
  const duOut = new Float64Array(m * r);
  const uOut = new Float64Array(m * r);
  for (let t = 0; t < m; t++) {
    const g = gates[t * E + expert];
    for (let j = 0; j < r; j++) {
      const i = t * r + j;
      dGate[t] += du[i] * u[i];
      duOut[i] = du[i] * g;
      uOut[i] = u[i] * g;
    }
  }
  return { dGate, du: duOut, u: uOut };
}
