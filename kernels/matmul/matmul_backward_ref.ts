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
  // Adds output j's terms (skipped where its dy is 0).
  const one = (xo: number, j: number, g: number) => {
    if (g === 0) return;
    const wo = j * k;
    for (let t = 0; t < k; t++) {
      dx[xo + t] += g * w[wo + t];
      dw[wo + t] += g * x[xo + t];
    }
  };
  for (let i = 0; i < m; i++) {
    const xo = i * k;
    const yo = i * n;
    let j = 0;
    // Four outputs at a time where none has a zero dy: each dx element still takes its terms in
    // the order of j, each dw element in the order of i.
    for (; j + 4 <= n; j += 4) {
      const g0 = dy[yo + j];
      const g1 = dy[yo + j + 1];
      const g2 = dy[yo + j + 2];
      const g3 = dy[yo + j + 3];
      if (g0 === 0 || g1 === 0 || g2 === 0 || g3 === 0) {
        for (let jj = j; jj < j + 4; jj++) one(xo, jj, dy[yo + jj]);
        continue;
      }
      const w0 = j * k;
      const w1 = w0 + k;
      const w2 = w1 + k;
      const w3 = w2 + k;
      for (let t = 0; t < k; t++) {
        const xv = x[xo + t];
        let d = dx[xo + t];
        d += g0 * w[w0 + t];
        d += g1 * w[w1 + t];
        d += g2 * w[w2 + t];
        d += g3 * w[w3 + t];
        dx[xo + t] = d;
        dw[w0 + t] += g0 * xv;
        dw[w1 + t] += g1 * xv;
        dw[w2 + t] += g2 * xv;
        dw[w3 + t] += g3 * xv;
      }
    }
    for (; j < n; j++) one(xo, j, dy[yo + j]);
  }
  return { dx, dw };
}
