import assert from "node:assert/strict";
import { globalNorm } from "./global_norm.ts";

Deno.test("globalNorm() is the L2 norm of all tensors together", () => {
  assert.equal(globalNorm({ a: new Float32Array([1, 2]), b: new Float32Array([2, 4]) }), 5);
  assert.equal(globalNorm({}), 0);
});
