// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { avgAtK } from "./avg_at_k.ts";

Deno.test("avgAtK() averages the first k samples", () => {
  assert.equal(avgAtK([true, true, false, false]), 0.5);
  assert.equal(avgAtK([true, true, false, false], 2), 1);
  assert.equal(avgAtK([false]), 0);
  // Sample k (0-based) is outside the first k: a right answer there does not count.
  assert.equal(avgAtK([false, true], 1), 0);
  assert.equal(avgAtK([true, false, true, true], 3), 2 / 3);
});

Deno.test("avgAtK() throws RangeError on no samples or a bad k", () => {
  assert.throws(() => avgAtK([]), RangeError);
  assert.throws(() => avgAtK([true], 2), { name: "RangeError", message: /got k=2/ });
  assert.throws(() => avgAtK([true], 0), RangeError);
});
