/**
 * The RL trainer: DAPO (clipped policy loss with clip-higher, token-mean, dynamic sampling,
 * overlong shaping) plus the Hidden-Align term, composed from the loss pieces of
 * `trainer/losses/`, generation through the train backend and the verifier's rewards; `runRl`
 * runs a whole configured run (`trainer.mode: rl`).
 *
 * @example Keep only the groups whose rollouts disagree
 * ```ts
 * import { groupKind } from "./mod.ts";
 * console.log(groupKind([true, false]), groupKind([true, true])); // "mixed" "all-correct"
 * ```
 *
 * @module
 */
export * from "./anchor_centroids.ts";
export * from "./anchor_cosines.ts";
export * from "./build_rows.ts";
// RL_SCHEMA (a zod type) is for the config loader: imported from ./config.ts, not re-exported.
export {
  type ClippedPgTermConfig,
  DEFAULT_RL_CONFIG,
  type HiddenAlignTermConfig,
  RL_LOSS_NAMES,
  type RlAsyncConfig,
  type RlConfig,
  rlConfigProblems,
  type RlDataConfig,
  type RlDataSource,
  type RlEvalConfig,
  rlKeyWarnings,
  type RlLossTermConfig,
  type RlOverlongConfig,
  type RlRewardConfig,
  type RlRolloutConfig,
  type RlTemplate,
  type RlTisConfig,
  type RolloutBackend,
  withRolloutDefaults,
} from "./config.ts";
export * from "./dynamic_sampling.ts";
export * from "./eval_rl.ts";
export * from "./forward_pass.ts";
export * from "./generate_groups.ts";
export * from "./gpu_memory_estimate.ts";
export * from "./gpu_memory_plan.ts";
export * from "./micro_batch_key.ts";
export * from "./prompt_data.ts";
export * from "./prompt_record.ts";
export * from "./prompt_template.ts";
export * from "./reward_metrics.ts";
export * from "./rl_batch.ts";
export * from "./rl_update.ts";
export * from "./rollout.ts";
export * from "./rollout_correction.ts";
export * from "./rollout_source.ts";
export * from "./run_key_warnings.ts";
export * from "./run_rl.ts";
export * from "./score_rollout.ts";
