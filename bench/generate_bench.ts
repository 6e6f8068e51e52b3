// Throughput of generate() on WebGPU: prefill and decode tokens/s at batch 1, 16 and 64 on the
// qwen3-tiny fixture and on a Qwen3-0.6B-shaped random model, and readbacks per 100 tokens.
//
//   deno bench --allow-read --allow-env bench/generate_bench.ts
//
// Each (model, batch) has two benches: "prefill" generates 1 token (prefill + one sample + one
// readback) and "decode" generates 1 + D tokens; decode tokens/s = batch · D / (t_decode −
// t_prefill), printed after the decode bench with the adapter's name. EOS is disabled so every
// sequence runs to the end.
//
// Default (about 1 min on llvmpipe): the tiny model at batch 1, 16 and 64 with 16-token prompts and
// 16 decode steps; the 0.6B-shaped model keeps hidden 1024, 16/8 heads of 128 and MLP 3072 but has
// 1 layer and a 4096-token vocabulary, 2-token prompts, 2 decode steps, batch 1 only (batch 16 alone
// takes ~1 min there). HALO_BENCH_FULL=1 (for a real GPU): the real shape (28 layers, vocab 151936,
// 40960 positions), 128-token prompts, 128 decode steps, batches 1, 16 and 64 on both models.
// HALO_BENCH_BATCHES=1,16,64 overrides the batches.
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { randomArray } from "../internal/random.ts";
import type { Qwen3Config } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import { loadModel } from "../model/load_model.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import type { Qwen3LayerWeights, Qwen3Weights } from "../model/weights.ts";

const FULL = Deno.env.get("HALO_BENCH_FULL") === "1";
const BATCHES = Deno.env.get("HALO_BENCH_BATCHES")?.split(",").map(Number);

let ctx: GpuContext | null = null;
try {
  ctx = new GpuContext(await createGpu());
} catch (e) {
  console.warn(`generate benches skipped: ${(e as Error).message}`);
}

/** A Qwen3-0.6B-shaped config (`layers` and `vocab` cut for software adapters). */
function qwen3Shape(layers: number, vocab: number, maxPos: number): Qwen3Config {
  return {
    vocabSize: vocab,
    hiddenSize: 1024,
    intermediateSize: 3072,
    numHiddenLayers: layers,
    numAttentionHeads: 16,
    numKeyValueHeads: 8,
    headDim: 128,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    maxPositionEmbeddings: maxPos,
    tieWordEmbeddings: true,
    eosTokenIds: [],
    bosTokenId: null,
    padTokenId: null,
  };
}

/** Random weights of the right shapes (scale ~ 1/sqrt(fan-in), norms around 1). */
function randomWeights(c: Qwen3Config): Qwen3Weights {
  const [h, q, kv, i] = [
    c.hiddenSize,
    c.numAttentionHeads * c.headDim,
    c.numKeyValueHeads * c.headDim,
    c.intermediateSize,
  ];
  let seed = 1;
  const mat = (rows: number, cols: number) =>
    randomArray(rows * cols, seed++, -1 / Math.sqrt(cols), 1 / Math.sqrt(cols));
  const norm = (n: number) => randomArray(n, seed++, 0.8, 1.2);
  const layers: Qwen3LayerWeights[] = Array.from({ length: c.numHiddenLayers }, () => ({
    inputLayernorm: norm(h),
    qProj: mat(q, h),
    kProj: mat(kv, h),
    vProj: mat(kv, h),
    oProj: mat(h, q),
    qNorm: norm(c.headDim),
    kNorm: norm(c.headDim),
    postAttentionLayernorm: norm(h),
    gateProj: mat(i, h),
    upProj: mat(i, h),
    downProj: mat(h, i),
  }));
  const embed = randomArray(c.vocabSize * h, seed++, -0.05, 0.05);
  return { embedTokens: embed, layers, norm: norm(h), lmHead: embed };
}

interface Case {
  name: string;
  model: () => Promise<WebGpuQwen3>;
  promptLen: number;
  decodeSteps: number;
  batches: number[];
}

