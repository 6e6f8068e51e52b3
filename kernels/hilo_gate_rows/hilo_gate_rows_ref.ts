/** Options of {@linkcode hiloGateRowsRef}. */
export interface HiloGateRowsRefOptions {
  /** Rank r (row width of `u`). */
  r: number;
  /** Experts E (row width of `gates`). */
  experts: number;
  /** Which expert's gate column scales the rows. */
  expert: number;
}

/**
 * Float64 reference of the gate-rows kernel: `out[t, j] = u[t, j] · gates[t, expert]`.
 *
 * @param u An expert's down projection `[m, r]`.
 * @param gates Router gates `[m, E]`.
 * @param options Rank, expert count and expert.
 * @returns The gated rows `[m, r]`.
 *
 * @example Two tokens, rank 1, gates of expert 1
 * ```ts
 * import { hiloGateRowsRef } from "./hilo_gate_rows_ref.ts";
 * const out = hiloGateRowsRef([2, 3], [0.5, 0.5, 1, 0], { r: 1, experts: 2, expert: 1 });
 * console.log(Array.from(out)); // [1, 0]
 * ```
 */
export function hiloGateRowsRef(
  u: ArrayLike<number>,
  gates: ArrayLike<number>,
  options: HiloGateRowsRefOptions,
): Float64Array {
  const { r, experts: E, expert } = options;
  const out = new Float64Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = u[i] * gates[Math.floor(i / r) * E + expert];
  return out;
}
