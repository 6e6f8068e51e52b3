// estimateRlGpuMemory against the bytes a WebGPU model really allocates (GpuContext.allocatedBytes)
// after loading with adapters, a generate call (with and without merged adapters), a forward
// micro-batch and a training micro-batch, on the fixture model (tied head, heads·headDim =
// hidden; f32 weights, and f16 ones with the merged copy in f16, that copy also to the byte) and
// on a random model with an untied head and heads·headDim ≠ hidden; the kernels' split-K scratch
// of a hardware adapter, forced on the software one (its Gpu wrapped with `isFallbackAdapter:
// false`), to the byte (the buffers `GpuContext.scratch` makes, counted by label) and checked
// against sizes derived by hand; plus the pure relations (f16 weights, an f16 KV cache, the
// release policy, HILO routers, Qwen3-0.6B's scratch by hand).
//
// Tolerance: each measured item must be at least the estimate and at most the estimate plus
// 64 KiB, for the objective's per-row buffers (568 bytes here), which the estimate leaves out.
// Observed on Mesa lavapipe (2026-12-04): every item equal to the byte (weights, adapters,
// gradients, generation with and without the merged copy, forward) except the training step,
// +568 and +2,000 bytes (the objective's per-row buffers); the scratch equal to the byte
// (0 on the software path, 6 KiB and 64 KiB on the forced hardware path).
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { loadPeftAdapter } from "../../adapters/peft_io.ts";
import { createLora } from "../../adapters/lora.ts";
import { loraConfig } from "../../adapters/lora_config.ts";
import { GpuContext } from "../../gpu/context.ts";
import { SPLIT_K_SCRATCH } from "../../kernels/matmul/matmul.ts";
import { noGpu, testContext } from "../../gpu/test_utils.ts";
import { fixtureDir } from "../../internal/test_utils.ts";
import { type Qwen3Config, readQwen3Config } from "../../model/config.ts";
import { generate } from "../../model/generate.ts";
import { initQwen3Weights } from "../../model/init.ts";
import { MergedAdapterWeights } from "../../model/merge_adapters_webgpu.ts";
import { WebGpuQwen3 } from "../../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../../model/weights.ts";
import type { Lora } from "../../adapters/lora.ts";
import { createTrainBackend } from "../backend.ts";
import { loraParams } from "../params.ts";
import { estimateRlGpuMemory, type GpuMemoryEstimateInput } from "./gpu_memory_estimate.ts";

const SLACK = 64 * 1024;
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

function within(measured: number, estimate: number, what: string): void {
  ok(
    measured >= estimate && measured <= estimate + SLACK,
    `${what}: measured ${measured} bytes, estimate ${estimate} (allowed [estimate, +${SLACK}])`,
  );
}

/**
 * Counts the bytes of the buffers `ctx.scratch` makes from now on (labelled "scratch …"), and
 * lists the bytes each split-K product asks of it, in record order.
 */
function countScratch(ctx: GpuContext): { bytes: number; requests: number[] } {
  const count = { bytes: 0, requests: [] as number[] };
  const create = ctx.createBuffer.bind(ctx);
  ctx.createBuffer = (size: number, label: string) => {
    const buffer = create(size, label);
    if (label.startsWith("scratch ")) count.bytes += buffer.size;
    return buffer;
  };
  const scratch = ctx.scratch.bind(ctx);
  ctx.scratch = (name: string, bytes: number) => {
    if (name === SPLIT_K_SCRATCH) count.requests.push(bytes);
    return scratch(name, bytes);
  };
  return count;
}

/**
 * Measures each item on `model` (adapters `lora`, set here) and compares with the estimate; the
 * scratch (buffers labelled "scratch …", counted as `ctx` makes them) to the byte. Returns the
 * scratch bytes measured.
 */
