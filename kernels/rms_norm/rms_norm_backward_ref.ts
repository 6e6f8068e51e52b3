/** Gradients returned by {@linkcode rmsNormBackwardRef}. */
export interface RmsNormBackwardRefResult {
  /** `dL/dx` `[rows, d]`. */
  dx: Float64Array;
  /** `dL/dw` `[d]`, summed over rows. */
  dw: Float64Array;
}

/**
 * Float64 reference of the backward of row-wise RMSNorm `y = x · r · w` with
 * `r = 1 / sqrt(mean(x²) + eps)`: `dx = r · (w ⊙ dy) − x · r³ · (Σ dy ⊙ w ⊙ x) / d` and
 * `dw = Σ_rows dy ⊙ x · r`.
 *
 * @param dy Gradient of the output `[rows, d]`.
 * @param x Forward input `[rows, d]`.
 * @param w Weight `[d]`.
 * @param options Row length `d` and `eps`, as in the forward.
 * @returns `dx` `[rows, d]` and `dw` `[d]`.
 *
 * @example One row of length 1 (the output is sign(x)·w when eps = 0, so dx = 0)
 * ```ts
 * import { rmsNormBackwardRef } from "./rms_norm_backward_ref.ts";
 * const { dx, dw } = rmsNormBackwardRef([1], [2], [3], { d: 1, eps: 0 });
 * console.log(dx, dw); // [0] [1]
 * ```
 */
export function rmsNormBackwardRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  options: { d: number; eps: number },
): RmsNormBackwardRefResult {
  const { d, eps } = options;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(d);
  for (let base = 0; base < x.length; base += d) {
    let s = 0;
    let dot = 0;
    for (let i = 0; i < d; i++) {
      s += x[base + i] * x[base + i];
      dot += dy[base + i] * w[i] * x[base + i];
    }
    const r = 1 / Math.sqrt(s / d + eps);
    const c = (r * r * r * dot) / d;
    for (let i = 0; i < d; i++) {
      dx[base + i] = r * w[i] * dy[base + i] - x[base + i] * c;
      dw[i] += dy[base + i] * x[base + i] * r;
    }
  }
  return { dx, dw };
}
