import assert from "node:assert/strict";
import type { ParamTree } from "../types.ts";
import { adamw } from "./adamw.ts";
import { applyUpdates } from "./apply_updates.ts";
import { randomTree, treeRelativeError } from "./_testing.ts";

// float32 state and updates against a float64 reference: each element sees a few roundings
// (~6e-8 each) per step, so 1e-6 relative over a few steps leaves an order of magnitude.
const TOL = 1e-6;

interface TorchHyper {
  lr: (step: number) => number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
  maxNorm?: number;
}

/**
 * torch.nn.utils.clip_grad_norm_ then torch.optim.AdamW.step, written from the PyTorch docs in
 * float64: p ← p·(1 − lr·wd); m ← b1·m + (1−b1)·g; v ← b2·v + (1−b2)·g²;
 * p ← p − (lr / (1 − b1^t)) · m / (sqrt(v) / sqrt(1 − b2^t) + eps).
 */
function torchAdamw(
  params: ParamTree,
  gradsPerStep: ParamTree[],
  h: TorchHyper,
): Record<string, Float64Array> {
  const names = Object.keys(params);
  const p: Record<string, Float64Array> = {};
  const m: Record<string, Float64Array> = {};
  const v: Record<string, Float64Array> = {};
  for (const k of names) {
    p[k] = Float64Array.from(params[k]);
    m[k] = new Float64Array(params[k].length);
    v[k] = new Float64Array(params[k].length);
  }
  gradsPerStep.forEach((grads, i) => {
    const t = i + 1;
    const lr = h.lr(i);
    let coef = 1;
    if (h.maxNorm !== undefined) {
      let sq = 0;
      for (const k of names) for (const g of grads[k]) sq += g * g;
      coef = Math.min(1, h.maxNorm / (Math.sqrt(sq) + 1e-6));
    }
    for (const k of names) {
      for (let j = 0; j < p[k].length; j++) {
        const g = grads[k][j] * coef;
        p[k][j] *= 1 - lr * h.wd;
        m[k][j] = h.b1 * m[k][j] + (1 - h.b1) * g;
        v[k][j] = h.b2 * v[k][j] + (1 - h.b2) * g * g;
        const denom = Math.sqrt(v[k][j]) / Math.sqrt(1 - h.b2 ** t) + h.eps;
        p[k][j] -= (lr / (1 - h.b1 ** t)) * (m[k][j] / denom);
      }
    }
  });
  return p;
}

const SHAPE = { "q.lora_A": 48, "q.lora_B": 32, "router": 5 };

/** `params0` after one update of `opt` per gradient; `onStep` sees each update's metrics. */
function runSteps(
  opt: ReturnType<typeof adamw>,
  params0: ParamTree,
  grads: readonly ParamTree[],
  onStep: (metrics: Record<string, number>) => void = () => {},
): ParamTree {
  let params = params0;
  let state = opt.init(params);
  for (const g of grads) {
    const r = opt.update(g, state, params);
    params = applyUpdates(params, r.updates);
    state = r.state;
    onStep(r.metrics);
  }
  return params;
}

for (const clip of [undefined, 0.3]) {
  Deno.test(
    `adamw() matches a float64 PyTorch AdamW over 6 steps (maxGradNorm ${clip})`,
    () => {
      const h: TorchHyper = {
        lr: (step) => 0.01 * (1 + step) / 2,
        b1: 0.9,
        b2: 0.95,
        eps: 1e-8,
        wd: 0.1,
        maxNorm: clip,
      };
      const opt = adamw({
        lr: h.lr,
        b1: h.b1,
        b2: h.b2,
        eps: h.eps,
        weightDecay: h.wd,
        maxGradNorm: clip,
      });
      const params0 = randomTree(SHAPE, 5);
      const grads = Array.from({ length: 6 }, (_, i) => randomTree(SHAPE, 100 + i, -0.5, 0.5));
      const params = runSteps(opt, params0, grads, (metrics) => {
        if (clip !== undefined) assert.ok(metrics["optim/clip_scale"] < 1, "clipping is active");
      });
      const ref = torchAdamw(params0, grads, h);
      const err = treeRelativeError(params, ref);
      // The parameters moved by ~lr·6 ≈ 0.1 of their size, so the check sees the update itself;
      // also compare the total displacement p − p0 (a stricter relative measure).
      const delta: ParamTree = {};
      const refDelta: Record<string, Float64Array> = {};
      for (const k of Object.keys(SHAPE)) {
        delta[k] = params[k].map((x, i) => x - params0[k][i]);
        refDelta[k] = ref[k].map((x, i) => x - params0[k][i]);
      }
      const deltaErr = treeRelativeError(delta, refDelta);
      console.log(
        `params rel err ${err.toExponential(2)}, delta rel err ${deltaErr.toExponential(2)}`,
      );
      assert.ok(err <= TOL, `params relative error ${err} exceeds ${TOL}`);
      // The displacement is a difference of float32 parameters: its rounding is ~6e-8·|p|/|Δp|.
      assert.ok(deltaErr <= 5e-6, `displacement relative error ${deltaErr} exceeds 5e-6`);
    },
  );
}

Deno.test("adamw() reports the learning rate and the pre-clip norm as metrics", () => {
  const opt = adamw({ lr: 0.5, maxGradNorm: 1 });
  const g = { w: new Float32Array([3, 4]) };
  const r = opt.update(g, opt.init(g), g);
  assert.equal(r.metrics["optim/lr"], 0.5);
  assert.equal(r.metrics["optim/grad_norm"], 5);
  assert.ok(Math.abs(r.metrics["optim/clip_scale"] - 1 / (5 + 1e-6)) < 1e-15);
});

Deno.test("adamw() defaults are b1 0.9, b2 0.999, eps 1e-8 and weight decay 0.01", () => {
  // Gradients of ~1e-8 make eps matter (m̂/(√v̂ + eps) ≈ ½ at the first step), gradients that
  // change from step to step make b2 matter, and lr·wd = 1e-3 against parameters of ~1 makes
  // the decay 1000× the tolerance.
  const h: TorchHyper = { lr: () => 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 };
  const opt = adamw({ lr: 0.1 });
  const params0 = randomTree(SHAPE, 7);
  const grads = Array.from({ length: 4 }, (_, i) => randomTree(SHAPE, 200 + i, -2e-8, 2e-8));
  const params = runSteps(opt, params0, grads);
  const err = treeRelativeError(params, torchAdamw(params0, grads, h));
  assert.ok(err <= TOL, `params relative error ${err} exceeds ${TOL}`);
});
