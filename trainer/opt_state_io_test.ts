import { deepStrictEqual, notStrictEqual, strictEqual, throws } from "node:assert/strict";
import { flattenOptState, restoreOptState } from "./opt_state_io.ts";
import { adamw, applyUpdates, multiSteps, warmupCosineDecaySchedule } from "./optim/mod.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";

function trainedState() {
  const lr = warmupCosineDecaySchedule({ peakValue: 0.01, warmupSteps: 2, decaySteps: 10 });
  const opt = multiSteps(adamw({ lr, maxGradNorm: 1 }), { everySteps: 2, weighting: "token" });
  let params = { "a.weight": new Float32Array([0.1, -0.2, 0.3]), "b": new Float32Array([1]) };
  let state = opt.init(params);
  for (let i = 0; i < 5; i++) {
    const grads = {
      "a.weight": new Float32Array([Math.sin(i), Math.cos(i), 0.1 * i]),
      "b": new Float32Array([1 / (i + 1)]),
    };
    const r = opt.update(grads, state, params, { weight: 10 + i / 3 });
    params = applyUpdates(params, r.updates);
    state = r.state;
  }
  return { opt, params, state };
}

Deno.test("restoreOptState() round-trips a MultiSteps(AdamW) state through a checkpoint bit-exactly", async () => {
  const { opt, params, state } = trainedState();
  // Mid-accumulation: a non-integer accumulated weight and non-zero accumulators.
  strictEqual(state.miniStep, 1);
  notStrictEqual(state.accWeight % 1, 0);
  const runDir = await Deno.makeTempDir();
  try {
    const dir = await saveCheckpoint(runDir, {
      step: 5,
      tensors: params,
      optimizer: flattenOptState(state),
      meta: { config: {}, dataPosition: 0, rng: null, metrics: {} },
    });
    const loaded = await loadCheckpoint(dir);
    const restored = restoreOptState(opt.init(params), loaded.optimizer, { source: dir });
    deepStrictEqual(restored, state);
    // And it keeps training identically.
    const grads = { "a.weight": new Float32Array([0.5, 0.5, 0.5]), "b": new Float32Array([2]) };
    deepStrictEqual(
      opt.update(grads, restored, params, { weight: 3 }),
      opt.update(grads, state, params, { weight: 3 }),
    );
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("restoreOptState() refuses tensors of another optimizer", () => {
  const { opt, params, state } = trainedState();
  const tensors = Object.fromEntries(
    Object.entries(flattenOptState(state)).map(([k, t]) => [k, { data: t.data }]),
  );
  const other = multiSteps(adamw({ lr: 0.01 }), { everySteps: 2, weighting: "token" });
  throws(() => restoreOptState(other.init(params), tensors, { source: "ckpt" }), {
    name: "TypeError",
    message: /Cannot restore optimizer state from "ckpt": tensor ".*" (is missing|matches nothing)/,
  });
  const short = { ...tensors, "inner/1/mu/b": { data: new Float32Array(2) } };
  throws(() => restoreOptState(opt.init(params), short), {
    name: "RangeError",
    message: /tensor "inner\/1\/mu\/b" must have 1 values like the parameters: current length is 2/,
  });
});
