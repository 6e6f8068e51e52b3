/**
 * Loss pieces of RL fine-tuning, pure float64 functions with the `{ value, grad, metrics }`
 * contract: the clipped policy loss (DAPO / PPO, with verl's four aggregations), group
 * advantages (GRPO, Dr. GRPO), DAPO's overlong penalty, the Hidden-Align term and its anchor
 * position, a registry of named loss factories, and `sumLosses`.
 *
 * @example DAPO plus a tenth of Hidden-Align, by name
 * ```ts
 * import { createObjective } from "./mod.ts";
 * const objective = createObjective([{ name: "clipped_pg" }, { name: "hidden_align", weight: 0.1 }]);
 * console.log(typeof objective); // "function"
 * ```
 *
 * @module
 */
export * from "./agg_loss.ts";
export * from "./align_centroids.ts";
export * from "./anchor_position.ts";
export * from "./clipped_policy_loss.ts";
export * from "./group_advantages.ts";
export * from "./hidden_align_loss.ts";
export * from "./objective_request.ts";
export * from "./overlong_penalty.ts";
export * from "./registry.ts";
export * from "./sum_losses.ts";
