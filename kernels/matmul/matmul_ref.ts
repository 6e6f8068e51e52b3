/** Options of {@linkcode matmulRef}. */
export interface MatmulRefOptions {
  /** Scale of the product; default 1. */
  alpha?: number;
  /** Added to the result (same shape `[m, n]`), as the kernel's accumulate mode. */
  accumulate?: ArrayLike<number>;
}

/**
 * Float64 reference of the matmul kernel: `y = accumulate + alpha * x · wᵀ`, with `x` `[m, k]`
 * and `w` `[n, k]` row-major.
 *
 * @param x Left operand `[m, k]`.
 * @param w Right operand `[n, k]` (PyTorch's `[out, in]` weight).
 * @param shape `[m, n, k]`.
 * @param options Scale and accumulator.
 * @returns `y` `[m, n]` in float64.
 *
 * @example A 1×1 product
 * ```ts
 * import { matmulRef } from "./matmul_ref.ts";
 * console.log(matmulRef([1, 2], [3, 4], [1, 1, 2])[0]); // 11
 * ```
 */
export function matmulRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  shape: readonly [number, number, number],
  options: MatmulRefOptions = {},
): Float64Array {
  const [m, n, k] = shape;
  const alpha = options.alpha ?? 1;
  const acc = options.accumulate;
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const xo = i * k;
    const yo = i * n;
    let j = 0;
    // Four outputs at a time share each x load; each sum still runs over t in order.
    for (; j + 4 <= n; j += 4) {
      const w0 = j * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let t = 0; t < k; t++) {
        const xv = x[xo + t];
        s0 += xv * w[w0 + t];
        s1 += xv * w[w1 + t];
        s2 += xv * w[w2 + t];
        s3 += xv * w[w3 + t];
      }
      y[yo + j] = alpha * s0 + (acc ? acc[yo + j] : 0);
      y[yo + j + 1] = alpha * s1 + (acc ? acc[yo + j + 1] : 0);
      y[yo + j + 2] = alpha * s2 + (acc ? acc[yo + j + 2] : 0);
      y[yo + j + 3] = alpha * s3 + (acc ? acc[yo + j + 3] : 0);
    }
    for (; j < n; j++) {
      const wo = j * k;
      let s = 0;
      for (let t = 0; t < k; t++) s += x[xo + t] * w[wo + t];
      y[yo + j] = alpha * s + (acc ? acc[yo + j] : 0);
    }
  }
  return y;
}