async function measure(
  ctx: GpuContext,
  model: WebGpuQwen3,
  lora: Lora,
  input: Omit<GpuMemoryEstimateInput, "model">,
): Promise<number> {
  const c = model.config;
  const est = estimateRlGpuMemory({
    ...input,
    model: c,
    stopTokens: c.eosTokenIds.length,
    maxBindingSize: ctx.gpu.maxBindingSize,
    offsetAlignment: ctx.device.limits.minStorageBufferOffsetAlignment,
    isFallbackAdapter: ctx.gpu.isFallbackAdapter,
    fillWorkgroups: ctx.fillWorkgroups,
  });
  const scratch = countScratch(ctx);
  const merged = estimateRlGpuMemory({ ...input, model: c, mergeAdapters: true }).mergedCopy;
  ok(merged > 0, "no merged copy estimated");
  within(ctx.allocatedBytes, est.weights, "weights");
  const bare = ctx.allocatedBytes;
  model.setAdapters(lora);
  within(ctx.allocatedBytes - bare, est.adapters, "adapters");
  const rest = ctx.allocatedBytes;

  // One rollout call: genBatchPrompts × G rows, every prompt promptTokens long.
  const P = input.promptTokens;
  const prompts = Array.from(
    { length: input.genBatchPrompts * input.groupSize },
    (_, i) => Array.from({ length: P }, (_, t) => (i * 5 + t * 3) % (c.vocabSize - 1) + 1),
  );
  const options = { prompts, maxNewTokens: input.maxNewTokens, temperature: 1, seed: 3 };
  await generate(model, { ...options, mergeAdapters: false });
  within(ctx.allocatedBytes - rest, est.kvCache + est.generation, "generation workspace");
  model.releaseWorkspaces();
  strictEqual(ctx.allocatedBytes, rest, "releaseWorkspaces left generation's workspace");
  ctx.resetPeak();
  await generate(model, { ...options, mergeAdapters: true });
  within(ctx.peakBytes - rest, est.kvCache + est.generation + merged, "generation, merged");
  model.releaseWorkspaces();

  // One full micro-batch of promptTokens + maxNewTokens tokens per row.
  let before = ctx.allocatedBytes;
  const backend = createTrainBackend(model, { mode: "adapters", params: loraParams(lora) });
  // The backend allocates the adapters' gradients (part of `optimizer`, as big as the adapters).
  within(ctx.allocatedBytes - before, est.adapters, "gradients");
  const T = P + input.maxNewTokens;
  const batch = {
    inputIds: Array.from(
      { length: input.microBatchSize },
      (_, i) => Array.from({ length: T }, (_, t) => (i * 7 + t * 3) % (c.vocabSize - 1) + 1),
    ),
  };
  before = ctx.allocatedBytes;
  await backend.forward(batch);
  within(ctx.allocatedBytes - before, est.forward, "forward workspace");
  model.releaseWorkspaces();
  before = ctx.allocatedBytes;
  const m = input.microBatchSize * (T - 1);
  await backend.objectiveAndGrads(batch, {
    terms: [{ name: "clipped_pg" }],
    inputs: {
      lossMask: new Float64Array(m).fill(1),
      oldLogprobs: new Float64Array(m).fill(-6),
      advantages: new Float64Array(m).fill(1),
    },
  });
  // The kernels' scratch stays after the step (until the model is disposed). The requests, in
  // order, as the estimate lists them (so a drift fails here even where the totals agree).
  deepStrictEqual(scratch.requests, est.scratchRequests, "split-K requests");
  strictEqual(scratch.bytes, est.scratch, "split-K scratch");
  within(ctx.allocatedBytes - before, est.training + est.scratch, "training workspace + scratch");
  backend.dispose();
  model.dispose();
  return scratch.bytes;
}

// One context for the software adapter's measurements, so that each kernel compiles once per
// file rather than once per test (most of their time on lavapipe); every test leaves it with no
// bytes allocated (asserted at its end), and each starts by checking that it finds none.
let software: GpuContext | undefined;
async function softwareContext(): Promise<GpuContext> {
  software ??= new GpuContext((await testContext())!.gpu);
  strictEqual(software.allocatedBytes, 0, "bytes left allocated by an earlier test");
  return software;
}

Deno.test({
  name: "estimateRlGpuMemory() matches the bytes allocated on the fixture model (LoRA r4, all)",
  ignore: noGpu,
  async fn() {
    const dir = fixtureDir();
    const config = await readQwen3Config(dir);
    const ctx = await softwareContext();
    const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
    const lora = await loadPeftAdapter(`${dir}/adapter`, config);
    await measure(ctx, model, lora, {
      adapters: { targets: ALL, ranks: [4, 4] },
      groupSize: 3,
      genBatchPrompts: 2,
      evalPrompts: 0,
      evalSamples: 1,
      promptTokens: 5,
      maxNewTokens: 7,
      microBatchSize: 3,
    });
    strictEqual(ctx.allocatedBytes, 0, "bytes left after dispose()");
  },
});

