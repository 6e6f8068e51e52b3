// Generation long enough for the decode attention to split its keys (attention_split.wgsl): the
// cache grows past 128 slots, where encodeAttention's "auto" takes the split-KV kernel for the
// fixture's few (row, head) pairs; greedy tokens and model log-probs equal recomputation over
// each whole prefix (the forward's flash/rows kernels), within generate_webgpu_test.ts's bound.
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { pickAttentionKernel } from "../kernels/attention/attention.ts";
import { resolveGenerateOptions } from "./generate.ts";
import { generateCpu } from "./generate_cpu.ts";
import { generateWebGpu } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

// f32 kernels over the same weights, summed in different orders (as generate_webgpu_test.ts).
const LOGPROB_TOL = 1e-4;

Deno.test({
  name: "generateWebGpu() with split-KV decode attention equals recomputation at every step",
  ignore: noGpu,
  async fn() {
    const gpu = (await testContext())!;
    const model = await loadModel(fixtureDir(), {
      backend: "webgpu",
      gpu,
      warn: false,
    }) as WebGpuQwen3;
    try {
      const c = model.config;
      const heads = { hq: c.numAttentionHeads, hkv: c.numKeyValueHeads, d: c.headDim };
      // Prompts of 9 and 3 tokens, 130 new ones: kvLen reaches 192 (2 chunks of 128).
      strictEqual(pickAttentionKernel({ b: 2, tq: 1, kvLen: 192, ...heads }), "split");
      strictEqual(pickAttentionKernel({ b: 2, tq: 1, kvLen: 128, ...heads }), "rows");
      const options = resolveGenerateOptions(c, {
        prompts: [[5, 99, 143, 250, 7, 301, 64, 12, 180], [11, 200, 37]],
        maxNewTokens: 130,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 32,
      });
      const cached = await generateWebGpu(model, options);
      const full = await generateCpu(model, options);
      deepStrictEqual(
        cached.sequences.map((s) => s.tokens),
        full.sequences.map((s) => s.tokens),
      );
      let worst = 0;
      for (let r = 0; r < 2; r++) {
        strictEqual(cached.sequences[r].length, 130);
        const err = assertClose(
          cached.sequences[r].modelLogprobs,
          full.sequences[r].modelLogprobs,
          LOGPROB_TOL,
          `row ${r} model log-probs`,
        );
        worst = Math.max(worst, err);
      }
      console.log(
        `split-KV generation: tokens equal; model log-probs rel err ${worst.toExponential(2)}`,
      );
    } finally {
      model.dispose();
    }
  },
});
