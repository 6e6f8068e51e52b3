/**
 * The reward metrics of a step's rollouts.
 *
 * @module
 */
import type { RolloutScore } from "./score_rollout.ts";

/**
 * The reward metrics of a step's generated rollouts. A rollout whose gold is unusable
 * (`correct: null`: its group is skipped by dynamic sampling and never trained on) is left out
 * of `reward/mean` and `reward/accuracy`, which are over the other rollouts and absent when
 * there are none; `reward/unusable_gold` is its share of all rollouts. `reward/overlong_penalty`
 * and `reward/marker_rate`, which describe the responses, count every rollout. The rewards used
 * in the loss are not touched.
 *
 * @param scores The scores of every generated rollout of the step.
 * @returns The metrics, by name.
 *
 * @example One rollout of an unusable gold
 * ```ts
 * import { rewardMetrics } from "./reward_metrics.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const base = { markerOffset: 0, penalty: 0, truncated: false };
 * const m = rewardMetrics([
 *   { ...base, reward: 1, correct: true },
 *   { ...base, reward: -1, correct: null },
 * ]);
 * strictEqual(m["reward/mean"], 1);
 * strictEqual(m["reward/unusable_gold"], 0.5);
 * ```
 */
export function rewardMetrics(scores: readonly RolloutScore[]): Record<string, number> {
  const mean = (values: readonly number[]): number =>
    values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
  const usable = scores.filter((x) => x.correct !== null);
  return {
    ...(usable.length === 0 ? {} : {
      "reward/mean": mean(usable.map((x) => x.reward)),
      "reward/accuracy": mean(usable.map((x) => (x.correct === true ? 1 : 0))),
    }),
    "reward/unusable_gold": mean(scores.map((x) => (x.correct === null ? 1 : 0))),
    "reward/overlong_penalty": mean(scores.map((x) => x.penalty)),
    "reward/marker_rate": mean(scores.map((x) => (x.markerOffset >= 0 ? 1 : 0))),
  };
}
