// Generation with an f16 KV cache (`kvDtype: "f16"`: keys and values rounded to f16, packed two
// per word; attention in f32) against the same model with the f32 cache: greedy tokens equal and
// model log-probs within F16_LOGPROB_TOL, over the prefill (kv_write), the decode append
// (qk_norm_rope_kv), the rows and the split-KV decode attention, rows finishing at different
// steps and being dropped (the cache compaction copies f16 rows), and the hardware adapter's
// decode over merged q|k|v weights. The generation workspace of the f16 cache takes exactly the
// f32 cache's bytes less half its keys, values and compaction scratch (ctx.allocatedBytes).
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { pickAttentionKernel } from "../kernels/attention/attention.ts";
import { type GenerateOptions, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateRowBytes, generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import type { KvDtype } from "./kv_cache.ts";
import { loadModel } from "./load_model.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { readQwen3Config } from "./config.ts";
import { loadQwen3Weights } from "./weights.ts";

// Relative ‖Δ‖/‖·‖ of the model log-probs of the same tokens, f16 vs f32 cache: keys and values
// carry f16's 2^-11 relative rounding into the scores and outputs (measured 2e-5 .. 5e-5 on the
// fixture, lavapipe).
const F16_LOGPROB_TOL = 5e-4;

const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64, 12, 180], [42], [
  310,
  2,
  77,
  150,
  9,
  66,
]];

async function gpuModel(kvDtype: KvDtype, gpu?: GpuContext): Promise<WebGpuQwen3> {
  return await loadModel(fixtureDir(), {
    backend: "webgpu",
    gpu: gpu ?? (await testContext())!,
    warn: false,
    kvDtype,
  }) as WebGpuQwen3;
}

function run(model: WebGpuQwen3, options: GenerateOptions): Promise<GenerateResult> {
  return generateWebGpu(model, resolveGenerateOptions(model.config, options));
}

const tokensOf = (r: GenerateResult) => r.sequences.map((s) => s.tokens);
const logprobsOf = (r: GenerateResult) => r.sequences.flatMap((s) => [...s.modelLogprobs]);

/** Asserts equal tokens and stop reasons, and log-probs within the f16 bound; returns the error. */
function compare(f16: GenerateResult, f32: GenerateResult, what: string): number {
  deepStrictEqual(tokensOf(f16), tokensOf(f32), `${what}: tokens`);
  deepStrictEqual(
    f16.sequences.map((s) => s.stopReason),
    f32.sequences.map((s) => s.stopReason),
    `${what}: stop reasons`,
  );
  const err = assertClose(logprobsOf(f16), logprobsOf(f32), F16_LOGPROB_TOL, what);
  console.log(`${what}: tokens equal, model log-probs rel err ${err.toExponential(2)}`);
  return err;
}

Deno.test({
  name: "generateWebGpu() with an f16 KV cache picks the f32 cache's greedy tokens, finishing " +
    "rows dropped or not",
  ignore: noGpu,
  async fn() {
    const [m32, m16] = [await gpuModel("f32"), await gpuModel("f16")];
    try {
      strictEqual(m16.kvDtype, "f16");
      strictEqual(m32.kvDtype, "f32");
      const greedy = { prompts: PROMPTS, maxNewTokens: 20, temperature: 0, eosTokenIds: [] };
      const f32 = await run(m32, { ...greedy, readbackEvery: 8 });
      compare(await run(m16, { ...greedy, readbackEvery: 8 }), f32, "greedy");
      // Stop ids taken from the f32 tokens so that the rows stop at different steps: with
      // readbackEvery 1 and compaction, finished rows are dropped and the cache rows moved.
      const stopTokenIds = f32.sequences.map((s, b) => s.tokens[4 + 3 * b]);
      const stops = { ...greedy, prompts: [...PROMPTS, ...PROMPTS], stopTokenIds };
      const ref = await run(m32, { ...stops, readbackEvery: 1, compact: true });
      const lengths = new Set(ref.sequences.map((s) => s.length));
      ok(lengths.size >= 3, `rows stop at few distinct steps: ${[...lengths]}`);
      for (const [readbackEvery, compact] of [[1, true], [4, false]] as const) {
        const got = await run(m16, { ...stops, readbackEvery, compact });
        compare(got, ref, `stops, readbackEvery ${readbackEvery}, compact ${compact}`);
        if (compact) ok(got.stats.rowSteps < 8 * got.stats.steps, "no row was dropped");
      }
    } finally {
      for (const m of [m32, m16]) {
        releaseGenerateWorkspace(m);
        m.dispose();
      }
    }
  },
});