Deno.test({
  name: "estimateRlGpuMemory() matches the bytes allocated on the fixture model with f16 " +
    "weights (LoRA r4, all; the merged copy in f16)",
  ignore: noGpu,
  async fn() {
    const dir = fixtureDir();
    const config = await readQwen3Config(dir);
    const ctx = await softwareContext();
    if (!ctx.gpu.features.has("shader-f16")) {
      console.log("the adapter has no shader-f16: f16 weights not run");
      return;
    }
    const weights = await loadQwen3Weights(dir, config, { matrixDtype: "f16" });
    const model = new WebGpuQwen3(ctx, config, weights, { weightDtype: "f16" });
    const lora = await loadPeftAdapter(`${dir}/adapter`, config);
    const input = {
      adapters: { targets: ALL, ranks: [4, 4] },
      weightDtype: "f16" as const,
      groupSize: 3,
      genBatchPrompts: 2,
      evalPrompts: 0,
      evalSamples: 1,
      promptTokens: 5,
      maxNewTokens: 7,
      microBatchSize: 3,
    };
    // The f16 merged copy: the f16 matrices of all seven projections and the 8-byte status.
    const merged = estimateRlGpuMemory({ ...input, model: config, mergeAdapters: true });
    const [H, I] = [config.hiddenSize, config.intermediateSize];
    const [qd, kvd] = [config.numAttentionHeads, config.numKeyValueHeads].map((h) =>
      h * config.headDim
    );
    const perLayer = 2 * qd * H + 2 * kvd * H + 3 * I * H;
    strictEqual(merged.mergedCopy, config.numHiddenLayers * 2 * perLayer + 8);
    await measure(ctx, model, lora, input);
    strictEqual(ctx.allocatedBytes, 0, "bytes left after dispose()");
    // The merged copy alone, to the byte.
    const again = new WebGpuQwen3(ctx, config, weights, { weightDtype: "f16" });
    again.setAdapters(lora);
    const before = ctx.allocatedBytes;
    const copy = new MergedAdapterWeights(ctx, again);
    strictEqual(ctx.allocatedBytes - before, merged.mergedCopy, "f16 merged copy");
    copy.dispose();
    again.dispose();
  },
});

Deno.test({
  name: "estimateRlGpuMemory() matches on an untied model with heads·headDim ≠ hidden",
  ignore: noGpu,
  async fn() {
    const config: Qwen3Config = {
      vocabSize: 97,
      hiddenSize: 40,
      intermediateSize: 72,
      numHiddenLayers: 3,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 96,
      tieWordEmbeddings: false,
      eosTokenIds: [96],
      bosTokenId: null,
      padTokenId: null,
    };
    const ctx = await softwareContext();
    const model = new WebGpuQwen3(ctx, config, initQwen3Weights(config, { seed: 1 }));
    const targets = ["q_proj", "o_proj", "down_proj"];
    const lora = createLora(loraConfig({ r: 3, targetModules: targets }), config, { seed: 2 });
    await measure(ctx, model, lora, {
      adapters: { targets, ranks: [3, 3, 3] },
      groupSize: 2,
      genBatchPrompts: 3,
      evalPrompts: 0,
      evalSamples: 1,
      // 58 + 12 tokens: a cache of 128 slots (two blocks of 64), as 9 + 70 gave, in 12 decode
      // steps rather than 70 (and a 70-token micro-batch).
      promptTokens: 58,
      maxNewTokens: 12,
      microBatchSize: 2,
    });
    strictEqual(ctx.allocatedBytes, 0, "bytes left after dispose()");
  },
});

// The hardware adapter's split-K path, forced on the software adapter by wrapping its Gpu as a
// hardware one (the kernels read `isFallbackAdapter`; `fillWorkgroups` then defaults to 256).
async function hardwareContext(): Promise<GpuContext> {
  return new GpuContext({ ...(await testContext())!.gpu, isFallbackAdapter: false });
}

