// Copyright 2025 the halo authors. MIT license.
/**
 * Scalar rewards built on {@linkcode verify}.
 *
 * @module
 */

import type { PreparedGold } from "./prepare_gold.ts";
import { verify, type VerifyOptions } from "./verify.ts";

/** Options for the reward functions (the same as `verify`'s). */
export type RewardOptions = VerifyOptions;

/**
 * DAPO-style reward: `+1` when the response's marked answer is equivalent to the gold,
 * `-1` otherwise (wrong, missing, unparseable, timed out), and `null` when the gold is
 * unusable — skip such a sample rather than penalising it. Deterministic: in the default
 * `"reward"` mode the work is bounded by counted steps, never by the clock, so a resumed
 * run computes the same rewards.
 *
 * Unlike DAPO's string match after Minerva normalisation, `13.0`, `0.5` for `\frac12`
 * and `\dfrac{1}{2}` are rewarded. The default mode is `"reward"` (an answer must sit
 * behind `\boxed{}`, `Answer:`, `####` or "The final answer is").
 *
 * @param response The model response.
 * @param gold The gold answer or a `PreparedGold`.
 * @param options Verification options.
 * @returns `1`, `-1` or `null`.
 *
 * @example Usage
 * ```ts
 * import { dapoReward } from "./reward.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(dapoReward("Answer: 13.0", "13"), 1);
 * assert.equal(dapoReward("Answer: 14", "13"), -1);
 * assert.equal(dapoReward("Answer: 14", ""), null);
 * ```
 */
export function dapoReward(
  response: string,
  gold: string | PreparedGold,
  options: RewardOptions = {},
): 1 | -1 | null {
  const r = verify(response, gold, options);
  return r.correct === null ? null : r.correct ? 1 : -1;
}

/**
 * Binary reward: `1` when correct, `0` otherwise, `null` when the gold is unusable (skip,
 * never 0).
 *
 * @param response The model response.
 * @param gold The gold answer or a `PreparedGold`.
 * @param options Verification options.
 * @returns `1`, `0` or `null`.
 *
 * @example Usage
 * ```ts
 * import { binaryReward } from "./reward.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(binaryReward("\\boxed{\\tfrac{1}{2}}", "0.5"), 1);
 * assert.equal(binaryReward("no marker: 0.5", "0.5"), 0);
 * ```
 */
export function binaryReward(
  response: string,
  gold: string | PreparedGold,
  options: RewardOptions = {},
): 1 | 0 | null {
  const r = verify(response, gold, options);
  return r.correct === null ? null : r.correct ? 1 : 0;
}
