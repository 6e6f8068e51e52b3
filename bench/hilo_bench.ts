// HILO adapters vs plain LoRA of about the same trainable size on the WebGPU backend: forward
// (tokenLogprobs) and train-step (backward of the token log-probs) tokens/s, on a Qwen3-0.6B-shaped
// random model (cut to 2 layers and a 4096 vocabulary on software adapters; HALO_BENCH_FULL=1 runs
// the real shape). The "dense" rows evaluate every routed expert on every token (gated), so the
// cost grows with E at fixed rank; the "grouped" rows run each expert on its own tokens only
// (GpuLora dispatch "grouped", forward and backward). The "dispatch" groups isolate one adapted
// projection (in = out = 1024, 128 tokens, rank 8, top-2): dense vs grouped forward and backward
// at E = 2, 4, 8, 16, 32, four per submit and readback; the crossover sets
// HILO_GROUPED_MIN_EXPERTS (docs/results/hilo.md, "Dispatch").
//   deno task bench bench/hilo_bench.ts
//   deno task bench --filter projection bench/hilo_bench.ts   # the dispatch comparison only
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import {
  createHilo,
  hiloConfig,
  type HiloConfigOptions,
  hiloParameterCounts,
} from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { parseLayerSchedule } from "../adapters/hilo_schedule.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import type { Lora, LoraModule } from "../model/adapter_types.ts";
import {
  encodeLoraBackward,
  encodeLoraForward,
  GpuLora,
  type HiloDispatch,
} from "../model/lora_webgpu.ts";
import { readback } from "../gpu/readback.ts";
import { randomArray } from "../internal/random.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { WebGpuQwen3Backward } from "../model/qwen3_webgpu_backward.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);
const config = benchFull() ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 2, vocab: 4096 });
const model = new WebGpuQwen3(ctx, config, randomWeights(config));
const train = new WebGpuQwen3Backward(model);
const [batch, seqLen] = benchFull() ? [8, 256] : [2, 32];
const inputIds = Array.from(
  { length: batch },
  (_, b) => Array.from({ length: seqLen }, (_, t) => (b * 131 + t * 7) % config.vocabSize),
);
const dLogprobs = new Float32Array(batch * (seqLen - 1)).fill(-1 / (batch * (seqLen - 1)));

const hilo = (o: HiloConfigOptions): Lora => createHilo(hiloConfig(config, o), config, { seed: 1 });
const last = config.numHiddenLayers;
const adapters: [string, Lora][] = [
  [
    "LoRA r=16",
    createLora(loraConfig({ r: 16, targetModules: "all-linear" }), config, { seed: 1 }),
  ],
  // 4 experts of rank 4 ≈ one rank-16 expert, plus the routers.
  ["MoLA uniform 4×r4 top-2", hilo({ experts: "uniform:4", rank: "uniform:4" })],
  [
    `HILO experts and ranks "2-4-6-8" (over ${last} layers: ${
      parseLayerSchedule("2-4-6-8", last).join("-")
    })`,
    hilo({ experts: "2-4-6-8", rank: "2-4-6-8" }),
  ],
  ["dense E=2 r=4 top-2", hilo({ experts: 2, rank: 4 })],
  ["dense E=8 r=4 top-2", hilo({ experts: 8, rank: 4 })],
  ["dense E=32 r=4 top-2", hilo({ experts: 32, rank: 4 })],
  ["grouped E=8 r=4 top-2", hilo({ experts: 8, rank: 4 })],
  ["grouped E=32 r=4 top-2", hilo({ experts: 32, rank: 4 })],
];

for (const [label, lora] of adapters) {
  const dispatch: HiloDispatch = label.startsWith("grouped")
    ? "grouped"
    : label.startsWith("dense")
    ? "dense"
    : "auto";
  const { trainable, activePerToken } = hiloParameterCounts(lora);
  const fwd: number[] = [];
  const step: number[] = [];
  Deno.bench({
    name: `forward ${label}`,
    group: "forward",
    baseline: label.startsWith("LoRA"),
    n: 3,
    warmup: 1,
    async fn(b) {
      model.setAdapters(lora);
      model.adapters!.dispatch = dispatch;
      b.start();
      const t0 = performance.now();
      await model.tokenLogprobs({ inputIds });
      fwd.push(performance.now() - t0);
      b.end();
    },
  });
  Deno.bench({
    name: `train step ${label}`,
    group: "train step",
    baseline: label.startsWith("LoRA"),
    n: 3,
    warmup: 1,
    async fn(b) {
      model.setAdapters(lora);
      model.adapters!.dispatch = dispatch;
      b.start();
      const t0 = performance.now();
      await train.backward({ inputIds }, { mode: "adapters", dLogprobs });
      step.push(performance.now() - t0);
      b.end();
    },
  });
  addEventListener("unload", () => {
    if (fwd.length === 0 || step.length === 0) return;
    const tps = (ms: number[]) => ((batch * seqLen) / (Math.min(...ms) / 1e3)).toFixed(0);
    console.log(
      `${label}: trainable ${trainable}, active/token ${activePerToken}; forward ${tps(fwd)} ` +
        `tokens/s, train step ${tps(step)} tokens/s (best of ${fwd.length}; ${batch}×${seqLen}) ` +
        `on ${ctx.gpu.description}`,
    );
  });
}

