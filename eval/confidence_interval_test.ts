// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { confidenceInterval } from "./confidence_interval.ts";

Deno.test("confidenceInterval() gives the normal-approximation interval", () => {
  const values = [0, 1, 0, 1];
  const ci = confidenceInterval(values);
  const half = 1.959963984540054 * Math.sqrt((4 * 0.25 / 3) / 4);
  assert.equal(ci.mean, 0.5);
  assert.ok(Math.abs(ci.lower - (0.5 - half)) < 1e-8);
  assert.ok(Math.abs(ci.upper - (0.5 + half)) < 1e-8);
  assert.equal(ci.method, "normal");
  const ci90 = confidenceInterval(values, { level: 0.9 });
  assert.ok(ci90.upper - ci90.lower < ci.upper - ci.lower);
});

Deno.test("confidenceInterval() normal interval uses the right z at every level, tails too", () => {
  // z = Φ⁻¹(1 − (1 − level) / 2) from Python's statistics.NormalDist().inv_cdf (an independent
  // float64 implementation); levels above 0.9515 reach the approximation's tail branch. The
  // approximation's relative error is < 1.2e-9, so the tolerance is 1e-8 relative.
  const z: [number, number][] = [
    [0.5, 0.6744897501960817],
    [0.8, 1.2815515655446008],
    [0.9, 1.6448536269514715],
    [0.95, 1.9599639845400536],
    [0.99, 2.5758293035489],
    [0.999, 3.2905267314919255],
  ];
  const se = Math.sqrt(1 / 3 / 4); // [0, 1, 0, 1]: sample variance 1/3, n = 4
  for (const [level, want] of z) {
    const ci = confidenceInterval([0, 1, 0, 1], { level });
    const half = (ci.upper - ci.lower) / 2;
    assert.ok(Math.abs(half / se - want) < 1e-8 * want, `level ${level}: ${half / se} vs ${want}`);
    assert.ok(Math.abs(ci.upper + ci.lower - 1) < 1e-12, `level ${level}: centred on 0.5`);
  }
});

Deno.test("confidenceInterval() bootstrap quantiles match the exact bootstrap distribution", () => {
  // For [0, 1] a resample mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4 (exactly
  // representable): the α/2 and 1 − α/2 quantiles of 2000 seeded resamples fall inside those
  // atoms (each atom holds ~500 ± 20 of them), so the interval is exact: no tolerance.
  const at = (level: number) => {
    const ci = confidenceInterval([0, 1], { method: "bootstrap", level });
    return [ci.lower, ci.upper];
  };
  assert.deepEqual(at(0.95), [0, 1]);
  assert.deepEqual(at(0.6), [0, 1]); // the 0.2 and 0.8 quantiles
  assert.deepEqual(at(0.2), [0.5, 0.5]); // the 0.4 and 0.6 quantiles
});

Deno.test("confidenceInterval() bootstrap is seeded and reproducible", () => {
  const values = Array.from({ length: 50 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
  const a = confidenceInterval(values, { method: "bootstrap", seed: 7, resamples: 500 });
  const b = confidenceInterval(values, { method: "bootstrap", seed: 7, resamples: 500 });
  assert.deepEqual(a, b);
  assert.ok(a.lower < a.mean && a.mean < a.upper);
  const normal = confidenceInterval(values);
  assert.ok(Math.abs((a.upper - a.lower) - (normal.upper - normal.lower)) < 0.1);
});

Deno.test("confidenceInterval() clamps to bounds and handles one value", () => {
  // [1, 1, 1, 0]: mean 0.75, half-width 1.96 · √(0.25 / 4) ≈ 0.49: only the upper end is clamped;
  // [0, 0, 0, 1] mirrors it at the lower end.
  const half = 1.959963984540054 * 0.25;
  const ci = confidenceInterval([1, 1, 1, 0], { bounds: [0, 1] });
  assert.equal(ci.upper, 1);
  assert.ok(Math.abs(ci.lower - (0.75 - half)) < 1e-8);
  const low = confidenceInterval([0, 0, 0, 1], { bounds: [0, 1] });
  assert.equal(low.lower, 0);
  assert.ok(Math.abs(low.upper - (0.25 + half)) < 1e-8);
  assert.deepEqual(confidenceInterval([0.3]), {
    mean: 0.3,
    lower: 0.3,
    upper: 0.3,
    level: 0.95,
    method: "normal",
    n: 1,
  });
});

Deno.test("confidenceInterval() throws RangeError on bad input", () => {
  assert.throws(() => confidenceInterval([]), RangeError);
  assert.throws(() => confidenceInterval([NaN]), RangeError);
  assert.throws(() => confidenceInterval([1, 2], { level: 1 }), { message: /got 1/ });
});
