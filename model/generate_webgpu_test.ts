import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { GpuOutOfMemoryError } from "../gpu/errors.ts";
import { assertClose, noGpu, outOfMemoryGpu, testContext } from "../gpu/test_utils.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import { type GenerateOptions, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateCpu } from "./generate_cpu.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import type { Qwen3Model } from "./model.ts";
import { readQwen3Config } from "./config.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { loadQwen3Weights } from "./weights.ts";

// The bound for the returned model log-probs against a separate forward pass; measured
// ~1e-7 (both are f32 kernels over the same weights, summed in different orders).
const LOGPROB_TOL = 1e-4;
// KV-cache sampling vs the float64 CPU backend: f32 vs f64 log-probs of the same tokens.
const CPU_LOGPROB_TOL = 1e-4;
// The same f32 computation with a different summation order in the projections: a few ulps.
const ROUNDING_TOL = 1e-6;

const dir = fixtureDir();
// Prompts of different lengths (left padding up to 9), ids spread over the 384-token vocabulary.
const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64, 12, 180], [42], [
  310,
  2,
  77,
  150,
  9,
  66,
]];

async function gpuModel(): Promise<WebGpuQwen3> {
  const gpu = (await testContext())!;
  return await loadModel(dir, { backend: "webgpu", gpu, warn: false }) as WebGpuQwen3;
}

function run(model: WebGpuQwen3, options: GenerateOptions): Promise<GenerateResult> {
  return generateWebGpu(model, resolveGenerateOptions(model.config, options));
}

function recompute(model: Qwen3Model, options: GenerateOptions): Promise<GenerateResult> {
  return generateCpu(model, resolveGenerateOptions(model.config, options));
}

const tokensOf = (r: GenerateResult) => r.sequences.map((s) => s.tokens);

