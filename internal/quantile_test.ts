import { strictEqual } from "node:assert/strict";
import { quantile } from "./quantile.ts";

Deno.test("quantile() interpolates between order statistics as NumPy's default", () => {
  // numpy.quantile([2, 3, 5, 11], [0, 0.25, 0.5, 0.9, 1]) = [2, 2.75, 4, 9.2, 11] (type 7).
  const xs = new Float64Array([2, 3, 5, 11]);
  const want = [[0, 2], [0.25, 2.75], [0.5, 4], [0.9, 9.2], [1, 11]];
  for (const [q, v] of want) {
    const got = quantile(xs, q);
    // Tolerance: one interpolation step of doubles (|got − want| ≤ 1e-12).
    if (Math.abs(got - v) > 1e-12) throw new Error(`quantile(${q}) = ${got}, expected ${v}`);
  }
  strictEqual(quantile([7], 0.3), 7);
  strictEqual(quantile([], 0.5), NaN);
  strictEqual(quantile([], 0.5, 1), 1);
});
