/** Result of {@linkcode loraMergeF16Ref}. */
export interface LoraMergeF16Ref {
  /** `w + alpha · b·a` in float64, before any rounding to f16 (`n·k` values). */
  merged: Float64Array;
  /** Per element, `|w| + |alpha| · Σ_j |b_oj · a_ji|`: the scale of its f32 rounding error. */
  magnitude: Float64Array;
  /** Elements whose nearest f16 (ties to even) is ±Inf or NaN. */
  overflow: number;
}

/**
 * Float64 reference of the f16 LoRA merge kernel: the value it rounds to f16 (`w` are the f16
 * weights' values, `a` `[r, k]`, `b` `[n, r]`), with each element's magnitude and the count of
 * elements beyond the f16 range.
 *
 * @param w The base weight's values `[n, k]` (f16 values, as numbers).
 * @param a `A` `[r, k]`.
 * @param b `B` `[n, r]`.
 * @param shape `n`, `k`, `r` and the scale `alpha` (default 1).
 * @returns The merged values before rounding, their magnitudes and the overflow count.
 *
 * @example A 1×2 weight, rank 1
 * ```ts
 * import { loraMergeF16Ref } from "./lora_merge_f16_ref.ts";
 * const ref = loraMergeF16Ref([1, 2], [3, 4], [0.5], { n: 1, k: 2, r: 1, alpha: 2 });
 * console.log(Array.from(ref.merged), ref.overflow); // [ 4, 6 ] 0
 * ```
 */
export function loraMergeF16Ref(
  w: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: { n: number; k: number; r: number; alpha?: number },
): LoraMergeF16Ref {
  const { n, k, r } = shape;
  const alpha = shape.alpha ?? 1;
  const merged = new Float64Array(n * k);
  const magnitude = new Float64Array(n * k);
  let overflow = 0;
  for (let o = 0; o < n; o++) {
    for (let i = 0; i < k; i++) {
      let [s, size] = [0, 0];
      for (let j = 0; j < r; j++) {
        s += b[o * r + j] * a[j * k + i];
        size += Math.abs(b[o * r + j] * a[j * k + i]);
      }
      const e = o * k + i;
      merged[e] = w[e] + alpha * s;
      magnitude[e] = Math.abs(w[e]) + Math.abs(alpha) * size;
      if (!Number.isFinite(Math.f16round(merged[e]))) overflow++;
    }
  }
  return { merged, magnitude, overflow };
}
