/**
 * Float64 reference of RMSNorm over rows: `y = x / sqrt(mean(x²) + eps) * w`.
 *
 * @param x Input `[rows, d]`.
 * @param w Weight `[d]`.
 * @param options Row length `d` and `eps`.
 * @returns `y` `[rows, d]`.
 *
 * @example One row
 * ```ts
 * import { rmsNormRef } from "./rms_norm_ref.ts";
 * console.log(rmsNormRef([3, 4], [1, 1], { d: 2, eps: 0 })); // ≈ [0.8485, 1.1314]
 * ```
 */
export function rmsNormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: { d: number; eps: number },
): Float64Array {
  const { d, eps } = options;
  const y = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += d) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[base + i] * x[base + i];
    const inv = 1 / Math.sqrt(s / d + eps);
    for (let i = 0; i < d; i++) y[base + i] = x[base + i] * inv * w[i];
  }
  return y;
}
