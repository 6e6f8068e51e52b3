// Generation long enough for the decode attention to split its keys (attention_split.wgsl): the
// cache grows past 128 slots, where encodeAttention's "auto" takes the split-KV kernel for the
// fixture's few (row, head) pairs; greedy tokens and model log-probs equal recomputation over
// each whole prefix (the forward's flash/rows kernels), within generate_webgpu_test.ts's bound.
// Long prompts (124 and 118 tokens) bring the cache to the boundary in the prefill, so a few
// decode steps run the "rows" kernel at kvLen 128 and the rest cross into "split" at 192: the
// recomputation reference (a whole-prefix forward per step) then costs 16 steps, not 130.
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
      // Prompts of 124 and 118 tokens (ids spread over the vocabulary), 16 new ones: decode
      // step s attends over kvLen = ceil((124 + s) / 64) · 64 slots (generate_webgpu.ts), 128 for
      // steps 1–4 and 192 (2 chunks of 128) for steps 5–15, across readback chunks of 4 steps (the switch falls inside one).
      strictEqual(pickAttentionKernel({ b: 2, tq: 1, kvLen: 192, ...heads }), "split");
      strictEqual(pickAttentionKernel({ b: 2, tq: 1, kvLen: 128, ...heads }), "rows");
      const prompt = (n: number, seed: number) =>
        Array.from({ length: n }, (_, i) => (seed + i * 97) % c.vocabSize);
      const prompts = [prompt(124, 5), prompt(118, 11)];
      const maxNewTokens = 16;
      const P = Math.max(...prompts.map((p) => p.length));
      const picks = Array.from(
        { length: maxNewTokens - 1 },
        (_, s) =>
          pickAttentionKernel({ b: 2, tq: 1, kvLen: Math.ceil((P + s + 1) / 64) * 64, ...heads }),
      );
      // The steps before and after the boundary: at least as many split steps as the 130-token run.
      strictEqual(picks.filter((k) => k === "rows").length, 4);
      strictEqual(picks.filter((k) => k === "split").length, 11);
      const options = resolveGenerateOptions(c, {
        prompts,
        maxNewTokens,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 4,
      });
      const cached = await generateWebGpu(model, options);
      const full = await generateCpu(model, options);
      deepStrictEqual(
        cached.sequences.map((s) => s.tokens),
        full.sequences.map((s) => s.tokens),
      );
      let worst = 0;
      for (let r = 0; r < 2; r++) {
        strictEqual(cached.sequences[r].length, maxNewTokens);
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
