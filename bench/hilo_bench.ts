// HILO adapters vs plain LoRA of about the same trainable size on the WebGPU backend: forward
// (tokenLogprobs) and train-step (backward of the token log-probs) tokens/s, on a Qwen3-0.6B-shaped
// random model (cut to 2 layers and a 4096 vocabulary on software adapters; HALO_BENCH_FULL=1 runs
// the real shape). The routed experts are evaluated densely (every expert, gated), so the cost
// grows with E at fixed rank: the E = 2 / 8 / 32 rows measure that growth (a grouped, top-k-only
// dispatch is not implemented).
//   deno task bench bench/hilo_bench.ts
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
import type { Lora } from "../model/adapter_types.ts";
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
];

for (const [label, lora] of adapters) {
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