Deno.test({
  name: "estimateRlGpuMemory() matches the split-K scratch of a hardware adapter (LoRA weight " +
    "gradients over 1,040 tokens, forced on the software adapter; the training step only)",
  ignore: noGpu,
  async fn() {
    // One small layer: a split needs k ≥ 1024, here the micro-batch's tokens, and the training
    // step over them is what costs time on lavapipe.
    const config: Qwen3Config = {
      vocabSize: 64,
      hiddenSize: 32,
      intermediateSize: 64,
      numHiddenLayers: 1,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      headDim: 16,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 96,
      tieWordEmbeddings: true,
      eosTokenIds: [63],
      bosTokenId: null,
      padTokenId: null,
    };
    const ctx = await hardwareContext();
    const model = new WebGpuQwen3(ctx, config, initQwen3Weights(config, { seed: 1 }));
    const lora = createLora(loraConfig({ r: 4, targetModules: ALL }), config, { seed: 2 });
    model.setAdapters(lora);
    const [rows, T] = [16, 65];
    const input: GpuMemoryEstimateInput = {
      model: config,
      adapters: { targets: ALL, ranks: [4] },
      groupSize: 1,
      genBatchPrompts: 0,
      evalPrompts: 0,
      evalSamples: 1,
      promptTokens: 10,
      maxNewTokens: T - 10,
      microBatchSize: rows,
      maxBindingSize: ctx.gpu.maxBindingSize,
      offsetAlignment: ctx.device.limits.minStorageBufferOffsetAlignment,
      isFallbackAdapter: false,
      fillWorkgroups: ctx.fillWorkgroups,
    };
    const est = estimateRlGpuMemory(input);
    const scratch = countScratch(ctx);
    const backend = createTrainBackend(model, { mode: "adapters", params: loraParams(lora) });
    const before = ctx.allocatedBytes;
    const batch = {
      inputIds: Array.from(
        { length: rows },
        (_, i) => Array.from({ length: T }, (_, t) => (i * 7 + t * 3) % 62 + 1),
      ),
    };
    const m = rows * (T - 1);
    await backend.objectiveAndGrads(batch, {
      terms: [{ name: "clipped_pg" }],
      inputs: {
        lossMask: new Float64Array(m).fill(1),
        oldLogprobs: new Float64Array(m).fill(-6),
        advantages: new Float64Array(m).fill(1),
      },
    });
    // By hand: k = 16 × 65 = 1040 tokens split in 4 chunks of 272 (⌊1040 / 256⌋ = 4 splits at
    // most). The first split product, down_proj's B gradient [32, 4], asks 4·32·4 floats (2 KiB);
    // its A gradient [4, 64] asks 4 KiB, a new buffer (the 2 KiB one is kept); nothing later asks
    // more (gate/up's B [64, 4] is 4 KiB). The other products do not split (k < 1024).
    strictEqual(scratch.bytes, 2048 + 4096);
    strictEqual(est.scratch, scratch.bytes, "split-K scratch");
    // Every request in record order, as the estimate lists them (LoRA's B then A gradients per
    // projection, layers from the last down).
    ok(scratch.requests.length > 7, `${scratch.requests.length} split-K requests`);
    deepStrictEqual(scratch.requests, est.scratchRequests, "LoRA step's split-K requests");
    within(ctx.allocatedBytes - before, est.training + est.scratch, "training workspace + scratch");
    backend.dispose();
    // Full fine-tuning over the same tokens: the base weights' gradients (the LM head's and every
    // projection's, k = 1040 tokens) split too, in the order the estimate lists them.
    model.setAdapters(null);
    const full = estimateRlGpuMemory({ ...input, adapters: null });
    scratch.requests.length = 0;
    await model.runTrainStep(batch, { mode: "full", lossHook: () => {} });
    ok(scratch.requests.length > 7, `${scratch.requests.length} split-K requests`);
    deepStrictEqual(scratch.requests, full.scratchRequests, "full step's split-K requests");
    model.dispose();
    strictEqual(ctx.allocatedBytes, 0, "bytes left after dispose()");
  },
});

