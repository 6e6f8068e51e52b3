import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadModel } from "../../model/load_model.ts";
import { fixtureDir } from "../../internal/test_utils.ts";
import { assertClose, noGpu, testContext } from "../../gpu/test_utils.ts";
import { loadQwen3Weights } from "../../model/weights.ts";
import { readQwen3Config } from "../../model/config.ts";
import { modelParams } from "../params.ts";
import type { Qwen3Model } from "../../model/model.ts";
import { createTrainBackend, type TrainBackend } from "../backend.ts";
import { forwardPass } from "./forward_pass.ts";
import type { RlRow } from "./rl_batch.ts";

// The old path read the CPU model's float32-rounded hidden states; the new one keeps float64.
const F32_ROUNDING_TOL = 1e-7;
// Same kernels on both paths (the layer's output, copied out of the log-prob pass vs read from the
// full forward's hidden states): float32, summed in the same order, so equal up to 1e-6.
const SAME_KERNELS_TOL = 1e-6;

function rows(): RlRow[] {
  return [
    { promptIds: [5, 99, 143], tokens: [250, 7, 301, 64], anchor: 2 },
    { promptIds: [11, 200], tokens: [37, 12], anchor: 3 },
    { promptIds: [8, 9, 10, 11], tokens: [12], anchor: -1 },
  ].map((r, i) => ({
    ...r,
    oldLogprobs: new Float64Array(r.tokens.length),
    advantage: 0,
    policy: true,
    group: i,
    correct: true,
  }));
}

/** The anchor states the old path read: the model's full forward, HF `hidden_states[l + 1]`. */
async function oldAnchors(model: Qwen3Model, list: RlRow[], layer: number) {
  return await Promise.all(list.map(async (r) => {
    if (r.anchor < 0) return null;
    const ids = [...r.promptIds, ...r.tokens];
    const out = await model.forward({ inputIds: [ids], outputHiddenStates: true });
    const H = model.config.hiddenSize;
    return Float64Array.from(out.hiddenStates![layer + 1].slice(r.anchor * H, (r.anchor + 1) * H));
  }));
}

Deno.test("forwardPass() at a decoder layer equals the full forward's hidden state (CPU, 1 and 2 workers)", async () => {
  const model = await loadModel(fixtureDir(), { backend: "cpu", warn: false });
  const list = rows();
  const want = await oldAnchors(model, list, 0);
  for (const workers of [1, 2]) {
    const backend = createTrainBackend(model, { mode: "full", workers });
    try {
      const got = await forwardPass(backend, list, {
        padId: 0,
        microBatchSize: 2,
        layer: 0,
        logprobs: true,
      });
      strictEqual(got.hidden[2], null);
      for (const i of [0, 1]) {
        assertClose(got.hidden[i]!, want[i]!, F32_ROUNDING_TOL, `${workers} workers, row ${i}`);
      }
      // The log-probs come from the same pass and equal the final-layer pass's.
      const final = await forwardPass(backend, list, {
        padId: 0,
        microBatchSize: 2,
        layer: "final",
        logprobs: true,
      });
      deepStrictEqual(got.logprobs, final.logprobs);
      ok(got.hidden[0]!.some((v, k) => v !== final.hidden[0]![k]));
    } finally {
      backend.dispose();
    }
  }
});

Deno.test({
  name: "forwardPass() at a decoder layer on WebGPU equals the old full-forward path",
  ignore: noGpu,
  async fn() {
    const gpu = (await testContext())!;
    const model = await loadModel(fixtureDir(), { backend: "webgpu", gpu, warn: false });
    const config = await readQwen3Config(fixtureDir());
    const backend = createTrainBackend(model, {
      mode: "full",
      params: modelParams(await loadQwen3Weights(fixtureDir(), config), config),
    });
    try {
      const list = rows();
      for (const layer of [0]) {
        const want = await oldAnchors(model, list, layer);
        const got = await forwardPass(backend, list, { padId: 0, microBatchSize: 2, layer });
        strictEqual(got.hidden[2], null);
        for (const i of [0, 1]) {
          assertClose(got.hidden[i]!, want[i]!, SAME_KERNELS_TOL, `layer ${layer} row ${i}`);
        }
      }
    } finally {
      backend.dispose();
      model.dispose();
    }
  },
});

/** `forward`'s hiddenRows against every row's state, on one backend. */
async function checkHiddenRows(backend: TrainBackend, hiddenLayer: number | undefined) {
  const H = backend.model.config.hiddenSize;
  const input = {
    inputIds: [[5, 99, 143, 250, 7], [11, 200, 37, 0, 0]],
    attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
  };
  const full = await backend.forward(input, { hiddenLayer });
  const rows = [7, 0, 4];
  const some = await backend.forward(input, { hiddenLayer, hiddenRows: rows });
  strictEqual(some.lastHidden!.length, rows.length * H);
  rows.forEach((r, i) =>
    deepStrictEqual(
      some.lastHidden!.slice(i * H, (i + 1) * H),
      full.lastHidden!.slice(r * H, (r + 1) * H),
    )
  );
  deepStrictEqual(some.logprobs, full.logprobs);
  strictEqual((await backend.forward(input, { hiddenRows: [] })).lastHidden!.length, 0);
  await rejects(backend.forward(input, { hiddenRows: [10] }), /"hiddenRows".*\[0, 10\)/);
}

Deno.test("TrainBackend.forward() with hiddenRows returns exactly those rows (CPU)", async () => {
  const model = await loadModel(fixtureDir(), { backend: "cpu", warn: false });
  const backend = createTrainBackend(model, { mode: "full" });
  for (const layer of [undefined, 0]) await checkHiddenRows(backend, layer);
});

Deno.test({
  name: "TrainBackend.forward() with hiddenRows reads back exactly those rows (WebGPU)",
  ignore: noGpu,
  async fn() {
    const gpu = (await testContext())!;
    const model = await loadModel(fixtureDir(), { backend: "webgpu", gpu, warn: false });
    const config = await readQwen3Config(fixtureDir());
    const backend = createTrainBackend(model, {
      mode: "full",
      params: modelParams(await loadQwen3Weights(fixtureDir(), config), config),
    });
    try {
      for (const layer of [undefined, 0]) await checkHiddenRows(backend, layer);
    } finally {
      backend.dispose();
      model.dispose();
    }
  },
});
