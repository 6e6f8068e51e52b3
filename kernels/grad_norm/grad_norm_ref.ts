/** Options of {@linkcode gradNormRef}. */
export interface GradNormRefOptions {
  /** Largest allowed norm; default `Infinity` (scale 1). */
  maxNorm?: number;
  /** Multiplier of the gradients; default 1. */
  gradScale?: number;
}

/** Result of {@linkcode gradNormRef}. */
export interface GradNormRefResult {
  /** Global L2 norm of `gradScale · grads`. */
  norm: number;
  /** `min(1, maxNorm / (norm + 1e-6))`, PyTorch's `clip_grad_norm_` factor. */
  scale: number;
}

/**
 * Float64 reference of the global gradient norm and clip scale.
 *
 * @param grads The gradient tensors.
 * @param options Clipping threshold and gradient multiplier.
 * @returns The norm and the clip scale.
 *
 * @example A 3-4-0 gradient in two tensors, clipped to 1
 * ```ts
 * import { gradNormRef } from "./grad_norm_ref.ts";
 * console.log(gradNormRef([[3], [4, 0]], { maxNorm: 1 })); // { norm: 5, scale: ≈0.2 }
 * ```
 */
export function gradNormRef(
  grads: readonly ArrayLike<number>[],
  options: GradNormRefOptions = {},
): GradNormRefResult {
  const { maxNorm = Infinity, gradScale = 1 } = options;
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  const norm = gradScale * Math.sqrt(s);
  return { norm, scale: Math.min(1, maxNorm / (norm + 1e-6)) };
}