Deno.test({
  name: "estimateRlGpuMemory() matches the split-K scratch of a hardware adapter (the LM head's " +
    "input gradient over a 1,100-token vocabulary, untied head)",
  ignore: noGpu,
  async fn() {
    const config: Qwen3Config = {
      vocabSize: 1100,
      hiddenSize: 40,
      intermediateSize: 72,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      maxPositionEmbeddings: 96,
      tieWordEmbeddings: false,
      eosTokenIds: [1099],
      bosTokenId: null,
      padTokenId: null,
    };
    const ctx = await hardwareContext();
    const model = new WebGpuQwen3(ctx, config, initQwen3Weights(config, { seed: 1 }));
    const targets = ["q_proj", "down_proj"];
    const lora = createLora(loraConfig({ r: 3, targetModules: targets }), config, { seed: 2 });
    const scratch = await measure(ctx, model, lora, {
      adapters: { targets, ranks: [3, 3] },
      groupSize: 2,
      genBatchPrompts: 1,
      evalPrompts: 0,
      evalSamples: 1,
      promptTokens: 9,
      maxNewTokens: 20,
      microBatchSize: 2,
    });
    // By hand: dx [58, 40] over k = 1100 vocabulary rows takes 4 splits (⌊1100 / 256⌋) of 288:
    // 4·58·40 floats = 37,120 bytes, a 64 KiB buffer.
    strictEqual(scratch, 65536);
    strictEqual(ctx.allocatedBytes, 0, "bytes left after dispose()");
  },
});

const QWEN3_4B = {
  vocabSize: 151936,
  hiddenSize: 2560,
  intermediateSize: 9728,
  numHiddenLayers: 36,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  headDim: 128,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 40960,
};
const GSM8K: GpuMemoryEstimateInput = {
  model: QWEN3_4B,
  adapters: { targets: ALL, ranks: Array(36).fill(16) },
  groupSize: 16,
  genBatchPrompts: 8,
  evalPrompts: 48,
  evalSamples: 4,
  promptTokens: 252,
  maxNewTokens: 1024,
  microBatchSize: 32,
};

Deno.test("estimateRlGpuMemory(): f16 weights, an f16 KV cache and the release policy", () => {
  const base = estimateRlGpuMemory(GSM8K);
  const f16 = estimateRlGpuMemory({ ...GSM8K, weightDtype: "f16" });
  // Matrices halve; the norms and RoPE table stay f32 (a few MB).
  ok(f16.weights < base.weights / 2 + 30e6 && f16.weights > base.weights / 2, "f16 weights");
  const kv16 = estimateRlGpuMemory({ ...GSM8K, kvBytes: 2 });
  // K, V and the row scratch halve; the u32 key mask does not.
  const mask = 4 * base.generateRows.eval * Math.ceil((252 + 1024) / 64) * 64;
  strictEqual(kv16.kvCache, (base.kvCache - mask) / 2 + mask);
  // The held-out call (48 × 4 rows) is the largest generate call; 36 layers of K and V,
  // 192 rows of 1,280 slots of 8 × 128 floats (and one more layer's worth, the row scratch):
  // 73.5 GB, the review's figure.
  deepStrictEqual(base.generateRows, { rollout: 128, eval: 192 });
  ok(Math.abs(base.kvCache - 73 * 192 * 1280 * 1024 * 4 - mask) < 1, "KV bytes");
  const kept = estimateRlGpuMemory({ ...GSM8K, releaseWorkspaces: false });
  strictEqual(
    kept.peak,
    kept.resident + kept.scratch + kept.kvCache + kept.generation + kept.forward + kept.training,
  );
  strictEqual(
    base.peak,
    base.resident + base.scratch +
      Math.max(base.kvCache + base.generation, base.forward, base.training),
  );
  // Merging the adapters adds a copy of every adapted projection during generation, at the
  // weight dtype (f16: half the bytes, plus the 8-byte overflow status).
  const merged = estimateRlGpuMemory({ ...GSM8K, mergeAdapters: true });
  const H = 2560, I = 9728, qd = 4096, kvd = 1024;
  strictEqual(merged.mergedCopy, 36 * 4 * (2 * qd * H + 2 * kvd * H + 3 * I * H));
  strictEqual(
    estimateRlGpuMemory({ ...GSM8K, mergeAdapters: true, weightDtype: "f16" }).mergedCopy,
    merged.mergedCopy / 2 + 8,
  );
  // The host optimizer keeps only the gradients on the device.
  strictEqual(
    estimateRlGpuMemory({ ...GSM8K, deviceOptimizer: false }).optimizer * 3,
    base.optimizer,
  );
});

