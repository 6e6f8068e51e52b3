// The RL anchor pass at an intermediate layer (`hidden_align` `layer: 0`) at Qwen3's real
// vocabulary (151,936) with a tiny hidden size, under a 64 MiB binding limit: one binding holds
// the logits of only 110 tokens, and the pass runs over 2 rows of 60 (120 tokens). It used to run
// `model.forward({ outputHiddenStates: true })`, which allocates the whole `[tokens, vocab]`
// logits (and every layer's states) and fails here; it now reads the layer's output from the
// log-prob pass (LM head in blocks), so it costs what the final-layer pass costs. Checked against
// the float64 CPU backend.
//
// Tolerance: anchor states 1e-4 relative (float32 vs float64 through one decoder layer of a
// hidden-8 model; STATE_TOL of model/hilo_webgpu_test.ts), log-probs 1e-4 absolute (a float32
// log-sum-exp over 151,936 terms, as tests/webgpu_real_vocab_test.ts).
import assert from "node:assert/strict";
import { GpuContext } from "../gpu/context.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import type { Qwen3Config } from "../model/config.ts";
import { initQwen3Weights } from "../model/init.ts";
import { config as realVocabConfig, V } from "./real_vocab_utils.ts";
import { modelParams } from "../trainer/params.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import type { RlRow } from "../trainer/rl/rl_batch.ts";

const STATE_TOL = 1e-4;
const LP_TOL = 1e-4;
// 110 tokens of logits per binding; the LM head runs in blocks of 64 (the offset alignment).
const BINDING = 64 * 1024 * 1024;

// The real-vocabulary model of tests/webgpu_real_vocab_test.ts, at 128 positions.
const config: Qwen3Config = { ...realVocabConfig, maxPositionEmbeddings: 128 };
const weights = initQwen3Weights(config, { seed: 11, std: 0.6 });

/** Two rows of 60 and 50 tokens (padded to 60), anchors in the prompt and in the response. */
function rows(): RlRow[] {
  const ids = (n: number, k: number) =>
    Array.from({ length: n }, (_, t) => (k * 7919 + t * 104729 + t * t) % V);
  return [
    { promptIds: ids(24, 1), tokens: ids(36, 2), anchor: 23, group: 0 },
    { promptIds: ids(20, 3), tokens: ids(30, 4), anchor: 41, group: 0 },
  ].map((r) => ({
    ...r,
    oldLogprobs: new Float64Array(r.tokens.length),
    advantage: 0,
    policy: true,
    correct: true,
  }));
}

Deno.test({
  name: "forwardPass() at layer 0 at the real vocabulary reads the anchors without the " +
    "[tokens, vocab] logits, and equals the float64 CPU backend",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext({ ...(await testContext())!.gpu, maxBindingSize: BINDING });
    const model = new WebGpuQwen3(ctx, config, weights);
    const gpu = createTrainBackend(model, {
      mode: "full",
      params: modelParams(weights, config),
    });
    const cpu = createTrainBackend(new CpuQwen3(config, weights), { mode: "full" });
    try {
      const list = rows();
      const tokens = list.length *
        Math.max(...list.map((r) => r.promptIds.length + r.tokens.length));
      const perBinding = Math.floor(BINDING / (V * 4));
      assert.ok(tokens > perBinding, `${tokens} tokens fit one logits binding (${perBinding})`);
      // What the old path did: the full forward cannot allocate the logits here.
      await assert.rejects(
        () =>
          model.forward({
            inputIds: [[1, 2, ...new Array(tokens - 2).fill(3)]],
            outputHiddenStates: true,
          }),
        /activation "logits"/,
      );
      const options = { padId: 0, microBatchSize: 2, layer: 0, logprobs: true } as const;
      const got = await forwardPass(gpu, list, options);
      const want = await forwardPass(cpu, list, options);
      list.forEach((_, i) => {
        const err = assertClose(got.hidden[i]!, want.hidden[i]!, STATE_TOL, `row ${i} anchor`);
        console.log(`row ${i}: anchor state relative error ${err.toExponential(2)}`);
        const lp = got.logprobs![i];
        const ref = want.logprobs![i];
        assert.strictEqual(lp.length, ref.length);
        for (let t = 0; t < lp.length; t++) {
          assert.ok(
            Math.abs(lp[t] - ref[t]) <= LP_TOL,
            `row ${i} log-prob ${t}: ${lp[t]} vs ${ref[t]}`,
          );
        }
      });
      // Layer 0 is not the final-norm state.
      const final = await forwardPass(cpu, list, { ...options, layer: "final" });
      assert.ok(relativeDiff(final.hidden[0]!, want.hidden[0]!) > 0.1);
    } finally {
      gpu.dispose();
      cpu.dispose();
      model.dispose();
    }
  },
});

function relativeDiff(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
