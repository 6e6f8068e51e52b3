import assert from "node:assert/strict";
import { scaleByLearningRate } from "./scale_by_learning_rate.ts";

Deno.test("scaleByLearningRate() negates and scales by a rate or a schedule", () => {
  const g = { w: new Float32Array([2, -4]) };
  const c = scaleByLearningRate(0.25);
  const r = c.update(g, c.init(g));
  assert.deepEqual(r.updates.w, new Float32Array([-0.5, 1]));
  assert.deepEqual(r.metrics, { "optim/lr": 0.25 });
  assert.deepEqual(r.state, { count: 1 });
  const s = scaleByLearningRate((step) => (step === 0 ? 0 : 0.5));
  const r0 = s.update(g, s.init(g));
  const r1 = s.update(g, r0.state);
  assert.deepEqual([...r0.updates.w].map(Math.abs), [0, 0]);
  assert.deepEqual(r1.updates.w, new Float32Array([-1, 2]));
  assert.throws(() => scaleByLearningRate(-1), RangeError);
});
