import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { createTrainBackend } from "./backend.ts";
import { sftLoss } from "./sft_loss.ts";
import { adamw, globalNorm, multiSteps } from "./optim/mod.ts";
import { type TrainMicroBatch, trainStep } from "./train_step.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { Qwen3Config } from "../model/config.ts";
import { TINY_CONFIG } from "./_test_utils.ts";

const CONFIG: Qwen3Config = TINY_CONFIG;

const MICRO: TrainMicroBatch[] = [
  { ids: [[1, 5, 7, 2]], mask: [0, 1, 1] },
  { ids: [[3, 4, 9, 8, 6]], mask: [0, 0, 1, 1] },
].map(({ ids, mask }) => ({
  input: { inputIds: ids },
  loss: ({ logprobs }) => sftLoss({ logprobs, lossMask: mask }),
  weight: mask.reduce((a, b) => a + b, 0),
  options: { linear: true },
}));

Deno.test("trainStep() equals lossAndGrads and optimizer.update by hand, micro-batch by micro-batch", async () => {
  const backend = createTrainBackend(
    new CpuQwen3(CONFIG, initQwen3Weights(CONFIG, { seed: 1, std: 0.2 })),
    { mode: "full" },
  );
  const optimizer = multiSteps(adamw({ lr: 1e-2 }), { everySteps: 2, weighting: "token" });
  const state = optimizer.init(backend.params.tree);
  const r = await trainStep(backend, { optimizer, state, microBatches: MICRO });
  let s = state;
  let updates = {};
  const values: number[] = [];
  for (const m of MICRO) {
    const { loss, grads } = await backend.lossAndGrads(m.input, m.loss, m.options);
    values.push(loss.value);
    const u = optimizer.update(grads, s, backend.params.tree, { weight: m.weight });
    s = u.state;
    updates = u.updates;
  }
  deepStrictEqual(r.losses.map((l) => l.value), values);
  deepStrictEqual(r.state, s);
  deepStrictEqual(r.updates, updates);
  strictEqual(r.updateNorm, globalNorm(updates));
  strictEqual(r.state.gradientStep, 1);
  await rejects(trainStep(backend, { optimizer, state, microBatches: [] }), {
    name: "RangeError",
    message: /"microBatches" must hold at least one micro-batch/,
  });
});
