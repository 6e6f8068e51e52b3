import assert from "node:assert/strict";
import { clipByGlobalNorm } from "./clip_by_global_norm.ts";
import { globalNorm } from "./global_norm.ts";
import { randomTree, treeRelativeError } from "./_testing.ts";

const SHAPE = { a: 100, b: 17 };

Deno.test("clipByGlobalNorm() scales a large gradient to the max norm and reports the norm", () => {
  const g = randomTree(SHAPE, 1, -3, 3);
  const norm = globalNorm(g);
  const clip = clipByGlobalNorm(2);
  const { updates, metrics } = clip.update(g, clip.init(g));
  // Reference in float64: the PyTorch factor max / (norm + 1e-6), applied element-wise.
  const scale = 2 / (norm + 1e-6);
  const ref: Record<string, Float64Array> = {};
  for (const k of Object.keys(g)) ref[k] = Float64Array.from(g[k], (x) => x * scale);
  // One float32 rounding per element: 1e-7 relative.
  assert.ok(treeRelativeError(updates, ref) <= 1e-7);
  assert.ok(Math.abs(globalNorm(updates) - 2) <= 2e-6);
  assert.equal(metrics["optim/grad_norm"], norm);
  assert.equal(metrics["optim/clip_scale"], scale);
});

Deno.test("clipByGlobalNorm() leaves a small gradient unchanged", () => {
  const g = randomTree(SHAPE, 2, -0.01, 0.01);
  const clip = clipByGlobalNorm(10);
  const { updates, metrics } = clip.update(g, clip.init(g));
  assert.deepEqual(updates, g);
  assert.equal(metrics["optim/clip_scale"], 1);
  assert.equal(metrics["optim/grad_norm"], globalNorm(g));
});

Deno.test("clipByGlobalNorm() rejects a max norm that is not > 0", () => {
  assert.throws(() => clipByGlobalNorm(0), RangeError);
  assert.throws(() => clipByGlobalNorm(NaN), RangeError);
});

Deno.test("clipByGlobalNorm() clips a norm only just above the max", () => {
  // ‖(3, 4)‖ = 5 against a max of 4.9995: a scale of 0.9999, which is still a clip.
  const g = { w: new Float32Array([3, 4]) };
  const clip = clipByGlobalNorm(4.9995);
  const { updates, metrics } = clip.update(g, clip.init(g));
  const scale = 4.9995 / (5 + 1e-6);
  assert.equal(metrics["optim/clip_scale"], scale);
  // One float32 rounding per element.
  assert.ok(Math.abs(updates.w[0] - 3 * scale) <= 3e-7, `${updates.w[0]}`);
  assert.ok(Math.abs(updates.w[1] - 4 * scale) <= 4e-7, `${updates.w[1]}`);
  assert.ok(updates.w[1] < 4 - 3e-4, "the gradient was scaled");
});