const cases: Case[] = [
  {
    name: "tiny",
    model: async () =>
      await loadModel("tests/fixtures/qwen3-tiny", { gpu: ctx!, warn: false }) as WebGpuQwen3,
    promptLen: FULL ? 128 : 16,
    decodeSteps: FULL ? 128 : 16,
    batches: BATCHES ?? [1, 16, 64],
  },
  {
    name: FULL ? "qwen3-0.6b-shape" : "qwen3-0.6b-shape-1layer-v4096",
    model: () => {
      const config = FULL ? qwen3Shape(28, 151936, 40960) : qwen3Shape(1, 4096, 4096);
      return Promise.resolve(new WebGpuQwen3(ctx!, config, randomWeights(config)));
    },
    promptLen: FULL ? 128 : 2,
    decodeSteps: FULL ? 128 : 2,
    batches: BATCHES ?? (FULL ? [1, 16, 64] : [1]),
  },
];

const prefillSeconds = new Map<string, number>();

// One model on the device at a time: switching cases frees the previous one.
let current: { name: string; model: WebGpuQwen3 } | undefined;
async function modelOf(c: Case): Promise<WebGpuQwen3> {
  if (current?.name === c.name) return current.model;
  if (current) {
    releaseGenerateWorkspace(current.model);
    current.model.dispose();
  }
  current = { name: c.name, model: await c.model() };
  return current.model;
}

for (const c of cases) {
  const get = () => modelOf(c);
  for (const batch of c.batches) {
    const key = `${c.name} b${batch}`;
    const prompts = Array.from(
      { length: batch },
      (_, b) => Array.from({ length: c.promptLen }, (_, t) => (b * 131 + t * 17 + 1) % 4096 % 300),
    );
    const options = { prompts, temperature: 1, seed: 1, eosTokenIds: [] };
    Deno.bench({
      name: `${key} prefill ${c.promptLen} tokens`,
      group: `${c.name} prefill`,
      n: 1,
      warmup: 0,
      ignore: ctx === null,
      async fn(b) {
        const m = await get();
        b.start();
        const r = await generate(m, { ...options, maxNewTokens: 1 });
        b.end();
        prefillSeconds.set(key, r.stats.seconds);
        console.log(
          `${key}: prefill ${(r.stats.promptTokens / r.stats.seconds).toFixed(1)} tokens/s ` +
            `(${r.stats.promptTokens} tokens in ${r.stats.seconds.toFixed(3)} s, one readback) ` +
            `on ${m.device}`,
        );
      },
    });
    Deno.bench({
      name: `${key} decode ${c.decodeSteps} steps`,
      group: `${c.name} decode`,
      n: 1,
      warmup: 0,
      ignore: ctx === null,
      async fn(b) {
        const m = await get();
        b.start();
        const r = await generate(m, { ...options, maxNewTokens: 1 + c.decodeSteps });
        b.end();
        const decode = r.stats.seconds - (prefillSeconds.get(key) ?? 0);
        const tokens = batch * c.decodeSteps;
        console.log(
          `${key}: decode ${(tokens / decode).toFixed(1)} tokens/s (${tokens} tokens in ` +
            `${decode.toFixed(3)} s), ${r.stats.readbacks} readbacks for ${r.stats.steps} steps, ` +
            `on ${m.device}`,
        );
      },
    });
  }
}

Deno.bench({
  name: "tiny readbacks per 100 tokens (must be <= 4)",
  group: "readbacks",
  n: 1,
  warmup: 0,
  ignore: ctx === null,
  async fn() {
    const model = await loadModel("tests/fixtures/qwen3-tiny", { gpu: ctx!, warn: false });
    try {
      const r = await generate(model, {
        prompts: [[1, 2, 3]],
        maxNewTokens: 100,
        temperature: 1,
        eosTokenIds: [],
      });
      const per100 = (r.stats.readbacks * 100) / r.stats.generatedTokens;
      console.log(
        `readbacks per 100 tokens: ${per100} (${r.stats.readbacks} for ${r.stats.generatedTokens})`,
      );
      if (per100 > 4) {
        throw new Error(`Expected at most 4 readbacks per 100 tokens: current value is ${per100}`);
      }
    } finally {
      releaseGenerateWorkspace(model as WebGpuQwen3);
      model.dispose();
    }
  },
});
