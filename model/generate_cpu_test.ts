import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { sampleRef } from "../kernels/sample/sample_ref.ts";
import { fixtureDir } from "./_test_utils.ts";
import { resolveGenerateOptions } from "./generate.ts";
import { generateCpu } from "./generate_cpu.ts";
import { loadModel } from "./load_model.ts";

const model = await loadModel(fixtureDir(), { backend: "cpu", warn: false });

Deno.test("generateCpu() samples each step from the full-prefix logits with the reference sampler", async () => {
  const prompts = [[3, 50, 7], [9]];
  const options = resolveGenerateOptions(model.config, {
    prompts,
    maxNewTokens: 5,
    temperature: 0.8,
    topP: 0.9,
    seed: 11,
    eosTokenIds: [],
  });
  const { sequences, stats } = await generateCpu(model, options);
  // Replay each sequence alone, one forward per step, with the same RNG coordinates.
  for (let b = 0; b < prompts.length; b++) {
    const ids = [...prompts[b]];
    for (let step = 0; step < 5; step++) {
      const { logits } = await model.forward({ inputIds: [ids] });
      const v = model.config.vocabSize;
      const row = logits.subarray((ids.length - 1) * v, ids.length * v);
      const want = sampleRef(row, { ...options, sequence: b, step });
      strictEqual(sequences[b].tokens[step], want.token, `sequence ${b} step ${step}`);
      ok(Math.abs(sequences[b].logprobs[step] - want.logprob) < 1e-6);
      ok(Math.abs(sequences[b].modelLogprobs[step] - want.modelLogprob) < 1e-6);
      ids.push(want.token);
    }
    strictEqual(sequences[b].stopReason, "length");
  }
  deepStrictEqual([stats.steps, stats.rowSteps, stats.promptTokens, stats.generatedTokens], [
    5,
    10,
    4,
    10,
  ]);
});
