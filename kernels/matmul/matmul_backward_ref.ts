/** Gradients returned by {@linkcode matmulBackwardRef}. */
export interface MatmulBackwardRefResult {
  /** `dL/dx = dy · w`, `[m, k]`. */
  dx: Float64Array;
  /** `dL/dw = dyᵀ · x`, `[n, k]`. */
  dw: Float64Array;
}

/**
 * Float64 reference of the backward of `y = x · wᵀ` (`x` `[m, k]`, `w` `[n, k]`, `y` `[m, n]`):
 * `dx = dy · w` and `dw = dyᵀ · x`.
 *
 * @param dy Gradient of the output `[m, n]`.
 * @param x Forward left operand `[m, k]`.
 * @param w Forward right operand `[n, k]` (PyTorch's `[out, in]` weight).
 * @param shape `[m, n, k]`.
 * @returns `dx` `[m, k]` and `dw` `[n, k]`.
 *
 * @example A 1×1 product of length 2
 * ```ts
 * import { matmulBackwardRef } from "./matmul_backward_ref.ts";
 * const { dx, dw } = matmulBackwardRef([2], [1, 2], [3, 4], [1, 1, 2]);
 * console.log(dx, dw); // [6, 8] [2, 4]
 * ```
 */
export function matmulBackwardRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  shape: readonly [number, number, number],
): MatmulBackwardRefResult {
  const [m, n, k] = shape;
  const dx = new Float64Array(m * k);
  const dw = new Float64Array(n * k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const g = dy[i * n + j];
      if (g === 0) continue;
      for (let t = 0; t < k; t++) {
        dx[i * k + t] += g * w[j * k + t];
        dw[j * k + t] += g * x[i * k + t];
      }
    }
  }
  return { dx, dw };
}
