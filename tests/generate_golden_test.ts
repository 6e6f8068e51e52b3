// Golden test of generation against HuggingFace transformers run in float64: greedy decoding of
// the fixture prompt with the KV cache (`generate.prompt` [1,6] → `generate.output` [1,18], 12 new
// tokens; see ../shared/fixtures/README.md) must give exactly the same ids on both backends. HF ran
// with `min_new_tokens=12` (the config's EOS banned for all 12 steps), mirrored by `minNewTokens`.
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { fixtureDir } from "../internal/test_utils.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { generate } from "../model/generate.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import { openSafetensors, readTensorI32 } from "../internal/safetensors.ts";

const dir = fixtureDir();
const ref = await openSafetensors(`${dir}/reference.safetensors`);
const prompt = Array.from(readTensorI32(ref, "generate.prompt"));
const output = Array.from(readTensorI32(ref, "generate.output"));
const newTokens = output.length - prompt.length;

async function check(model: Qwen3Model): Promise<void> {
  // HF's generate banned the config's EOS for every step (min_new_tokens = max_new_tokens), so
  // all 12 tokens are generated and the reason is "length".
  const { sequences, stats } = await generate(model, {
    prompts: [prompt],
    maxNewTokens: newTokens,
    minNewTokens: newTokens,
    temperature: 0,
  });
  const [seq] = sequences;
  console.log(`${model.backend}: ${seq.tokens.join(" ")} (${stats.readbacks} readbacks)`);
  deepStrictEqual([...prompt, ...seq.tokens], output);
  strictEqual(seq.stopReason, "length");
}

Deno.test("generate() greedy on the CPU backend equals HF generate on the fixture", async () => {
  await check(await loadModel(dir, { backend: "cpu", warn: false }));
});

Deno.test({
  name: "generate() greedy on the WebGPU backend equals HF generate on the fixture",
  ignore: noGpu,
  async fn() {
    const model = await loadModel(dir, {
      backend: "webgpu",
      gpu: (await testContext())!,
      warn: false,
    });
    try {
      await check(model);
    } finally {
      model.dispose();
    }
  },
});
