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
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[i * k + t] * w[j * k + t];
      y[i * n + j] = alpha * s + (options.accumulate ? options.accumulate[i * n + j] : 0);
    }
  }
  return y;
}
