/** Options of {@linkcode addRef}. */
export interface AddRefOptions {
  /** Factor of `x`; default 1. */
  alpha?: number;
  /** The previous `y` to add to; default none (a scaled copy). */
  accumulate?: ArrayLike<number>;
}

/**
 * Float64 reference of the add kernel: `y = [accumulate +] alpha · x`, elementwise.
 *
 * @param x The input.
 * @param options Factor and the previous output.
 * @returns The output.
 *
 * @example 1 + 2 · 3 = 7
 * ```ts
 * import { addRef } from "./add_ref.ts";
 * console.log(addRef([3], { alpha: 2, accumulate: [1] })[0]); // 7
 * ```
 */
export function addRef(x: ArrayLike<number>, options: AddRefOptions = {}): Float64Array {
  const alpha = options.alpha ?? 1;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (options.accumulate?.[i] ?? 0) + alpha * x[i];
  return out;
}