Deno.test({
  name: "generateWebGpu() greedy with the KV cache equals greedy by recomputation at every step",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      const options = {
        prompts: PROMPTS,
        maxNewTokens: 20,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 8,
      };
      const cached = await run(model, options);
      // The reference re-runs the WebGPU forward over each whole prefix every step.
      const full = await recompute(model, options);
      deepStrictEqual(tokensOf(cached), tokensOf(full));
      for (const s of cached.sequences) {
        strictEqual(s.stopReason, "length");
        strictEqual(s.length, 20);
        ok(s.logprobs.every((x) => x === 0), "greedy sampling log-probs are 0");
      }
      strictEqual(cached.stats.readbacks, 3); // ceil(20 / 8)
      console.log(`greedy tokens: ${JSON.stringify(tokensOf(cached))}`);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name:
    "generateWebGpu() samples the same tokens as the CPU backend per seed, and others per other seeds",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    const cpu = await loadModel(dir, { backend: "cpu", warn: false });
    try {
      const options = {
        prompts: PROMPTS,
        maxNewTokens: 12,
        temperature: 0.9,
        topP: 0.95,
        topK: 100,
        seed: 31,
        eosTokenIds: [],
        readbackEvery: 5,
      };
      const cached = await run(model, options);
      const onCpu = await recompute(cpu, options);
      deepStrictEqual(tokensOf(cached), tokensOf(onCpu));
      const err = assertClose(
        cached.sequences.flatMap((s) => [...s.modelLogprobs]),
        onCpu.sequences.flatMap((s) => [...s.modelLogprobs]),
        CPU_LOGPROB_TOL,
        "model log-probs vs CPU",
      );
      assertClose(
        cached.sequences.flatMap((s) => [...s.logprobs]),
        onCpu.sequences.flatMap((s) => [...s.logprobs]),
        CPU_LOGPROB_TOL,
        "sampling log-probs vs CPU",
      );
      console.log(
        `sampled tokens equal the CPU backend's; model log-prob rel err ${err.toExponential(2)}`,
      );
      // Same seed → same tokens; another seed → different tokens.
      deepStrictEqual(tokensOf(await run(model, options)), tokensOf(cached));
      // One generation at a time per model: a second concurrent call is refused.
      const first = run(model, options);
      await expectError(() => run(model, options), { type: Error, includes: ["still running"] });
      await first;
      const other = await run(model, { ...options, seed: 32 });
      ok(
        JSON.stringify(tokensOf(other)) !== JSON.stringify(tokensOf(cached)),
        "seeds 31 and 32 agree",
      );
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() holds the model: setAdapters, zeroGrads, releaseGenerateWorkspace, " +
    "encodeTrainStep and the adapters' write are refused while it runs, and it finishes with the tokens it gives alone",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      const lora = await loadPeftAdapter(`${dir}/adapter`, model.config);
      model.setAdapters(lora);
      // Sampled (seeded) over two readback chunks, so that the call spans several awaits.
      const options = {
        prompts: PROMPTS.slice(0, 2),
        maxNewTokens: 4,
        temperature: 1,
        seed: 9,
        eosTokenIds: [],
        readbackEvery: 2,
      };
      const alone = await run(model, options);
      const running = run(model, options);
      strictEqual(model.busyWith, "generate");
      // Called synchronously, before the generation's first await returns.
      const refusals: [string, () => void][] = [
        ["set the adapters", () => model.setAdapters(null)],
        ["zero the gradients", () => model.zeroGrads()],
        ["release the generation workspace", () => releaseGenerateWorkspace(model)],
        ["write the adapters", () => model.adapters!.write(lora)],
      ];
      const messages = refusals.map(([, call]) => {
        try {
          call();
          return "no error";
        } catch (error) {
          return (error as Error).message;
        }
      });
      refusals.forEach(([what], i) =>
        ok(
          messages[i].includes(`Cannot ${what}: a call to generate on this model is still running`),
          `${what}: ${messages[i]}`,
        )
      );
      // Refused when called (as a rejection: its errors are async), before it records anything.
      const step = model.encodeTrainStep(
        model.ctx.device.createCommandEncoder(),
        { inputIds: [[1, 2, 3]] },
        { mode: "adapters", lossHook: () => {} },
      );
      await rejects(
        step,
        /Cannot record a training step: a call to generate on this model is still running/,
      );
      const result = await running;
      deepStrictEqual(tokensOf(result), tokensOf(alone));
      deepStrictEqual(
        result.sequences.map((s) => [...s.modelLogprobs]),
        alone.sequences.map((s) => [...s.modelLogprobs]),
      );
      strictEqual(model.adapters !== null, true, "the refused setAdapters(null) removed them");
      // Once it is done, all four work.
      strictEqual(model.busyWith, null);
      // encodeTrainStep holds the model itself through its allocation check's wait, until it
      // has recorded: a generation started meanwhile is refused.
      const recording = model.encodeTrainStep(
        model.ctx.device.createCommandEncoder(),
        { inputIds: [[1, 2, 3]] },
        { mode: "adapters", lossHook: () => {} },
      );
      strictEqual(model.busyWith, "record a training step");
      await rejects(
        run(model, options),
        /a call to record a training step on this model is still running/,
      );
      await recording;
      strictEqual(model.busyWith, null);
      model.adapters!.write(lora);
      releaseGenerateWorkspace(model);
      model.zeroGrads();
      model.setAdapters(null);
      strictEqual(model.adapters, null);
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() model log-probs equal tokenLogprobs() over the generated sequences",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      const result = await run(model, {
        prompts: PROMPTS,
        maxNewTokens: 16,
        temperature: 1,
        seed: 5,
        stopTokenIds: [100, 101, 102, 103, 104, 105, 106, 107],
      });
      // Right-pad prompt + continuation and score it in one forward pass.
      const seqs = result.sequences.map((s, b) => [...PROMPTS[b], ...s.tokens]);
      const len = Math.max(...seqs.map((s) => s.length));
      const lp = await model.tokenLogprobs({
        inputIds: seqs.map((s) => [...s, ...new Array(len - s.length).fill(0)]),
        attentionMask: seqs.map((s) =>
          Array.from({ length: len }, (_, t) => (t < s.length ? 1 : 0))
        ),
      });
      const want: number[] = [];
      result.sequences.forEach((s, b) => {
        for (let i = 0; i < s.length; i++) {
          want.push(lp.logprobs[b * (len - 1) + PROMPTS[b].length - 1 + i]);
        }
      });
      const got = result.sequences.flatMap((s) => [...s.modelLogprobs]);
      const err = assertClose(got, want, LOGPROB_TOL, "model log-probs vs tokenLogprobs");
      console.log(
        `model log-probs vs tokenLogprobs: rel err ${err.toExponential(2)} over ${got.length}`,
      );
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name:
    "generateWebGpu() stops on stop ids, drops finished rows and keeps tokens per readbackEvery",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      // Eight sequences (two per prompt) that stop at different steps on common tokens.
      const prompts = [...PROMPTS, ...PROMPTS];
      const base = { prompts, maxNewTokens: 16, temperature: 1.2, seed: 3, eosTokenIds: [353] };
      const stopTokenIds = Array.from({ length: 40 }, (_, i) => 10 + i * 9);
      const results = [];
      for (const [readbackEvery, compact] of [[1, true], [4, false], [32, true]] as const) {
        const r = await run(model, { ...base, stopTokenIds, readbackEvery, compact });
        results.push(r);
        const steps = r.stats.steps;
        strictEqual(
          r.stats.readbacks,
          Math.ceil(steps / readbackEvery),
          `readbacks at ${readbackEvery}`,
        );
        console.log(
          `readbackEvery ${readbackEvery} compact ${compact}: ${r.stats.readbacks} readbacks, ` +
            `${r.stats.rowSteps} row-steps over ${steps} steps, lengths ${
              r.sequences.map((s) => s.length)
            }`,
        );
      }
      for (const r of results.slice(1)) {
        deepStrictEqual(tokensOf(r), tokensOf(results[0]));
        deepStrictEqual(
          r.sequences.map((s) => s.stopReason),
          results[0].sequences.map((s) => s.stopReason),
        );
        // Dropping rows can switch a projection between the skinny and the tiled matmul kernel
        // (different f32 summation orders), so log-probs agree to rounding, not bit for bit.
        assertClose(
          r.sequences.flatMap((s) => [...s.modelLogprobs]),
          results[0].sequences.flatMap((s) => [...s.modelLogprobs]),
          ROUNDING_TOL,
          "model log-probs across readbackEvery / compaction",
        );
      }
      const reasons = new Set(results[0].sequences.map((s) => s.stopReason));
      ok(
        reasons.has("stop") && reasons.size >= 2,
        `want several stop reasons, got ${[...reasons]}`,
      );
      for (const s of results[0].sequences) {
        const last = s.tokens[s.length - 1];
        if (s.stopReason === "stop") ok(stopTokenIds.includes(last));
        if (s.stopReason === "eos") strictEqual(last, 353);
        if (s.stopReason === "length") strictEqual(s.length, 16);
        ok(
          s.tokens.slice(0, -1).every((t) => !stopTokenIds.includes(t) && t !== 353),
          "stopped late",
        );
      }
      // With readbackEvery 1, dropping finished rows computes fewer rows than the full batch.
      ok(results[0].stats.rowSteps < 8 * results[0].stats.steps, "no row was dropped");
      // The float64 CPU backend, recomputing every prefix, agrees.
      const cpu = await loadModel(dir, { backend: "cpu", warn: false });
      deepStrictEqual(
        tokensOf(await recompute(cpu, { ...base, stopTokenIds })),
        tokensOf(results[0]),
      );
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() prefills in row chunks and projects split weights on small bindings",
  ignore: noGpu,
  async fn() {
    // A 64 KiB binding limit splits the embedding/LM head (96 KiB on qwen3-tiny) in row blocks
    // and lets the prefill take only a few prompts of 40 tokens at a time (3 on qwen3-tiny: 40 ·
    // 128 floats of MLP activations each). The limit is raised where one layer's KV cache for 5
    // sequences × 64 slots (40 + 6 tokens, rounded up to 64) would not fit.
    const config = await readQwen3Config(dir);
    const { vocabSize: V, hiddenSize: H } = config;
    const binding = Math.max(65536, 5 * 64 * config.numKeyValueHeads * config.headDim * 4);
    const shared = (await testContext())!;
    const ctx = new GpuContext({ ...shared.gpu, maxBindingSize: binding });
    const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
    const cpu = await loadModel(dir, { backend: "cpu", warn: false });
    try {
      const headBlocks = Math.ceil(V / Math.floor(binding / (H * 4)));
      ok(headBlocks >= 2, `the LM head fits one ${binding}-byte binding`);
      strictEqual(model.lmHead.chunks.length, headBlocks);
      // The widest activation per token: hidden, attention (heads · head_dim) or MLP.
      const widest = Math.max(
        H,
        config.numAttentionHeads * config.headDim,
        config.intermediateSize,
      );
      const chunkRows = Math.floor(binding / (40 * widest * 4));
      const chunks = Math.ceil(5 / chunkRows);
      ok(chunkRows >= 1 && chunks >= 2, `prefill chunks of ${chunkRows} prompts`);
      const prompts = Array.from(
        { length: 5 },
        (_, b) => Array.from({ length: 40 - b }, (_, t) => (b * 37 + t * 11) % V),
      );
      const options = { prompts, maxNewTokens: 6, temperature: 0, eosTokenIds: [] };
      const got = await run(model, options);
      deepStrictEqual(tokensOf(got), tokensOf(await recompute(cpu, options)));
      // Each prefill chunk but the last on its own, then the last with the decode.
      strictEqual(got.stats.submits, chunks);
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() bans the EOS ids below minNewTokens exactly as the CPU backend does",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    const cpu = await loadModel(dir, { backend: "cpu", warn: false });
    try {
      const base = { prompts: PROMPTS, maxNewTokens: 10, temperature: 0, readbackEvery: 4 };
      // The token greedy picks first at step k of sequence 0 (k = 2 on qwen3-tiny; on another
      // fixture the first such step ≥ 1, else 0) becomes the EOS.
      const free = await run(model, { ...base, eosTokenIds: [] });
      const free0 = free.sequences[0].tokens;
      const k = Math.max(0, free0.findIndex((t, i) => i >= 1 && !free0.slice(0, i).includes(t)));
      const eos = free0[k];
      const cases: [string, GenerateOptions][] = [
        ["greedy", { ...base, eosTokenIds: [eos] }],
        ["greedy minNewTokens 7", { ...base, eosTokenIds: [eos], minNewTokens: 7 }],
        ["sampled minNewTokens 7", {
          ...base,
          temperature: 1,
          topK: 50,
          seed: 8,
          eosTokenIds: PROMPTS.map((_, b) => free.sequences[b].tokens[1]),
          minNewTokens: 7,
        }],
      ];
      for (const [what, options] of cases) {
        const got = await run(model, options);
        const want = await recompute(cpu, options);
        deepStrictEqual(tokensOf(got), tokensOf(want), what);
        deepStrictEqual(
          got.sequences.map((s) => s.stopReason),
          want.sequences.map((s) => s.stopReason),
          what,
        );
        for (const key of ["logprobs", "modelLogprobs"] as const) {
          assertClose(
            got.sequences.flatMap((s) => [...s[key]]),
            want.sequences.flatMap((s) => [...s[key]]),
            CPU_LOGPROB_TOL,
            `${what} ${key} vs CPU`,
          );
        }
        const min = options.minNewTokens ?? 0;
        for (const s of got.sequences) {
          ok(s.length >= min, `${what}: stopped at ${s.length}`);
          ok(
            s.tokens.slice(0, min).every((t) => !options.eosTokenIds!.includes(t)),
            `${what}: emitted an EOS before minNewTokens`,
          );
        }
        if (min === 0) {
          deepStrictEqual(got.sequences[0].tokens, free0.slice(0, k + 1));
          strictEqual(got.sequences[0].stopReason, "eos");
        } else if (options.temperature === 0) {
          deepStrictEqual(got.sequences[0].tokens.slice(0, k), free0.slice(0, k));
          ok(got.sequences[0].tokens[k] !== eos);
        }
        console.log(`${what}: ${JSON.stringify(tokensOf(got))}`);
      }
    } finally {
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() names its readback chunk in errors, and a workspace that does not fit " +
    "(then freed, so that it runs again)",
  ignore: noGpu,
  async fn() {
    // A real device whose buffers labelled in `oom` run out of memory, as on a GPU.
    const oom = new Set<string>();
    const gpu = await outOfMemoryGpu(oom);
    try {
      const ctx = new GpuContext(gpu);
      const model = await loadModel(dir, { backend: "webgpu", gpu: ctx, warn: false });
      const options = {
        prompts: PROMPTS.slice(0, 2),
        maxNewTokens: 4,
        temperature: 0,
        eosTokenIds: [],
        readbackEvery: 2,
      };
      // An error the device reported is found at the first chunk's readback, which says so.
      ctx.gpu.errors.push("injected validation error");
      await expectError(() => run(model as WebGpuQwen3, options), {
        type: Error,
        includes: ["injected validation error", "(generate of 2 prompts: chunk 1, steps 1–2 of 4)"],
      });
      const first = await run(model as WebGpuQwen3, options);
      strictEqual(first.stats.readbacks, 2);
      const tokens = tokensOf(first);
      // A new workspace whose logits do not fit: named when allocated, before its first use.
      releaseGenerateWorkspace(model as WebGpuQwen3);
      oom.add("generate.logits");
      const readbacks = ctx.readbacks;
      await expectError(() => run(model as WebGpuQwen3, options), {
        type: GpuOutOfMemoryError,
        includes: [
          'allocating "generate.logits"',
          "found while allocating the generation workspace for 2 prompts",
        ],
      });
      strictEqual(ctx.readbacks, readbacks, "found before any readback");
      // The failed workspace was freed: with the memory back, the model generates again.
      oom.delete("generate.logits");
      deepStrictEqual(tokensOf(await run(model as WebGpuQwen3, options)), tokens);
      deepStrictEqual(ctx.gpu.errors, []);
    } finally {
      gpu.device.destroy();
    }
  },
});
