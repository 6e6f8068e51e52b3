// Generation on the path a hardware adapter takes by default: encodeDecoderLayer fuses the decode
// RMSNorm and SwiGLU into the next matvec (`fusePrologues`, on unless the adapter is a software
// fallback), and so does the LM head with the final norm; the software adapter of CI never takes
// that path by itself, nor its submission of each decode step as soon as it is recorded. Two
// contexts over the same device, one seen as a hardware adapter and one as a fallback, run the
// same sampled generation with LoRA adapters and rows that finish (and are dropped) at different
// steps: tokens, stop reasons and model log-probs are identical (the prologues reproduce the
// separate kernels' sums bit for bit: kernels/matvec/matvec_prologue_test.ts). The hardware
// adapter's default also merges the adapters into the weights (`mergeAdapters`): with that off
// the two runs are identical; with it on (the default path), the tokens are the same and the
// model log-probs within 1e-5 (the merged weights regroup each projection's sum).
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { resolveGenerateOptions } from "./generate.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

Deno.test({
  name: "generateWebGpu() on a hardware adapter's fused decode path equals the unfused one",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    const models: WebGpuQwen3[] = [];
    try {
      const results = [];
      for (const [isFallbackAdapter, mergeAdapters] of [[false, false], [true], [false]]) {
        const gpu = new GpuContext({ ...base.gpu, isFallbackAdapter });
        const model = await loadModel(fixtureDir(), {
          backend: "webgpu",
          gpu,
          warn: false,
        }) as WebGpuQwen3;
        models.push(model);
        model.setAdapters(createLora(
          loraConfig({ r: 8, loraAlpha: 16, targetModules: "all-linear", initLoraWeights: false }),
          model.config,
          { seed: 5 },
        ));
        const prompts = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64], [42], [8, 8, 9]];
        const options = resolveGenerateOptions(model.config, {
          prompts: [...prompts, ...prompts],
          maxNewTokens: 16,
          temperature: 1.2,
          seed: 3,
          eosTokenIds: [353],
          stopTokenIds: Array.from({ length: 40 }, (_, i) => 10 + i * 9),
          readbackEvery: 4,
          mergeAdapters,
        });
        results.push(await generateWebGpu(model, options));
      }
      const [fused, plain, merged] = results;
      ok(plain.stats.rowSteps < 8 * plain.stats.steps, "no row was dropped");
      // The hardware path submits each decode step as it is recorded (readbacks stay one per
      // chunk of 4 steps), and its prefill after each layer (submitEveryLayers, default 1 there);
      // the software one submits once per chunk.
      strictEqual(models[0].submitEveryLayers, 1);
      strictEqual(fused.stats.readbacks, plain.stats.readbacks);
      strictEqual(fused.stats.submits, fused.stats.steps + models[0].config.numHiddenLayers);
      strictEqual(plain.stats.submits, plain.stats.readbacks);
      ok(fused.stats.submits > plain.stats.submits);
      deepStrictEqual(fused.sequences.map((s) => s.tokens), plain.sequences.map((s) => s.tokens));
      deepStrictEqual(
        fused.sequences.map((s) => s.stopReason),
        plain.sequences.map((s) => s.stopReason),
      );
      deepStrictEqual(
        fused.sequences.map((s) => [...s.modelLogprobs]),
        plain.sequences.map((s) => [...s.modelLogprobs]),
      );
      deepStrictEqual(merged.sequences.map((s) => s.tokens), plain.sequences.map((s) => s.tokens));
      let err = 0;
      merged.sequences.forEach((s, i) =>
        s.modelLogprobs.forEach((v, j) =>
          err = Math.max(err, Math.abs(v - plain.sequences[i].modelLogprobs[j]))
        )
      );
      ok(err <= 1e-5, `merged fused decode vs unfused unmerged: model log-probs differ by ${err}`);
      console.log(
        `fused vs unfused decode: ${fused.stats.rowSteps} row-steps over ${fused.stats.steps} ` +
          `steps, lengths ${fused.sequences.map((s) => s.length)}, identical; with merged ` +
          `adapters, log-probs within ${err.toExponential(2)}`,
      );
    } finally {
      for (const model of models) {
        releaseGenerateWorkspace(model);
        model.dispose();
      }
    }
  },
});
