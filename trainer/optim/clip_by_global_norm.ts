/**
 * Clipping of gradients by their global L2 norm (optax `clip_by_global_norm`, PyTorch
 * `clip_grad_norm_`).
 *
 * @module
 */
import type { GradientTransformation, ParamTree, UpdateResult } from "../types.ts";
import { checkNumber, map1 } from "./_tree.ts";
import { globalNorm } from "./global_norm.ts";

/** Added to the norm in the clip factor, as PyTorch `clip_grad_norm_` and the GPU kernel do. */
export const CLIP_EPS = 1e-6;

/** State of {@linkcode clipByGlobalNorm}: none. */
export type ClipByGlobalNormState = Record<string, never>;

/**
 * Scales all updates by `min(1, maxNorm / (‖g‖ + 1e-6))` where `‖g‖` is their global norm: the
 * PyTorch `clip_grad_norm_` factor, also computed on the GPU by `kernels/grad_norm` (optax
 * divides by `‖g‖` without the 1e-6, a relative difference of 1e-6 / ‖g‖).
 *
 * Metrics: `"optim/grad_norm"` is the pre-clip global norm, `"optim/clip_scale"` the factor
 * applied (1 when not clipped).
 *
 * @param maxNorm Largest allowed global norm (> 0).
 * @returns The transformation (stateless).
 *
 * @example Clip a gradient of norm 5 to norm 1
 * ```ts
 * import { clipByGlobalNorm } from "./clip_by_global_norm.ts";
 * const clip = clipByGlobalNorm(1);
 * const g = { w: new Float32Array([3, 4]) };
 * const { updates, metrics } = clip.update(g, clip.init(g));
 * console.log(updates.w, metrics); // ≈ [0.6, 0.8], { "optim/grad_norm": 5, "optim/clip_scale": ≈0.2 }
 * ```
 */
export function clipByGlobalNorm(maxNorm: number): GradientTransformation<ClipByGlobalNormState> {
  checkNumber(maxNorm, (x) => x > 0, {
    op: "clipByGlobalNorm()",
    name: "maxNorm",
    rule: "a finite number > 0",
  });
  return {
    init: (): ClipByGlobalNormState => ({}),
    update(grads: ParamTree, state: ClipByGlobalNormState): UpdateResult<ClipByGlobalNormState> {
      const norm = globalNorm(grads);
      const scale = Math.min(1, maxNorm / (norm + CLIP_EPS));
      const updates = scale < 1 ? map1(grads, (g) => g * scale) : grads;
      return {
        updates,
        state,
        metrics: { "optim/grad_norm": norm, "optim/clip_scale": scale },
      };
    },
  };
}
