import assert from "node:assert/strict";
import { mulberry32 } from "../internal/random.ts";
import { symmetricEigenvalues } from "./_symmetric_eigenvalues.ts";

/** Q·diag(values)·Qᵀ with Q a product of three random Householder reflections. */
function rotated(values: number[], seed: number): Float64Array {
  const n = values.length;
  const rand = mulberry32(seed);
  let a = new Float64Array(n * n);
  values.forEach((v, i) => (a[i * n + i] = v));
  for (let h = 0; h < 3; h++) {
    const v = Array.from({ length: n }, () => 2 * rand() - 1);
    const vv = v.reduce((s, x) => s + x * x, 0);
    // H·A·H with H = I − 2vvᵀ/vᵀv, applied as two products.
    const hm = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) hm[i * n + j] = (i === j ? 1 : 0) - (2 * v[i] * v[j]) / vv;
    }
    const mul = (x: Float64Array, y: Float64Array) => {
      const out = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < n; k++) {
          for (let j = 0; j < n; j++) out[i * n + j] += x[i * n + k] * y[k * n + j];
        }
      }
      return out;
    };
    a = mul(mul(hm, a), hm);
  }
  return a;
}

// Backward-stable: errors of a few ulps times the norm; 1e-10 relative to the largest value.
const TOL = 1e-10;

Deno.test("symmetricEigenvalues() recovers known spectra of rotated diagonal matrices", () => {
  assert.deepEqual(Array.from(symmetricEigenvalues([5], 1)), [5]);
  const two = symmetricEigenvalues([2, 1, 1, 2], 2);
  assert.ok(Math.abs(two[0] - 1) < 1e-14 && Math.abs(two[1] - 3) < 1e-14, `${two}`);
  const rand = mulberry32(3);
  for (const n of [3, 8, 31]) {
    // Repeated values and zeros included.
    const values = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 0 : 10 * rand() - 3));
    values[1] = values[2];
    const got = symmetricEigenvalues(rotated(values, n), n);
    const want = [...values].sort((x, y) => x - y);
    const scale = Math.max(...want.map(Math.abs));
    for (let i = 0; i < n; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) <= TOL * scale,
        `n=${n} i=${i}: ${got[i]} vs ${want[i]}`,
      );
    }
  }
});