Deno.test({
  name: "generateWebGpu() with an f16 KV cache through split-KV decode attention equals the f32 " +
    "cache's tokens",
  ignore: noGpu,
  async fn() {
    const [m32, m16] = [await gpuModel("f32"), await gpuModel("f16")];
    try {
      const c = m16.config;
      const heads = { hq: c.numAttentionHeads, hkv: c.numKeyValueHeads, d: c.headDim };
      strictEqual(pickAttentionKernel({ b: 2, tq: 1, kvLen: 192, ...heads }), "split");
      const options = {
        prompts: [[5, 99, 143, 250, 7, 301, 64, 12, 180], [11, 200, 37]],
        maxNewTokens: 130,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 64,
      };
      compare(await run(m16, options), await run(m32, options), "split-KV decode");
    } finally {
      for (const m of [m32, m16]) m.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with an f16 KV cache on a hardware adapter's merged q|k|v decode path " +
    "equals the f32 cache's tokens",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    const models: WebGpuQwen3[] = [];
    try {
      const results = [];
      for (const kvDtype of ["f32", "f16"] as const) {
        const model = await gpuModel(
          kvDtype,
          new GpuContext({ ...base.gpu, isFallbackAdapter: false }),
        );
        models.push(model);
        model.setAdapters(createLora(
          loraConfig({ r: 4, loraAlpha: 8, targetModules: "all-linear", initLoraWeights: false }),
          model.config,
          { seed: 5 },
        ));
        results.push(
          await run(model, {
            prompts: PROMPTS,
            maxNewTokens: 12,
            temperature: 0,
            eosTokenIds: [],
            readbackEvery: 4,
          }),
        );
      }
      compare(results[1], results[0], "hardware path, merged adapters");
    } finally {
      for (const m of models) m.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with an f16 KV cache allocates half the f32 cache's KV bytes",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    const bytes: number[] = [];
    const models: WebGpuQwen3[] = [];
    const [rows, prompt, maxNewTokens] = [4, 9, 100];
    try {
      for (const kvDtype of ["f32", "f16"] as const) {
        // A context of its own: its allocatedBytes counts this model and its workspace only.
        const model = await gpuModel(kvDtype, new GpuContext(base.gpu));
        models.push(model);
        const prompts = Array.from({ length: rows }, (_, b) => PROMPTS[1].slice(0, prompt - b));
        const before = model.ctx.allocatedBytes;
        await run(model, { prompts, maxNewTokens, temperature: 0, eosTokenIds: [] });
        bytes.push(model.ctx.allocatedBytes - before);
      }
      const c = models[0].config;
      const capacity = Math.ceil((prompt + maxNewTokens) / 64) * 64;
      const values = rows * capacity * c.numKeyValueHeads * c.headDim; // one layer's keys
      const kvF32 = c.numHiddenLayers * 2 * values * 4;
      // Keys and values of every layer, and the compaction scratch (one layer's keys), halve.
      strictEqual(bytes[0] - bytes[1], kvF32 / 2 + values * 2);
      strictEqual(
        generateRowBytes(c, prompt, maxNewTokens, { kvDtype: "f16" }),
        Math.max(capacity * c.numKeyValueHeads * c.headDim * 2, 4 * c.vocabSize),
      );
      console.log(
        `generation workspace (${rows} rows x ${capacity} slots): f32 cache ${bytes[0]} bytes, ` +
          `f16 cache ${bytes[1]} bytes; KV cache ${kvF32} -> ${kvF32 / 2} bytes`,
      );
    } finally {
      for (const m of models) m.dispose();
    }
  },
});

Deno.test({
  name: "WebGpuQwen3 refuses a kvDtype other than f32 or f16",
  ignore: noGpu,
  async fn() {
    const config = await readQwen3Config(fixtureDir());
    const weights = await loadQwen3Weights(fixtureDir(), config);
    const ctx = (await testContext())!;
    throws(
      () => new WebGpuQwen3(ctx, config, weights, { kvDtype: "bf16" as KvDtype }),
      /option "kvDtype" must be "f32" or "f16": current value is "bf16"/,
    );
  },
});
