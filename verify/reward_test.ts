// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { binaryReward, dapoReward } from "./reward.ts";
import { prepareGold } from "./prepare_gold.ts";

Deno.test("dapoReward() gives +1 / -1 and null for an unusable gold", () => {
  assert.equal(dapoReward("Answer: 13.0", "13"), 1);
  assert.equal(dapoReward("Answer: 12", "13"), -1);
  assert.equal(dapoReward("13", "13"), -1, "no marker");
  assert.equal(dapoReward("Answer: 13", "\\sqrt{"), null);
});

Deno.test("binaryReward() gives 1 / 0 and null for an unusable gold", () => {
  const gold = prepareGold("\\{1, 2\\}");
  assert.equal(binaryReward("\\boxed{\\{2,1\\}}", gold), 1);
  assert.equal(binaryReward("\\boxed{\\{2,3\\}}", gold), 0);
  assert.equal(binaryReward("\\boxed{1}", ""), null);
});
