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
  const ci = confidenceInterval([1, 1, 1, 0], { bounds: [0, 1] });
  assert.ok(ci.upper <= 1);
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
