// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { passAtK } from "./pass_at_k.ts";

/** All k-subsets of {0..n-1}, as bitmasks. */
function* subsets(n: number, k: number, start = 0, mask = 0): Generator<number> {
  if (k === 0) {
    yield mask;
    return;
  }
  for (let i = start; i <= n - k; i++) yield* subsets(n, k - 1, i + 1, mask | (1 << i));
}

Deno.test("passAtK() matches exact enumeration over all k-subsets for n <= 10", () => {
  for (let n = 1; n <= 10; n++) {
    for (let c = 0; c <= n; c++) {
      const correct = (1 << c) - 1; // samples 0..c-1 are correct
      for (let k = 1; k <= n; k++) {
        let hit = 0;
        let total = 0;
        for (const s of subsets(n, k)) {
          total++;
          if (s & correct) hit++;
        }
        const got = passAtK(n, c, k);
        assert.ok(
          Math.abs(got - hit / total) < 1e-12,
          `n=${n} c=${c} k=${k}: ${got} vs ${hit / total}`,
        );
      }
    }
  }
});

Deno.test("passAtK() satisfies pass@1 = c/n and pass@n = 1 when c > 0", () => {
  for (const n of [1, 2, 5, 16, 100, 1000]) {
    for (const c of [0, 1, Math.floor(n / 3), n]) {
      assert.ok(Math.abs(passAtK(n, c, 1) - c / n) < 1e-12);
      assert.equal(passAtK(n, c, n), c > 0 ? 1 : 0);
    }
  }
});

Deno.test("passAtK() is 1 when n - c < k and stable for large n", () => {
  assert.equal(passAtK(10, 8, 3), 1);
  const p = passAtK(10000, 1, 5000);
  assert.ok(Math.abs(p - 0.5) < 1e-9);
  assert.ok(passAtK(100000, 3, 1) > 0);
});

Deno.test("passAtK() throws RangeError on invalid arguments", () => {
  assert.throws(() => passAtK(3, 1, 4), { name: "RangeError", message: /got n=3, c=1, k=4/ });
  assert.throws(() => passAtK(3, 4, 1), RangeError);
  assert.throws(() => passAtK(3, -1, 1), RangeError);
  assert.throws(() => passAtK(3, 1, 0), RangeError);
  assert.throws(() => passAtK(2.5, 1, 1), RangeError);
  assert.throws(() => passAtK(0, 0, 0), RangeError);
});
