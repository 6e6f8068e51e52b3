import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { sampleRef } from "../kernels/sample/sample_ref.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { resolveGenerateOptions } from "./generate.ts";
import { generateCpu, generateCpuCached, generateRecompute } from "./generate_cpu.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
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

Deno.test("generateCpu() bans the EOS ids below minNewTokens: greedy takes the runner-up", async () => {
  const prompts = [[11, 200, 37], [9], [3, 50, 7]];
  const run = (o: object) =>
    generateCpu(
      model,
      resolveGenerateOptions(model.config, { prompts, maxNewTokens: 8, temperature: 0, ...o }),
    );
  // A token greedy picks first at step k (k = 2 from [11, 200, 37] on qwen3-tiny; on another
  // fixture the first such step ≥ 1, else step 0) becomes the EOS.
  const free = await run({ eosTokenIds: [] });
  const firstAt = (b: number) =>
    free.sequences[b].tokens.findIndex((t, k) =>
      k >= 1 && !free.sequences[b].tokens.slice(0, k).includes(t)
    );
  const b = Math.max(0, prompts.findIndex((_, q) => firstAt(q) >= 1));
  const k = Math.max(0, firstAt(b));
  const free0 = free.sequences[b].tokens;
  const eos = free0[k];
  const stopped = await run({ eosTokenIds: [eos] });
  deepStrictEqual(stopped.sequences[b].tokens, free0.slice(0, k + 1));
  strictEqual(stopped.sequences[b].stopReason, "eos");
  const min = await run({ eosTokenIds: [eos], minNewTokens: 6 });
  for (const s of min.sequences) {
    ok(s.length >= 6, `stopped at ${s.length} < minNewTokens`);
    ok(!s.tokens.slice(0, 6).includes(eos), "emitted the EOS before minNewTokens");
  }
  const s0 = min.sequences[b];
  deepStrictEqual(s0.tokens.slice(0, k), free0.slice(0, k));
  // The runner-up, reported with its unmasked model log-prob (below the banned argmax's).
  ok(s0.tokens[k] !== eos && s0.modelLogprobs[k] <= free.sequences[b].modelLogprobs[k]);
  const prefix = [...prompts[b], ...s0.tokens.slice(0, k)];
  const { logits } = await model.forward({ inputIds: [prefix] });
  const v = model.config.vocabSize;
  const row = logits.subarray((prefix.length - 1) * v, prefix.length * v);
  const coords = { temperature: 0, seed: 0, sequence: b, step: k };
  const want = sampleRef(row, coords);
  strictEqual(want.token, eos);
  const banned = sampleRef(row, { ...coords, bannedTokenIds: [eos] });
  strictEqual(s0.tokens[k], banned.token);
  ok(Math.abs(s0.modelLogprobs[k] - banned.modelLogprob) < 1e-6);
  ok(Math.abs(s0.modelLogprobs[k] - (row[banned.token] - row[eos] + want.modelLogprob)) < 1e-6);
});

Deno.test("generateCpuCached() equals generateRecompute() exactly, greedy and sampled, with rows finishing early", async () => {
  if (!(model instanceof CpuQwen3)) throw new Error("expected a CPU model");
  const prompts = [[3, 50, 7], [9], [11, 200, 37, 5, 8], [1, 2]];
  const free = await generateRecompute(
    model,
    resolveGenerateOptions(model.config, { prompts, maxNewTokens: 6, temperature: 0 }),
  );
  // An EOS that one row emits early, so later steps run on a subset of the rows.
  const eos = free.sequences[1].tokens[2];
  for (const sampling of [{ temperature: 0 }, { temperature: 0.8, topP: 0.9, seed: 11 }]) {
    for (const eosTokenIds of [[], [eos]]) {
      const options = resolveGenerateOptions(model.config, {
        prompts,
        maxNewTokens: 6,
        eosTokenIds,
        ...sampling,
      });
      const a = await generateCpuCached(model, options);
      const b = await generateRecompute(model, options);
      const what = `${JSON.stringify(sampling)} eos ${JSON.stringify(eosTokenIds)}`;
      deepStrictEqual(a.sequences, b.sequences, what);
      deepStrictEqual(
        { ...a.stats, seconds: 0 },
        { ...b.stats, seconds: 0 },
        `${what}: stats`,
      );
    }
  }
  // generateCpu takes the KV-cache path on a CPU model.
  const options = resolveGenerateOptions(model.config, {
    prompts,
    maxNewTokens: 4,
    temperature: 1,
    seed: 3,
  });
  deepStrictEqual(
    (await generateCpu(model, options)).sequences,
    (await generateRecompute(model, options)).sequences,
  );
});
