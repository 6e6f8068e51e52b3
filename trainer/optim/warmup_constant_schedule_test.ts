import assert from "node:assert/strict";
import { warmupConstantSchedule } from "./warmup_constant_schedule.ts";

Deno.test("warmupConstantSchedule() ramps linearly then stays at the peak", () => {
  const lr = warmupConstantSchedule({ peakValue: 2e-6, warmupSteps: 4 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 1000].map(lr), [0, 5e-7, 1e-6, 1.5e-6, 2e-6, 2e-6, 2e-6]);
  const from = warmupConstantSchedule({ peakValue: 1, warmupSteps: 2, initValue: 0.5 });
  assert.deepEqual([0, 1, 2].map(from), [0.5, 0.75, 1]);
  const none = warmupConstantSchedule({ peakValue: 3, warmupSteps: 0 });
  assert.equal(none(0), 3);
});

Deno.test("warmupConstantSchedule() rejects bad options and steps", () => {
  assert.throws(() => warmupConstantSchedule({ peakValue: -1, warmupSteps: 1 }), RangeError);
  assert.throws(() => warmupConstantSchedule({ peakValue: 1, warmupSteps: 1.5 }), RangeError);
  const lr = warmupConstantSchedule({ peakValue: 1, warmupSteps: 1 });
  assert.throws(() => lr(-1), RangeError);
  assert.throws(() => lr(0.5), RangeError);
});
