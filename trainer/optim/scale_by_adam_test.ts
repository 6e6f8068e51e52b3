import assert from "node:assert/strict";
import { scaleByAdam } from "./scale_by_adam.ts";

Deno.test("scaleByAdam() follows the bias-corrected moments on hand values", () => {
  const adam = scaleByAdam({ b1: 0.5, b2: 0.75, eps: 0 });
  const g1 = { w: new Float32Array([2]) };
  const g2 = { w: new Float32Array([-1]) };
  const r1 = adam.update(g1, adam.init(g1));
  const r2 = adam.update(g2, r1.state);
  // Hand computation: m1 = 1, v1 = 1, update 1 / 1 = 1 (with corrections 0.5 and 0.25).
  // m2 = 0.5 − 0.5 = 0, so the second update is 0; v2 = 0.75 + 0.25 = 1.
  assert.deepEqual(r1.updates.w, new Float32Array([1]));
  assert.deepEqual(r1.state.mu.w, new Float32Array([1]));
  assert.deepEqual(r1.state.nu.w, new Float32Array([1]));
  assert.deepEqual(r2.updates.w, new Float32Array([0]));
  assert.deepEqual(r2.state.nu.w, new Float32Array([1]));
  assert.equal(r2.state.count, 2);
  assert.deepEqual(r1.state.mu.w, new Float32Array([1]), "old state untouched");
});

Deno.test("scaleByAdam() validates hyperparameters and state shape", () => {
  assert.throws(() => scaleByAdam({ b1: 1 }), RangeError);
  assert.throws(() => scaleByAdam({ b2: -0.1 }), RangeError);
  assert.throws(() => scaleByAdam({ eps: -1 }), RangeError);
  const adam = scaleByAdam();
  const s = adam.init({ w: new Float32Array(2) });
  assert.throws(() => adam.update({ w: new Float32Array(3) }, s), RangeError);
});