Deno.test("estimateRlGpuMemory(): the split-K scratch of Qwen3-0.6B, LoRA r16, GSM8K lengths", () => {
  const input: GpuMemoryEstimateInput = {
    ...GSM8K,
    model: {
      ...QWEN3_4B,
      hiddenSize: 1024,
      intermediateSize: 3072,
      numHiddenLayers: 28,
      numAttentionHeads: 16,
      numKeyValueHeads: 8,
    },
    adapters: { targets: ALL, ranks: Array(28).fill(16) },
  };
  // By hand, on a GPU (fill 256): the micro-batch's 32 × 1276 = 40,832 tokens are the k of the
  // LoRA weight gradients, whose outputs have few 64×64 tiles. The first split product, the last
  // layer's down_proj B gradient [1024, 16] (16 tiles), takes 16 splits (256 / 16): 16·1024·16
  // floats, 1 MiB. Its A gradient [16, 3072] (48 tiles) takes ⌈256 / 48⌉ = 6: 6·16·3072 floats
  // = 1,179,648 bytes, a new 2 MiB buffer; nothing later asks more (gate/up's B [3072, 16] is
  // the same size, the others' 1 MiB). The base products and the LM head have too many tiles.
  strictEqual(estimateRlGpuMemory(input).scratch, 2 ** 20 + 2 ** 21);
  // llvmpipe never splits; nor does full fine-tuning here (its weight gradients have ≥ 256 tiles,
  // its input gradients thousands).
  strictEqual(estimateRlGpuMemory({ ...input, isFallbackAdapter: true }).scratch, 0);
  strictEqual(estimateRlGpuMemory({ ...input, adapters: null }).scratch, 0);
  // A lower fill splits less: at 64, the 3072-wide gradients (48 tiles) no longer split (a
  // product splits only below half the fill), and the 1024-wide ones (16 tiles) take 4 splits:
  // 4·16·1024 floats, 256 KiB.
  strictEqual(estimateRlGpuMemory({ ...input, fillWorkgroups: 64 }).scratch, 2 ** 18);
});

Deno.test("estimateRlGpuMemory(): HILO experts add routers, widen the LoRA scratch and change the split-K scratch", () => {
  const lora = estimateRlGpuMemory({ ...GSM8K, adapters: { targets: ["q_proj"], ranks: [8] } });
  const hilo = estimateRlGpuMemory({
    ...GSM8K,
    adapters: { targets: ["q_proj"], ranks: [8], experts: [4] },
  });
  // Every layer (the lists repeat their last value) gets 4 experts and a [4, hidden] router.
  strictEqual(hilo.adapters - lora.adapters, 36 * (3 * 8 * (2560 + 4096) * 4) + 36 * 4 * 2560 * 4);
  ok(hilo.training > lora.training, "the routed scratch must widen the training workspace");
  // The scratch, by hand (fill 256, k = 40,832 tokens): plain LoRA's q_proj B gradient
  // [4096, 8] (64 tiles) takes 4 splits, 4·4096·8 floats = 512 KiB, then its A gradient [8, 2560]
  // (40 tiles) ⌈256 / 40⌉ = 7, 573,440 bytes, a new 1 MiB buffer. Two dense experts ask the
  // same (their router's [2, 2560] gradient, 7 splits, less); four take the grouped dispatch,
  // whose experts run in their own kernels: only the router's [4, 2560], 7·4·2560 floats
  // (286,720 bytes), a 512 KiB buffer.
  strictEqual(lora.scratch, 2 ** 19 + 2 ** 20);
  const dense = estimateRlGpuMemory({
    ...GSM8K,
    adapters: { targets: ["q_proj"], ranks: [8], experts: [2] },
  });
  strictEqual(dense.scratch, 2 ** 19 + 2 ** 20);
  strictEqual(hilo.scratch, 2 ** 19);
  // Routed adapters are never merged.
  strictEqual(
    estimateRlGpuMemory({
      ...GSM8K,
      mergeAdapters: true,
      adapters: { targets: ["q_proj"], ranks: [8], experts: [4] },
    }).mergedCopy,
    0,
  );
  throws(
    () => estimateRlGpuMemory({ ...GSM8K, adapters: { targets: ["lm_head"], ranks: [8] } }),
    /adapter target "lm_head" must be one of q_proj/,
  );
});
