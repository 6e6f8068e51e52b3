import assert from "node:assert/strict";
import { mulberry32 } from "../internal/random.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import {
  allocateExperts,
  alphaLoraAllocation,
  hillAlpha,
  weightAlpha,
} from "./hilo_alpha_allocation.ts";

Deno.test("hillAlpha() and weightAlpha() match the estimator by hand", () => {
  // Eigenvalues 1, 1, 2, 4: N = 4, i = 2, x_min = 2: α = 1 + 2 / (ln 1 + ln 2).
  const want = 1 + 2 / Math.LN2;
  assert.ok(Math.abs(hillAlpha([4, 1, 2, 1]) - want) < 1e-14);
  // The same spectrum as squared singular values of a 4 × 6 matrix, rotated by a permutation and
  // signs (so the eigenvalue solver, not the diagonal, does the work), and its transpose.
  const sv = [1, 1, Math.SQRT2, 2];
  const w = new Float64Array(4 * 6);
  const cols = [5, 0, 3, 2];
  sv.forEach((s, i) => (w[i * 6 + cols[i]] = i % 2 ? -s : s));
  assert.ok(Math.abs(weightAlpha(w, [4, 6]) - want) < 1e-12);
  const t = new Float64Array(6 * 4);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) t[j * 4 + i] = w[i * 6 + j];
  assert.ok(Math.abs(weightAlpha(t, [6, 4]) - want) < 1e-12);
  // Eigenvalues below 1e-5 are dropped.
  assert.ok(Math.abs(hillAlpha([0, 1e-9, 4, 1, 2, 1]) - want) < 1e-14);
});

Deno.test("hillAlpha() recovers the exponent of a Pareto sample", () => {
  // λ = (1 − u)^(−1/(α−1)) is Pareto with density exponent α; 4000 samples: Hill's relative
  // standard error is 1/√(N/2) ≈ 2%, so 10% is a loose bound that a wrong formula fails.
  const rand = mulberry32(5);
  for (const alpha of [2, 3, 5]) {
    const eig = Array.from({ length: 4000 }, () => (1 - rand()) ** (-1 / (alpha - 1)));
    const got = hillAlpha(eig);
    assert.ok(Math.abs(got - alpha) / alpha < 0.1, `α = ${alpha}: estimated ${got}`);
  }
});

Deno.test("allocateExperts() shares the budget in proportion to α^β with a minimum", () => {
  assert.deepEqual(allocateExperts([2, 2, 4, 8], { totalExperts: 16 }), [2, 2, 4, 8]);
  // β = 0: uniform.
  assert.deepEqual(allocateExperts([2, 2, 4, 8], { totalExperts: 16, beta: 0 }), [4, 4, 4, 4]);
  // Minimum 2 each, 4 left: targets 16·w/Σw − 2 = 0, 0, 2, 6 → shares 0, 0, 1, 3.
  assert.deepEqual(allocateExperts([2, 2, 4, 8], { totalExperts: 12, minExperts: 2 }), [
    2,
    2,
    3,
    5,
  ]);
  // Rounding: thirds go to the largest remainders, ties to the shallower layer.
  const e = allocateExperts([1, 1, 1], { totalExperts: 7 });
  assert.deepEqual(e, [3, 2, 2]);
  for (const T of [5, 9, 30]) {
    const got = allocateExperts([2.1, 3.7, 2.9, 5.5, 4.2], { totalExperts: T, beta: 2 });
    assert.equal(got.reduce((a, b) => a + b, 0), T);
    assert.ok(got.every((x) => x >= 1));
  }
  assert.throws(() => allocateExperts([2, 3], { totalExperts: 1 }), /"totalExperts".*≥ .*2/);
  assert.throws(() => allocateExperts([2, NaN], { totalExperts: 4 }), /layer 1.*NaN/);
});

Deno.test("alphaLoraAllocation() on the fixture model gives finite exponents and the budget", async () => {
  const dir = fixtureDir();
  const config = await readQwen3Config(dir);
  const { layers } = await loadQwen3Weights(dir, config);
  const { alphas, experts } = alphaLoraAllocation(layers, config, { totalExperts: 8 });
  assert.equal(alphas.length, config.numHiddenLayers);
  assert.ok(alphas.every((a) => Number.isFinite(a) && a > 1), `${alphas}`);
  assert.equal(experts.reduce((a, b) => a + b, 0), 8);
  console.log(`fixture per-layer alpha ${alphas.map((a) => a.toFixed(3))}, experts ${experts}`);
});
