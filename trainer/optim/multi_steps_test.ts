import assert from "node:assert/strict";
import type { ParamTree } from "../types.ts";
import { adamw } from "./adamw.ts";
import { multiSteps } from "./multi_steps.ts";
import { assertTreeEqual, randomTree, treeRelativeError } from "./_testing.ts";

const SHAPE = { a: 33, b: 4 };
// The running mean rounds to float32 once per micro-batch, then AdamW adds a few roundings:
// 1e-6 relative against the same optimizer fed the mean computed in float64.
const TOL = 1e-6;

function weightedMean(grads: ParamTree[], weights: number[]): ParamTree {
  const total = weights.reduce((a, b) => a + b, 0);
  const out: ParamTree = {};
  for (const k of Object.keys(grads[0])) {
    const sum = new Float64Array(grads[0][k].length);
    grads.forEach((g, i) => g[k].forEach((x, j) => (sum[j] += (weights[i] * x) / total)));
    out[k] = Float32Array.from(sum);
  }
  return out;
}

for (const weighting of ["microbatch", "token"] as const) {
  Deno.test(`multiSteps() over k micro-batches equals one step on the ${weighting} mean`, () => {
    const k = 3;
    const inner = adamw({ lr: 0.05, weightDecay: 0.1, maxGradNorm: 0.4 });
    const opt = multiSteps(inner, { everySteps: k, weighting });
    const params = randomTree(SHAPE, 1);
    let state = opt.init(params);
    let innerState = inner.init(params);
    for (let round = 0; round < 2; round++) {
      const grads = [0, 1, 2].map((i) => randomTree(SHAPE, 10 * round + i, -1, 1));
      const weights = weighting === "token" ? [17, 3, 40] : [1, 1, 1];
      for (let i = 0; i < k; i++) {
        const extra = weighting === "token" ? { weight: weights[i] } : undefined;
        const before = state;
        const r = opt.update(grads[i], state, params, extra);
        state = r.state;
        if (i < k - 1) {
          assert.ok(Object.values(r.updates).every((u) => u.every((x) => x === 0)));
          assert.deepEqual(r.metrics, {});
          assert.equal(state.inner, before.inner, "inner state untouched between updates");
          assert.equal(state.miniStep, i + 1);
          continue;
        }
        const ref = inner.update(weightedMean(grads, weights), innerState, params);
        innerState = ref.state;
        const err = treeRelativeError(r.updates, ref.updates);
        assert.ok(err <= TOL, `round ${round}: relative error ${err} exceeds ${TOL}`);
        assert.equal(r.metrics["optim/accum_weight"], weights.reduce((a, b) => a + b));
        assert.equal(state.gradientStep, round + 1);
        assert.equal(state.miniStep, 0);
      }
    }
  });
}

Deno.test("multiSteps() with everySteps 1 is the inner optimizer", () => {
  const inner = adamw({ lr: 0.1 });
  const opt = multiSteps(inner, { everySteps: 1 });
  const p = randomTree(SHAPE, 4);
  const g = randomTree(SHAPE, 5);
  assertTreeEqual(
    opt.update(g, opt.init(p), p).updates,
    inner.update(g, inner.init(p), p).updates,
    "updates",
  );
});

Deno.test("multiSteps() skips the update when all token weights are 0", () => {
  const inner = adamw({ lr: 0.1 });
  const opt = multiSteps(inner, { everySteps: 2, weighting: "token" });
  const p = randomTree(SHAPE, 6);
  const s0 = opt.init(p);
  const a = opt.update(randomTree(SHAPE, 7), s0, p, { weight: 0 });
  const b = opt.update(randomTree(SHAPE, 8), a.state, p, { weight: 0 });
  assert.equal(b.metrics["optim/skipped_update"], 1);
  assert.ok(Object.values(b.updates).every((u) => u.every((x) => x === 0)));
  assert.equal(b.state.inner, s0.inner);
  assert.equal(b.state.gradientStep, 0);
});

Deno.test("multiSteps() requires a weight exactly when weighting is token", () => {
  const p = randomTree(SHAPE, 9);
  const byToken = multiSteps(adamw({ lr: 1 }), { everySteps: 2, weighting: "token" });
  assert.throws(() => byToken.update(p, byToken.init(p), p), RangeError);
  assert.throws(() => byToken.update(p, byToken.init(p), p, { weight: -1 }), RangeError);
  const byBatch = multiSteps(adamw({ lr: 1 }), { everySteps: 2 });
  assert.throws(() => byBatch.update(p, byBatch.init(p), p, { weight: 5 }), TypeError);
  assert.throws(() => multiSteps(adamw({ lr: 1 }), { everySteps: 0 }), RangeError);
});
