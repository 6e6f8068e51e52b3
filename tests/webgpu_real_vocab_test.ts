// Qwen3's real vocabulary (151,936) on WebGPU with a tiny hidden size: a LoRA training step over
// 2 × 1,024 tokens (LM head in blocks) against the float64 CPU gradient. Set-up, CPU reference and
// tolerances: tests/real_vocab_utils.ts (token log-probs and keepActivations at this vocabulary:
// tests/webgpu_real_vocab_logprobs_test.ts, a file of their own so that both run at once).
import assert from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { cpuBackward } from "../model/qwen3_cpu_backward.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import {
  B,
  config,
  embed,
  GRAD_TOL,
  H,
  headRow,
  ids,
  positions,
  smallCpu,
  T,
  weights,
} from "./real_vocab_utils.ts";

// An explicit block size for the training step (the default, 192 here, is exercised by
// tests/webgpu_real_vocab_logprobs_test.ts).
const BLOCK = 128;

Deno.test({
  name: "WebGpuQwen3 at the real vocabulary: a LoRA training step over 2 × 1,024 tokens (LM head " +
    "in blocks) equals the float64 CPU gradient",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, config, weights);
    const lora = createLora(
      loraConfig({ r: 4, targetModules: ["q_proj", "v_proj", "down_proj"] }),
      config,
      {
        seed: 2,
      },
    );
    // Random B (PEFT starts it at 0, which would make every A gradient 0).
    lora.modules.forEach((m, i) =>
      m.experts[0].b.set(randomArray(m.experts[0].b.length, 40 + i, -0.5, 0.5))
    );
    model.setAdapters(lora);
    try {
      // The loss Σ_p c_p · lp_p over the 48 positions.
      const coef = randomArray(positions.length, 9, 0.5, 1.5);
      const dLogprobs = new Float64Array(B * (T - 1));
      positions.forEach((p, k) => (dLogprobs[Math.floor(p / T) * (T - 1) + (p % T)] = coef[k]));
      const { grads } = await model.backward({ inputIds: ids }, {
        mode: "adapters",
        dLogprobs,
        headChunkTokens: BLOCK,
      });
      // CPU: d loss / d x at the scored rows, then the float64 backward from the final norm.
      const cpu = smallCpu(lora);
      const x = cpu.trace({ inputIds: ids }).hidden[config.numHiddenLayers];
      const dx = new Float64Array(B * T * H);
      positions.forEach((p, k) => {
        const [b, t] = [Math.floor(p / T), p % T];
        const target = ids[b][t + 1];
        const { meanE } = headRow(x, p * H, target);
        for (let j = 0; j < H; j++) dx[p * H + j] = coef[k] * (embed[target * H + j] - meanE[j]);
      });
      const want = cpuBackward(cpu, { inputIds: ids }, { mode: "adapters", dLastHidden: dx }).grads;
      let worst = 0;
      for (const [name, g] of want) {
        const got = grads.get(name)!;
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < g.length; i++) {
          diff = Math.max(diff, Math.abs(got[i] - g[i]));
          scale = Math.max(scale, Math.abs(g[i]));
        }
        assert.ok(scale > 0, `${name}: zero gradient`);
        assert.ok(
          diff / scale <= GRAD_TOL,
          `${name}: relative error ${diff / scale} > ${GRAD_TOL}`,
        );
        worst = Math.max(worst, diff / scale);
      }
      console.log(`worst LoRA gradient error ${worst.toExponential(2)} over ${want.size} tensors`);
    } finally {
      model.dispose();
    }
  },
});
