// RL generation split into calls whose KV cache fits one storage binding (review finding 1): the
// held-out evaluation and the rollouts put `prompts × samples` rows through `generateGroups`,
// which cuts them into calls of whole prompts and gives each call its first row's index as
// `firstSequence`, so every prompt's samples are those of one unsplit call.
//
// On the fixture (2 KV heads of 16, vocab 384), prompts under 58 tokens with 6 new tokens get a
// cache of 64 slots: 64 · 32 floats = 8 KiB per row and layer. Under a 64 KiB binding a call
// holds 8 rows (2 prompts of 3 samples); the reference runs in one call on the test context's
// own binding. Sampled tokens must be identical (the same kernels on the same rows; a call's
// batch size does not change a row's arithmetic here: caches of ≤ 128 slots keep the "rows"
// attention kernel).
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { GpuContext } from "../gpu/context.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import type { KvDtype } from "../model/kv_cache.ts";
import { loadModel } from "../model/load_model.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";
import { createTrainBackend, type TrainBackend } from "../trainer/backend.ts";
import { modelParams } from "../trainer/params.ts";
import { evaluateRlPrompts } from "../trainer/rl/eval_rl.ts";
import { generateGroups } from "../trainer/rl/generate_groups.ts";
import { sampleGroups } from "../trainer/rl/rollout.ts";

const BINDING = 64 * 1024;
const SAMPLES = 3;
const MAX_NEW = 6;

const files = arithmeticTokenizerFiles();
const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);

/** Five prompts of 4 to 12 tokens. */
const PROMPTS = Array.from(
  { length: 5 },
  (_, i) => Array.from({ length: 4 + 2 * i }, (_, t) => (i * 37 + t * 11 + 3) % 384),
);

async function gpuBackend(maxBindingSize?: number, kvDtype?: KvDtype): Promise<{
  backend: TrainBackend;
  model: WebGpuQwen3;
}> {
  const shared = (await testContext())!;
  const ctx = maxBindingSize === undefined
    ? shared
    : new GpuContext({ ...shared.gpu, maxBindingSize });
  const dir = fixtureDir();
  const config = await readQwen3Config(dir);
  const weights = await loadQwen3Weights(dir, config);
  const model = new WebGpuQwen3(ctx, config, weights, { kvDtype });
  const backend = createTrainBackend(model, { mode: "full", params: modelParams(weights, config) });
  return { backend, model };
}

const tokensOf = (seqs: { tokens: number[] }[]) => seqs.map((s) => s.tokens);

