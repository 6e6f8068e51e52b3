// Qwen3's real vocabulary (151,936) on WebGPU with a tiny hidden size: token log-probs of
// 2 × 1,024 tokens in LM-head blocks against the float64 CPU, and keepActivations at this
// vocabulary. Set-up, CPU reference and tolerances: tests/real_vocab_utils.ts (the LoRA training
// step: tests/webgpu_real_vocab_test.ts, a file of its own so that both run at once).
import assert from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { lmHeadBlockRows } from "../model/lm_head_webgpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { keptActivationBytes, keptLogitsBytes } from "../model/qwen3_webgpu_backward.ts";
import { GpuContext } from "../gpu/context.ts";
import {
  B,
  config,
  H,
  headRow,
  ids,
  LP_TOL,
  positions,
  smallCpu,
  T,
  V,
  weights,
} from "./real_vocab_utils.ts";

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary (151,936): token log-probs of 2 × 1,024 tokens in " +
    "LM-head blocks equal the float64 CPU",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, config, weights);
    try {
      const auto = lmHeadBlockRows(ctx, V, B * T, { action: "test" });
      console.log(`default LM-head block: ${auto} of ${B * T} tokens`);
      assert.ok(auto < B * T, `the LM head ran in one block of ${auto} tokens: nothing is tested`);
      const got = await model.tokenLogprobs({ inputIds: ids });
      const x = smallCpu().trace({ inputIds: ids }).hidden[config.numHiddenLayers];
      let worst = 0;
      for (const p of positions) {
        const [b, t] = [Math.floor(p / T), p % T];
        const ref = headRow(x, p * H, ids[b][t + 1]);
        const i = b * (T - 1) + t;
        const e = Math.max(
          Math.abs(got.logprobs[i] - ref.logprob),
          Math.abs(got.entropy[i] - ref.entropy),
        );
        assert.ok(e <= LP_TOL, `position ${p}: error ${e} > ${LP_TOL}`);
        worst = Math.max(worst, e);
      }
      assert.ok(got.logprobs.every(Number.isFinite));
      console.log(`worst log-prob/entropy error ${worst.toExponential(2)}`);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary: keepActivations keeps every LM-head block's logits " +
    "(256 tokens, default blocks) and gives the recomputing step's gradients bit for bit",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext((await testContext())!.gpu);
    const model = new WebGpuQwen3(ctx, config, weights);
    const lora = createLora(loraConfig({ r: 4, targetModules: ["q_proj", "down_proj"] }), config, {
      seed: 3,
    });
    lora.modules.forEach((m, i) =>
      m.experts[0].b.set(randomArray(m.experts[0].b.length, 60 + i, -0.5, 0.5))
    );
    model.setAdapters(lora);
    try {
      const n = 256;
      const input = { inputIds: [ids[0].slice(0, n)] };
      const rows = lmHeadBlockRows(ctx, V, n, { action: "test" });
      assert.ok(rows < n, `the LM head ran in one block of ${rows} tokens: nothing is tested`);
      const dLogprobs = randomArray(n - 1, 61, 0.5, 1.5);
      const step = async (keepActivations: boolean) => {
        const out = await model.backward(input, { mode: "adapters", dLogprobs, keepActivations });
        return { ...out, bytes: ctx.allocatedBytes };
      };
      const kept = await step(true);
      const recomputed = await step(false);
      assert.deepEqual(kept.logprobs, recomputed.logprobs, "logprobs");
      for (const [name, g] of recomputed.grads) {
        assert.ok(g.some((v) => v !== 0), `${name}: zero gradient`);
        assert.deepEqual(
          new Uint32Array(kept.grads.get(name)!.buffer),
          new Uint32Array(g.buffer),
          name,
        );
      }
      // The last layer keeps its activations anyway: layer 0's and the head's blocks are extra.
      const extra = kept.bytes - recomputed.bytes;
      assert.equal(
        extra,
        keptActivationBytes(config, n, 1) + keptLogitsBytes(config, n, rows),
        "kept bytes",
      );
      console.log(
        `blocks of ${rows} of ${n} tokens: ${recomputed.grads.size} gradients equal bit for bit; ` +
          `${(extra / 1e6).toFixed(1)} MB kept (${
            (keptLogitsBytes(config, n, rows) / 1e6).toFixed(1)
          } MB of logits)`,
      );
    } finally {
      model.dispose();
    }
    assert.equal(ctx.allocatedBytes, 0, "bytes still allocated after dispose()");
  },
});
