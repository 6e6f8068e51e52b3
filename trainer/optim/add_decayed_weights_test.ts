import assert from "node:assert/strict";
import { addDecayedWeights } from "./add_decayed_weights.ts";

Deno.test("addDecayedWeights() adds wd·p to the masked tensors only", () => {
  const decay = addDecayedWeights(0.5, { mask: (name) => !name.endsWith("norm") });
  const params = { w: new Float32Array([2, -4]), norm: new Float32Array([8]) };
  const grads = { w: new Float32Array([1, 1]), norm: new Float32Array([1]) };
  const { updates } = decay.update(grads, decay.init(params), params);
  assert.deepEqual(updates, { w: new Float32Array([2, -1]), norm: new Float32Array([1]) });
  assert.deepEqual(grads.w, new Float32Array([1, 1]), "the input is not modified");
});

Deno.test("addDecayedWeights() requires params shaped like the gradients", () => {
  const decay = addDecayedWeights(0.1);
  const g = { w: new Float32Array(2) };
  assert.throws(() => decay.update(g, {}), TypeError);
  assert.throws(() => decay.update(g, {}, { w: new Float32Array(3) }), RangeError);
  assert.throws(() => decay.update(g, {}, { v: new Float32Array(2) }), TypeError);
  assert.throws(() => addDecayedWeights(-1), RangeError);
});
