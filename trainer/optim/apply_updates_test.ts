import assert from "node:assert/strict";
import { applyUpdates } from "./apply_updates.ts";

Deno.test("applyUpdates() adds updates into new arrays and checks names", () => {
  const p = { a: new Float32Array([1, 2]), b: new Float32Array([3]) };
  const out = applyUpdates(p, { a: new Float32Array([0.5, -2]), b: new Float32Array([1]) });
  assert.deepEqual(out, { a: new Float32Array([1.5, 0]), b: new Float32Array([4]) });
  assert.deepEqual(p.a, new Float32Array([1, 2]));
  assert.throws(() => applyUpdates(p, { a: new Float32Array(2) }), TypeError);
  assert.throws(
    () => applyUpdates(p, { a: new Float32Array(2), b: new Float32Array(3) }),
    RangeError,
  );
});
