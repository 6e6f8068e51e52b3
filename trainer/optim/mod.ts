/**
 * Optimizer pieces in the optax style: pure `{ init, update }` transformations over flat
 * parameter trees, combined with `chain()`, plus learning-rate schedules and gradient
 * accumulation. The GPU counterparts of AdamW and the clip-by-global-norm reduction live in
 * `kernels/adamw` and `kernels/grad_norm`.
 *
 * @example AdamW with clipping and a cosine schedule, accumulated over 4 micro-batches
 * ```ts
 * import { adamw, applyUpdates, multiSteps, warmupCosineDecaySchedule } from "./mod.ts";
 * const lr = warmupCosineDecaySchedule({ peakValue: 1e-6, warmupSteps: 10, decaySteps: 500 });
 * const opt = multiSteps(adamw({ lr, maxGradNorm: 1 }), { everySteps: 4, weighting: "token" });
 * let params = { w: new Float32Array(8).fill(0.5) };
 * let state = opt.init(params);
 * const r = opt.update({ w: new Float32Array(8).fill(0.1) }, state, params, { weight: 120 });
 * params = applyUpdates(params, r.updates);
 * state = r.state;
 * console.log(state.miniStep); // 1
 * ```
 *
 * @module
 */
export * from "./adamw.ts";
export * from "./add_decayed_weights.ts";
export * from "./apply_updates.ts";
export * from "./chain.ts";
export * from "./clip_by_global_norm.ts";
export * from "./global_norm.ts";
export * from "./multi_steps.ts";
export * from "./scale_by_adam.ts";
export * from "./scale_by_learning_rate.ts";
export * from "./scale_by_schedule.ts";
export * from "./warmup_constant_schedule.ts";
export * from "./warmup_cosine_decay_schedule.ts";
export type * from "../types.ts";
