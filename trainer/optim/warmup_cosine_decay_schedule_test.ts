import assert from "node:assert/strict";
import { warmupCosineDecaySchedule } from "./warmup_cosine_decay_schedule.ts";

Deno.test("warmupCosineDecaySchedule() hits known points of warm-up and half-cosine", () => {
  const lr = warmupCosineDecaySchedule({
    peakValue: 1e-5,
    warmupSteps: 10,
    decaySteps: 110,
    minRatio: 0.1,
  });
  // Hand values: warm-up i/10; after it 1e-5·(0.1 + 0.9·½(1 + cos(π·(s − 10)/100))).
  const cases: [number, number][] = [
    [0, 0],
    [5, 5e-6],
    [10, 1e-5],
    [35, 1e-5 * (0.1 + 0.45 * (1 + Math.SQRT1_2))], // quarter of the decay: cos(π/4)
    [60, 1e-5 * 0.55], // half-way: cos(π/2) = 0
    [85, 1e-5 * (0.1 + 0.45 * (1 - Math.SQRT1_2))],
    [110, 1e-6],
    [10_000, 1e-6],
  ];
  for (const [step, want] of cases) {
    // float64 evaluation of the same closed form: agreement to 1e-12 relative.
    assert.ok(Math.abs(lr(step) - want) <= 1e-12 * 1e-5, `step ${step}: ${lr(step)} vs ${want}`);
  }
  for (let s = 10; s < 200; s++) assert.ok(lr(s + 1) <= lr(s), `non-increasing at ${s}`);
});

Deno.test("warmupCosineDecaySchedule() decays to 0 by default and validates options", () => {
  const lr = warmupCosineDecaySchedule({ peakValue: 1, warmupSteps: 0, decaySteps: 4 });
  assert.equal(lr(0), 1);
  assert.ok(Math.abs(lr(2) - 0.5) < 1e-15);
  assert.equal(lr(4), 0);
  assert.throws(
    () => warmupCosineDecaySchedule({ peakValue: 1, warmupSteps: 5, decaySteps: 5 }),
    RangeError,
  );
  assert.throws(
    () => warmupCosineDecaySchedule({ peakValue: 1, warmupSteps: 0, decaySteps: 5, minRatio: 2 }),
    RangeError,
  );
  assert.throws(() => lr(NaN), RangeError);
});

Deno.test("warmupCosineDecaySchedule() warms up from initValue", () => {
  const lr = warmupCosineDecaySchedule({
    peakValue: 1,
    initValue: 0.2,
    warmupSteps: 4,
    decaySteps: 8,
  });
  // Hand values: 0.2 + 0.8·s/4 during the warm-up, then the peak.
  const cases: [number, number][] = [[0, 0.2], [1, 0.4], [2, 0.6], [3, 0.8], [4, 1]];
  for (const [step, want] of cases) {
    assert.ok(Math.abs(lr(step) - want) <= 1e-15, `step ${step}: ${lr(step)} vs ${want}`);
  }
});
