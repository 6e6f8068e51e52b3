/**
 * The quantile of sorted numbers by linear interpolation between order statistics.
 *
 * @module
 */

/**
 * The `q`-quantile of ascending `sorted` values, interpolating linearly between the order
 * statistics around position `q·(n − 1)` (Hyndman and Fan's type 7, NumPy's default), or `empty`
 * when there is no value.
 *
 * @param sorted Values in ascending order.
 * @param q The quantile, in [0, 1].
 * @param empty What an empty list gives; default NaN.
 * @returns The interpolated quantile.
 *
 * @example The median and the 90th percentile of 1..5
 * ```ts
 * import { quantile } from "./quantile.ts";
 * console.log(quantile([1, 2, 3, 4, 5], 0.5)); // 3
 * console.log(quantile([1, 2, 3, 4, 5], 0.9)); // 4.6
 * console.log(quantile([], 0.5, 1)); // 1
 * ```
 */
export function quantile(sorted: ArrayLike<number>, q: number, empty = NaN): number {
  if (sorted.length === 0) return empty;
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}
