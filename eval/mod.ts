// Copyright 2025 the halo authors. MIT license.
/**
 * Evaluation metrics over sampled responses: pass@k (unbiased estimator), avg@k, maj@k
 * (majority vote over equivalence classes using the verifier) and confidence intervals
 * over problems.
 *
 * ```ts
 * import { passAtK } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(passAtK(4, 1, 1), 0.25);
 * ```
 *
 * @module
 */

export * from "./pass_at_k.ts";
export * from "./avg_at_k.ts";
export * from "./majority_vote.ts";
export * from "./maj_at_k.ts";
export * from "./confidence_interval.ts";
export * from "./score_problems.ts";
export * from "./eval_records.ts";
export * from "./eval_summary.ts";
export * from "./eval_report.ts";
export * from "./eval_data.ts";
export * from "./run_eval.ts";
export * from "./run_template.ts";
export * from "./train_data_overlap.ts";
export * from "./t_interval.ts";
export * from "./experiment_config.ts";
export * from "./experiment_report.ts";
export * from "./anchor_layers.ts";
export * from "./anchor_layers_report.ts";