// One adapted projection, dense vs grouped forward, by expert count.
const DISPATCH = { m: 128, inF: 1024, outF: 1024, r: 8, topK: 2, perSubmit: 4 };
const dispatchMs = new Map<string, number[]>();
for (const E of [2, 4, 8, 16, 32]) {
  const { m, inF, outF, r, topK, perSubmit } = DISPATCH;
  const module: LoraModule = {
    name: "model.layers.0.self_attn.o_proj",
    layer: 0,
    target: "o_proj",
    inFeatures: inF,
    outFeatures: outF,
    experts: Array.from({ length: E }, (_, e) => ({
      a: randomArray(r * inF, 10 + 2 * e, -0.03, 0.03),
      b: randomArray(outF * r, 11 + 2 * e, -0.03, 0.03),
      r,
      scale: 2,
    })),
    router: {
      weight: randomArray(E * inF, 7, -0.05, 0.05),
      activation: "top-k",
      topK,
      topP: 0.8,
    },
  };
  for (const dispatch of ["dense", "grouped"] as const) {
    let gpu: GpuLora | null = null;
    let bufs: Record<"x" | "y" | "dy" | "dx" | "u" | "du", GPUBuffer>;
    const setUp = (): GpuLora => {
      if (gpu) return gpu;
      gpu = new GpuLora(ctx, { config: {} as Lora["config"], modules: [module] }, { dispatch });
      gpu.ensureGrads();
      bufs = {
        x: ctx.upload(randomArray(m * inF, 3, -1, 1), "x"),
        y: ctx.upload(new Float32Array(m * outF), "y"),
        dy: ctx.upload(randomArray(m * outF, 4, -1, 1), "dy"),
        dx: ctx.upload(new Float32Array(m * inF), "dx"),
        u: ctx.createBuffer(4 * m * gpu.maxRank, "u"),
        du: ctx.createBuffer(4 * m * gpu.maxRank, "du"),
      };
      return gpu;
    };
    for (const phase of ["forward", "backward"] as const) {
      const key = `${phase} ${dispatch} E=${E}`;
      Deno.bench({
        name: `projection ${key}`,
        group: `dispatch ${phase} E=${E}`,
        baseline: dispatch === "dense",
        n: 4,
        warmup: 1,
        async fn(b) {
          const module = setUp().modules[0];
          const { x, y, dy, dx, u, du } = bufs;
          b.start();
          const t0 = performance.now();
          const enc = ctx.device.createCommandEncoder();
          const pass = enc.beginComputePass();
          for (let i = 0; i < perSubmit; i++) {
            if (phase === "forward") encodeLoraForward(ctx, pass, { module, x, y, m, scratch: u });
            else encodeLoraBackward(ctx, pass, { module, x, dy, dx, m, u, du });
          }
          pass.end();
          await readback(ctx, [{ buffer: phase === "forward" ? y : dx, offset: 0, size: 4 }], enc);
          const ms = (performance.now() - t0) / perSubmit;
          b.end();
          dispatchMs.set(key, [...(dispatchMs.get(key) ?? []), ms]);
        },
      });
    }
  }
}
addEventListener("unload", () => {
  if (dispatchMs.size === 0) return;
  const { m, inF, outF, r, topK, perSubmit } = DISPATCH;
  console.log(
    `dispatch: one projection ${inF}→${outF}, ${m} tokens, rank ${r}, top-${topK}; ms per ` +
      `forward / backward (best; ${perSubmit} per submit + one readback) on ` +
      ctx.gpu.description,
  );
  console.log(
    "| E | forward dense ms | forward grouped ms | dense / grouped | backward dense ms | " +
      "backward grouped ms | dense / grouped |",
  );
  console.log("| -: | -: | -: | -: | -: | -: | -: |");
  for (const E of [2, 4, 8, 16, 32]) {
    const best = (k: string) => Math.min(...(dispatchMs.get(`${k} E=${E}`) ?? [NaN]));
    const cells = (["forward", "backward"] as const).flatMap((phase) => {
      const [d, g] = [best(`${phase} dense`), best(`${phase} grouped`)];
      return [d.toFixed(1), g.toFixed(1), (d / g).toFixed(2)];
    });
    console.log(`| ${E} | ${cells.join(" | ")} |`);
  }
});
