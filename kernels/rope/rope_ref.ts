/** Options of {@linkcode ropeRef} and {@linkcode ropeTable}. */
export interface RopeOptions {
  /** Head dimension (even). */
  d: number;
  /** Heads per token (rows of `x` per position). */
  heads: number;
  /** Base of the inverse frequencies (`rope_theta`). */
  theta: number;
}

/**
 * Float64 reference of rotary position embedding (HF rotate-half):
 * `out = x · cos + rotate_half(x) · sin`, angles `pos · theta^(−2i/d)`.
 *
 * @param x Input `[tokens · heads, d]`.
 * @param positions Position of each token.
 * @param options Head size, heads per token and theta.
 * @returns The rotated copy.
 *
 * @example Position 0 is the identity
 * ```ts
 * import { ropeRef } from "./rope_ref.ts";
 * console.log(ropeRef([1, 2], [0], { d: 2, heads: 1, theta: 1e4 })); // [1, 2]
 * ```
 */
export function ropeRef(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: RopeOptions,
): Float64Array {
  const { d, heads, theta } = options;
  const half = d / 2;
  const out = Float64Array.from(x);
  for (let row = 0; row * d < x.length; row++) {
    const pos = positions[Math.floor(row / heads)];
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / d);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const x1 = x[row * d + i];
      const x2 = x[row * d + i + half];
      out[row * d + i] = x1 * c - x2 * s;
      out[row * d + i + half] = x2 * c + x1 * s;
    }
  }
  return out;
}

/**
 * The `[maxPos, d/2, 2]` (cos, sin) table the rope kernel reads, computed in float64.
 *
 * The angles `pos × theta^(−2i/d)` are float64 products, rounded to float32 only as cos and sin.
 * HuggingFace transformers and vLLM instead form `inv_freq × pos` in float32, whose rounding grows
 * with the position: for theta 1e6 and head size 128 their cos/sin differ from this table by more
 * than 1e-5 from position 165 on, and by up to 5.6e-4 below position 8,192, 2.3e-3 below 32,768
 * and 3.2e-3 below 40,960 (float32 emulated in numpy). The test fixtures (theta 1e4, head size
 * 16, a few hundred positions) stay below 1e-5. This table is the more accurate of the two; the
 * difference reaches π_old only where rollouts come from such an engine with
 * `rl.oldLogprobs: "sampler"`, next to the engine's own bf16 rounding.
 *
 * @param maxPos Number of positions.
 * @param options Head size and theta.
 * @returns The table in float32.
 *
 * @example Position 0 has cos 1 and sin 0
 * ```ts
 * import { ropeTable } from "./rope_ref.ts";
 * console.log(ropeTable(1, { d: 2, theta: 1e4 })); // [1, 0]
 * ```
 */
export function ropeTable(maxPos: number, options: { d: number; theta: number }): Float32Array {
  const { d, theta } = options;
  const half = d / 2;
  const table = new Float32Array(maxPos * half * 2);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.pow(theta, (-2 * i) / d);
    for (let pos = 0; pos < maxPos; pos++) {
      table[(pos * half + i) * 2] = Math.cos(pos * invFreq);
      table[(pos * half + i) * 2 + 1] = Math.sin(pos * invFreq);
    }
  }
  return table;
}
