import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { rewardMetrics } from "./reward_metrics.ts";
import type { RolloutScore } from "./score_rollout.ts";

const score = (reward: number, correct: boolean | null, markerOffset = 0): RolloutScore => ({
  reward,
  correct,
  markerOffset,
  penalty: 0,
  truncated: false,
});

Deno.test("rewardMetrics() leaves rollouts of an unusable gold out of the reward and accuracy", () => {
  // Two usable rollouts (one right, one wrong), two of an unusable gold (scored -1 in dapo mode).
  const m = rewardMetrics([score(1, true), score(-1, false), score(-1, null), score(-1, null, -1)]);
  strictEqual(m["reward/mean"], 0);
  strictEqual(m["reward/accuracy"], 0.5);
  strictEqual(m["reward/unusable_gold"], 0.5);
  // The response metrics count every rollout.
  strictEqual(m["reward/marker_rate"], 0.75);
  strictEqual(m["reward/overlong_penalty"], 0);
});

Deno.test("rewardMetrics() with no usable gold gives no reward or accuracy", () => {
  const m = rewardMetrics([score(-1, null), score(-1.5, null)]);
  deepStrictEqual(Object.keys(m).sort(), [
    "reward/marker_rate",
    "reward/overlong_penalty",
    "reward/unusable_gold",
  ]);
  strictEqual(m["reward/unusable_gold"], 1);
});

Deno.test("rewardMetrics() with usable golds only averages every rollout", () => {
  const s = [score(1, true), score(-1.25, false, -1), score(-1, false)];
  s[1].penalty = -0.25;
  const m = rewardMetrics(s);
  strictEqual(m["reward/mean"], (1 - 1.25 - 1) / 3);
  strictEqual(m["reward/accuracy"], 1 / 3);
  strictEqual(m["reward/unusable_gold"], 0);
  strictEqual(m["reward/overlong_penalty"], -0.25 / 3);
  strictEqual(m["reward/marker_rate"], 2 / 3);
});
