/** Result of {@linkcode decodeAdvanceRef}. */
export interface DecodeAdvanceRefResult {
  /** The cursor `[slot + 1, step + 1]`. */
  ctrl: Uint32Array;
  /** Every position plus one. */
  positions: Uint32Array;
}

/**
 * Reference of the decode-cursor advance: slot, step and every row's position go up by one.
 *
 * @param ctrl The cursor `[slot, step]`.
 * @param positions Per-row positions.
 * @returns The advanced copies.
 *
 * @example One row
 * ```ts
 * import { decodeAdvanceRef } from "./decode_advance_ref.ts";
 * console.log(decodeAdvanceRef([5, 0], [3]).positions); // Uint32Array [4]
 * ```
 */
export function decodeAdvanceRef(
  ctrl: ArrayLike<number>,
  positions: ArrayLike<number>,
): DecodeAdvanceRefResult {
  const c = Uint32Array.from(ctrl);
  c[0] += 1;
  c[1] += 1;
  return { ctrl: c, positions: Uint32Array.from(positions, (x) => x + 1) };
}
