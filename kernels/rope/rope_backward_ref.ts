import type { RopeOptions } from "./rope_ref.ts";

/**
 * Float64 reference of the backward of rotary position embedding: the forward is a rotation of
 * each pair `(x[i], x[i + d/2])` by `pos · theta^(−2i/d)`, so the gradient is `dy` rotated by
 * the opposite angle.
 *
 * @param dy Gradient of the output `[tokens · heads, d]`.
 * @param positions Position of each token, as in the forward.
 * @param options Head size, heads per token and theta, as in the forward.
 * @returns `dx` `[tokens · heads, d]`.
 *
 * @example Position 0 is the identity
 * ```ts
 * import { ropeBackwardRef } from "./rope_backward_ref.ts";
 * console.log(ropeBackwardRef([1, 2], [0], { d: 2, heads: 1, theta: 1e4 })); // [1, 2]
 * ```
 */
export function ropeBackwardRef(
  dy: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: RopeOptions,
): Float64Array {
  const { d, heads, theta } = options;
  const half = d / 2;
  const dx = Float64Array.from(dy);
  for (let row = 0; row * d < dy.length; row++) {
    const pos = positions[Math.floor(row / heads)];
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / d);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const g1 = dy[row * d + i];
      const g2 = dy[row * d + i + half];
      dx[row * d + i] = g1 * c + g2 * s;
      dx[row * d + i + half] = g2 * c - g1 * s;
    }
  }
  return dx;
}
