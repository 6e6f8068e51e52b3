// Copyright 2025 the halo authors. MIT license.
/**
 * Answer verification for RL from verifiable rewards and for evaluation.
 *
 * Pipeline: {@linkcode extractAnswer} (last `\boxed{}` / `Answer:` / `####` / "The final
 * answer is", plus LaTeX blocks and the last line in `eval` mode; reports the extractor
 * and the marker offset) → {@linkcode normalizeAnswer} → {@linkcode parseAnswer} (LaTeX →
 * MathJSON with the Compute Engine's standalone LaTeX parser, then a small typed tree) →
 * equivalence: identical strings, exact rationals and Gaussian rationals (bigint),
 * closed forms numerically (relative tolerance 1e-9), expressions with variables at 6
 * seeded random points (relative tolerance 1e-8), and structural rules for tuples
 * (ordered), sets (unordered), intervals, unions, `\pm`, equations, inequalities,
 * matrices, choice letters, text and numbers in a base.
 *
 * Guarantees: {@linkcode verify}, {@linkcode mathEqual} and the rewards never throw, run
 * within a per-call budget (default 100 ms, then reason `timeout`; the one
 * non-interruptible step, the LaTeX parser, only sees inputs of at most 512 characters
 * and nesting depth 24), and are pure: no global mutable state, no `Math.random`, no
 * `eval`. Only the Compute Engine's stateless LaTeX parser is used, not a shared
 * `ComputeEngine`, whose parsing declares symbols in the engine (state that would leak
 * between calls) and whose simplification cannot be interrupted.
 *
 * An unusable gold gives `correct: null` (skip the sample), never 0.
 *
 * ```ts
 * import { verify } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(verify("Thus \\boxed{\\dfrac{1}{2}}.", "0.5").correct, true);
 * ```
 *
 * @module
 */

export * from "./extract_answer.ts";
export * from "./normalize_answer.ts";
export * from "./parse_answer.ts";
export * from "./math_equal.ts";
export { type PreparedGold, prepareGold, type PrepareGoldOptions } from "./prepare_gold.ts";
export * from "./verify.ts";
export * from "./reward.ts";
export * from "./types.ts";
