/**
 * The AdamW optimizer as a chain of pure pieces (optax `adamw`).
 *
 * @module
 */
import type { GradientTransformation, Schedule } from "../types.ts";
import { addDecayedWeights } from "./add_decayed_weights.ts";
import { chain } from "./chain.ts";
import { clipByGlobalNorm } from "./clip_by_global_norm.ts";
import { scaleByAdam } from "./scale_by_adam.ts";
import { scaleByLearningRate } from "./scale_by_learning_rate.ts";

/** Options of {@linkcode adamw}. */
export interface AdamwOptions {
  /** Learning rate, or a schedule of it over optimizer steps. */
  lr: number | Schedule;
  /** First-moment decay; default 0.9. */
  b1?: number;
  /** Second-moment decay; default 0.999. */
  b2?: number;
  /** Denominator epsilon; default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 (PyTorch's AdamW default). */
  weightDecay?: number;
  /** Which tensors are decayed, by name; default all. */
  decayMask?: (name: string) => boolean;
  /** When set, gradients are first clipped to this global norm. */
  maxGradNorm?: number;
}

/**
 * AdamW: `chain(clipByGlobalNorm(maxGradNorm)?, scaleByAdam({b1, b2, eps}),
 * addDecayedWeights(weightDecay), scaleByLearningRate(lr))`.
 *
 * The order is optax's (`add_decayed_weights` after `scale_by_adam`, then `−lr`), giving
 * `p ← p − lr·(m̂/(sqrt(v̂)+eps) + wd·p)`. PyTorch's `torch.optim.AdamW` first decays
 * `p ← p − lr·wd·p` and then takes the Adam step; the Adam step does not depend on `p`, so both
 * orders give the same parameters (the decay uses the parameters before the step in both).
 * Clipping comes first, on the raw gradients, as `clip_grad_norm_` before `optimizer.step()`.
 *
 * The state is a plain array: `[clip?, adam, decay, lr]` states. Metrics: `"optim/grad_norm"`
 * and `"optim/clip_scale"` (with clipping) and `"optim/lr"`.
 *
 * @param options Learning rate and hyperparameters.
 * @returns The transformation.
 *
 * @example Minimise (w − 3)² for a few steps
 * ```ts
 * import { adamw } from "./adamw.ts";
 * import { applyUpdates } from "./apply_updates.ts";
 * const opt = adamw({ lr: 0.1, weightDecay: 0, maxGradNorm: 1 });
 * let params = { w: new Float32Array([0]) };
 * let state = opt.init(params);
 * for (let i = 0; i < 50; i++) {
 *   const grads = { w: new Float32Array([2 * (params.w[0] - 3)]) };
 *   const r = opt.update(grads, state, params);
 *   params = applyUpdates(params, r.updates);
 *   state = r.state;
 * }
 * console.log(params.w[0] > 2); // true
 * ```
 */
export function adamw(options: AdamwOptions): GradientTransformation<unknown[]> {
  const { lr, b1 = 0.9, b2 = 0.999, eps = 1e-8, weightDecay = 0.01, maxGradNorm } = options;
  const adam = scaleByAdam({ b1, b2, eps });
  const decay = addDecayedWeights(weightDecay, { mask: options.decayMask });
  const rate = scaleByLearningRate(lr);
  return maxGradNorm === undefined
    ? chain(adam, decay, rate)
    : chain(clipByGlobalNorm(maxGradNorm), adam, decay, rate);
}
