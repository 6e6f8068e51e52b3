import { rmsNormBackwardRef } from "../rms_norm/rms_norm_backward_ref.ts";
import { rmsNormRef } from "../rms_norm/rms_norm_ref.ts";
import { ropeBackwardRef } from "../rope/rope_backward_ref.ts";
import { ropeRef } from "../rope/rope_ref.ts";

/** The forward's inputs of {@linkcode qkNormRopeRef} and {@linkcode qkNormRopeBackwardRef}. */
export interface QkRefInputs {
  /** Raw queries `[tokens · hq, d]`. */
  qRaw: ArrayLike<number>;
  /** Raw keys `[tokens · hkv, d]`. */
  kRaw: ArrayLike<number>;
  /** Query norm weight `[d]`. */
  qNorm: ArrayLike<number>;
  /** Key norm weight `[d]`. */
  kNorm: ArrayLike<number>;
}

/** Options of {@linkcode qkNormRopeRef} and {@linkcode qkNormRopeBackwardRef}. */
export interface QkNormRopeOptions {
  /** Head dimension (even). */
  d: number;
  /** Query heads per token. */
  hq: number;
  /** Key heads per token. */
  hkv: number;
  /** Base of the RoPE inverse frequencies (`rope_theta`). */
  theta: number;
  /** Added to the mean square of each head. */
  eps: number;
}

/**
 * Float64 reference of the fused q/k norm + RoPE: `rmsNormRef` per head with the norm weight,
 * then `ropeRef`, for the queries and the keys.
 *
 * @param x Raw queries `[tokens · hq, d]` and keys `[tokens · hkv, d]`, and the norm weights `[d]`.
 * @param positions Position of each token.
 * @param options Head shapes, theta and eps.
 * @returns The normalised, rotated queries and keys.
 *
 * @example One token, one head of 2 at position 0 (the norm alone)
 * ```ts
 * import { qkNormRopeRef } from "./qk_norm_rope_ref.ts";
 * const x = { qRaw: [3, 4], kRaw: [1, 1], qNorm: [1, 1], kNorm: [2, 2] };
 * const { q, k } = qkNormRopeRef(x, [0], { d: 2, hq: 1, hkv: 1, theta: 1e4, eps: 0 });
 * console.log(q, k); // ≈ [0.8485, 1.1314] [2, 2]
 * ```
 */
export function qkNormRopeRef(
  x: QkRefInputs,
  positions: ArrayLike<number>,
  options: QkNormRopeOptions,
): { q: Float64Array; k: Float64Array } {
  const { d, hq, hkv, theta, eps } = options;
  return {
    q: ropeRef(rmsNormRef(x.qRaw, x.qNorm, { d, eps }), positions, { d, heads: hq, theta }),
    k: ropeRef(rmsNormRef(x.kRaw, x.kNorm, { d, eps }), positions, { d, heads: hkv, theta }),
  };
}

/** Gradients returned by {@linkcode qkNormRopeBackwardRef}. */
export interface QkNormRopeBackwardRefResult {
  /** d loss / d qRaw `[tokens · hq, d]`. */
  dqRaw: Float64Array;
  /** d loss / d kRaw `[tokens · hkv, d]`. */
  dkRaw: Float64Array;
  /** d loss / d qNorm `[d]`. */
  dqNorm: Float64Array;
  /** d loss / d kNorm `[d]`. */
  dkNorm: Float64Array;
}

/**
 * Float64 reference of the backward of {@linkcode qkNormRopeRef}: `ropeBackwardRef` then
 * `rmsNormBackwardRef`, for the queries and the keys.
 *
 * @param g Output gradients `dq`, `dk`, and the forward's inputs.
 * @param positions Position of each token, as in the forward.
 * @param options Head shapes, theta and eps, as in the forward.
 * @returns The gradients of the raw queries and keys and of the two norm weights.
 *
 * @example At position 0 it is the RMSNorm backward
 * ```ts
 * import { qkNormRopeBackwardRef } from "./qk_norm_rope_ref.ts";
 * const g = { dq: [1], dk: [1], qRaw: [1], kRaw: [2], qNorm: [3], kNorm: [3] };
 * const r = qkNormRopeBackwardRef(g, [0], { d: 1, hq: 1, hkv: 1, theta: 1e4, eps: 0 });
 * console.log(r.dqRaw, r.dqNorm); // [0] [1]
 * ```
 */
export function qkNormRopeBackwardRef(
  g: QkRefInputs & {
    /** d loss / d q `[tokens · hq, d]`. */
    dq: ArrayLike<number>;
    /** d loss / d k `[tokens · hkv, d]`. */
    dk: ArrayLike<number>;
  },
  positions: ArrayLike<number>,
  options: QkNormRopeOptions,
): QkNormRopeBackwardRefResult {
  const { d, hq, hkv, theta, eps } = options;
  const dqn = ropeBackwardRef(g.dq, positions, { d, heads: hq, theta });
  const dkn = ropeBackwardRef(g.dk, positions, { d, heads: hkv, theta });
  const q = rmsNormBackwardRef(dqn, g.qRaw, g.qNorm, { d, eps });
  const k = rmsNormBackwardRef(dkn, g.kRaw, g.kNorm, { d, eps });
  return { dqRaw: q.dx, dkRaw: k.dx, dqNorm: q.dw, dkNorm: k.dw };
}
