import assert from "node:assert/strict";
import type { GradientTransformation, UpdateExtraArgs } from "../types.ts";
import { addDecayedWeights } from "./add_decayed_weights.ts";
import { applyUpdates } from "./apply_updates.ts";
import { chain } from "./chain.ts";
import { clipByGlobalNorm } from "./clip_by_global_norm.ts";
import { scaleByAdam } from "./scale_by_adam.ts";
import { scaleByLearningRate } from "./scale_by_learning_rate.ts";
import { assertTreeEqual, randomTree } from "./_testing.ts";

const SHAPE = { a: 7, b: 3, c: 1 };

Deno.test("chain() equals applying its pieces by hand over several steps", () => {
  const clip = clipByGlobalNorm(0.5);
  const adam = scaleByAdam({ b1: 0.8, b2: 0.99, eps: 1e-6 });
  const decay = addDecayedWeights(0.1);
  const rate = scaleByLearningRate((step) => 0.01 * (step + 1));
  const opt = chain(clip, adam, decay, rate);

  let params = randomTree(SHAPE, 1);
  let byHand = params;
  let state = opt.init(params);
  let s = [clip.init(params), adam.init(params), decay.init(params), rate.init(params)] as const;
  for (let step = 0; step < 4; step++) {
    const grads = randomTree(SHAPE, 10 + step, -2, 2);
    const r = opt.update(grads, state, params);
    params = applyUpdates(params, r.updates);
    state = r.state;

    const r0 = clip.update(grads, s[0], byHand);
    const r1 = adam.update(r0.updates, s[1], byHand);
    const r2 = decay.update(r1.updates, s[2], byHand);
    const r3 = rate.update(r2.updates, s[3], byHand);
    byHand = applyUpdates(byHand, r3.updates);
    s = [r0.state, r1.state, r2.state, r3.state];

    assertTreeEqual(params, byHand, `params after step ${step}`);
    assert.deepEqual(state, [...s]);
    assert.deepEqual(r.metrics, { ...r0.metrics, ...r3.metrics });
  }
});

Deno.test("chain() passes params and extra args to every piece and merges metrics", () => {
  const seen: (UpdateExtraArgs | undefined)[] = [];
  const probe = (name: string): GradientTransformation<{ calls: number }> => ({
    init: () => ({ calls: 0 }),
    update(grads, state, params, extra) {
      assert.ok(params !== undefined);
      seen.push(extra);
      return { updates: grads, state: { calls: state.calls + 1 }, metrics: { [name]: 1, x: 2 } };
    },
  });
  const opt = chain(probe("p"), probe("q"));
  const g = randomTree(SHAPE, 2);
  const r = opt.update(g, opt.init(g), g, { weight: 3 });
  assert.deepEqual(seen, [{ weight: 3 }, { weight: 3 }]);
  assert.deepEqual(r.metrics, { p: 1, q: 1, x: 2 });
  assert.deepEqual(r.state, [{ calls: 1 }, { calls: 1 }]);
});

Deno.test("chain() of no pieces is the identity and rejects a foreign state", () => {
  const id = chain();
  const g = randomTree(SHAPE, 3);
  assert.equal(id.update(g, id.init(g)).updates, g);
  const opt = chain(scaleByAdam());
  assert.throws(() => opt.update(g, [] as unknown as [never]), TypeError);
});