Deno.test({
  name: "RL generation under a small binding splits into calls of whole prompts and samples " +
    "exactly what one unsplit call samples (eval, rollouts, a longer cache after more rows)",
  ignore: noGpu,
  async fn() {
    const small = await gpuBackend(BINDING);
    const big = await gpuBackend();
    try {
      const kvd = small.model.config.numKeyValueHeads * small.model.config.headDim;
      const rowBytes = 64 * kvd * 4;
      const rowsPerCall = Math.floor(BINDING / rowBytes);
      ok(
        rowsPerCall < PROMPTS.length * SAMPLES && rowsPerCall >= SAMPLES,
        `${rowsPerCall} rows per call: nothing to split`,
      );
      const options = {
        maxNewTokens: MAX_NEW,
        temperature: 1,
        seed: 42,
        rowsKey: "rl.eval.samples",
      };
      // Unsplit: all 15 rows in one call on the large binding.
      const want = await generateGroups(big.backend, PROMPTS, SAMPLES, options);
      let calls = 0;
      const counted: TrainBackend = {
        ...small.backend,
        generate: (o) => {
          calls++;
          return small.backend.generate(o);
        },
      };
      const got = await generateGroups(counted, PROMPTS, SAMPLES, options);
      strictEqual(calls, Math.ceil(PROMPTS.length / Math.floor(rowsPerCall / SAMPLES)));
      deepStrictEqual(tokensOf(got), tokensOf(want));
      // The samples are not all alike (a wrong stream offset would show).
      ok(new Set(want.map((s) => s.tokens.join())).size > PROMPTS.length, "too few distinct rows");
      // A forced cap of one prompt per call: still the same samples.
      const one = await generateGroups(small.backend, PROMPTS, SAMPLES, {
        ...options,
        maxPromptsPerCall: 1,
      });
      deepStrictEqual(tokensOf(one), tokensOf(want));

      // The held-out evaluation: same metrics and per-prompt accuracies, split or not.
      const evalSet = PROMPTS.map((ids, i) => ({ ids, gold: String(i) }));
      const evalOptions = {
        tokenizer,
        samples: SAMPLES,
        temperature: 1,
        maxNewTokens: MAX_NEW,
        seed: 7,
        budgetMs: 0,
      };
      // The unsplit evaluation once (one call on the large binding), against both split ones.
      const unsplitEval = await evaluateRlPrompts(big.backend, evalSet, evalOptions);
      deepStrictEqual(await evaluateRlPrompts(small.backend, evalSet, evalOptions), unsplitEval);
      deepStrictEqual(
        await evaluateRlPrompts(small.backend, evalSet, { ...evalOptions, batchPrompts: 2 }),
        unsplitEval,
      );

      // Rollouts: the same groups split or not.
      const rolloutOptions = {
        tokenizer,
        groupSize: SAMPLES,
        maxNewTokens: MAX_NEW,
        temperature: 1,
        seed: 5,
        firstGroup: 0,
      };
      const a = await sampleGroups(small.backend, PROMPTS, rolloutOptions);
      const b = await sampleGroups(big.backend, PROMPTS, rolloutOptions);
      deepStrictEqual(
        a.groups.map((g) => g.map((r) => r.tokens)),
        b.groups.map((g) => g.map((r) => r.tokens)),
      );
      strictEqual(a.generatedTokens, b.generatedTokens);

      // Prompts of 60 tokens: a 128-slot cache, 4 rows per call. The generation workspace of the
      // 8-row calls above must not grow to 8 rows × 128 slots (twice the binding).
      const long = PROMPTS.slice(0, 3).map((p) =>
        Array.from({ length: 60 }, (_, t) => p[t % p.length])
      );
      deepStrictEqual(
        tokensOf(await generateGroups(small.backend, long, 2, options)),
        tokensOf(await generateGroups(big.backend, long, 2, options)),
      );

      // One prompt's samples alone do not fit: the error names the keys to lower.
      await rejects(
        generateGroups(small.backend, PROMPTS, rowsPerCall + 1, options),
        /"rl\.eval\.samples".*"rl\.maxNewTokens"/,
      );
    } finally {
      for (const { backend, model } of [small, big]) {
        releaseGenerateWorkspace(model);
        backend.dispose();
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "RL generation with an f16 KV cache fits twice the rows per call and samples what one " +
    "unsplit call samples",
  ignore: noGpu,
  async fn() {
    // 32 KiB: a 64-slot row of 32 values per layer is 8 KiB in f32 (4 rows: one prompt of 3
    // samples a call), 4 KiB in f16 (8 rows: two prompts a call).
    const binding = 32 * 1024;
    const small = await gpuBackend(binding, "f16");
    const big = await gpuBackend(undefined, "f16");
    try {
      const options = { maxNewTokens: MAX_NEW, temperature: 1, seed: 42, rowsKey: "rl.groupSize" };
      let calls = 0;
      const counted: TrainBackend = {
        ...small.backend,
        generate: (o) => {
          calls++;
          return small.backend.generate(o);
        },
      };
      const got = await generateGroups(counted, PROMPTS, SAMPLES, options);
      strictEqual(calls, Math.ceil(PROMPTS.length / Math.floor(8 / SAMPLES)));
      deepStrictEqual(
        tokensOf(got),
        tokensOf(await generateGroups(big.backend, PROMPTS, SAMPLES, options)),
      );
      ok(new Set(got.map((s) => s.tokens.join())).size > PROMPTS.length, "too few distinct rows");
    } finally {
      for (const { backend, model } of [small, big]) {
        releaseGenerateWorkspace(model);
        backend.dispose();
        model.dispose();
      }
    }
  },
});

Deno.test("generateGroups() on the CPU gives the same samples in one call, one per prompt, or over workers", async () => {
  const model = await loadModel(fixtureDir(), { backend: "cpu", warn: false });
  const backend = createTrainBackend(model, { mode: "full" });
  const prompts = PROMPTS.slice(0, 3);
  const options = { maxNewTokens: 3, temperature: 1, seed: 9, rowsKey: "rl.groupSize" };
  const whole = await generateGroups(backend, prompts, 2, options);
  const split = await generateGroups(backend, prompts, 2, { ...options, maxPromptsPerCall: 1 });
  deepStrictEqual(tokensOf(split), tokensOf(whole));
  ok(new Set(whole.map((s) => s.tokens.join())).size > 3);
  // Worker threads split each call again (each part offset by its first row).
  const pooled = createTrainBackend(model, { mode: "full", workers: 2 });
  try {
    const parts = await generateGroups(pooled, prompts, 2, { ...options, maxPromptsPerCall: 2 });
    deepStrictEqual(tokensOf(parts), tokensOf(whole));
  } finally {
    pooled.dispose();
  }
});
