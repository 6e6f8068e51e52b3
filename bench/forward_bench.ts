// Forward pass throughput (tokens/s) of the WebGPU backend: the tiny fixture model and a
// Qwen3-0.6B-shaped random model (cut to 2 layers and a 4096 vocabulary on software adapters;
// HALO_BENCH_FULL=1 runs the real shape). `tokenLogprobs` is timed: one submit and one small
// readback per call, as the RL trainer scores rollouts.
//   deno task bench bench/forward_bench.ts
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);

const tiny = await loadModel(new URL("../tests/fixtures/qwen3-tiny", import.meta.url).pathname, {
  gpu: ctx,
  warn: false,
});
const config = benchFull() ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 2, vocab: 4096 });
const qwen06 = new WebGpuQwen3(ctx, config, randomWeights(config));
const label06 = benchFull() ? "qwen3-0.6B shape" : "qwen3-0.6B shape (2 layers, vocab 4096)";

function batchOf(model: Qwen3Model, batch: number, seqLen: number): number[][] {
  return Array.from(
    { length: batch },
    (_, b) => Array.from({ length: seqLen }, (_, t) => (b * 131 + t * 7) % model.config.vocabSize),
  );
}

const cases: [string, Qwen3Model, number, number][] = [
  ["tiny", tiny, 1, 64],
  ["tiny", tiny, 16, 64],
  [label06, qwen06, 1, 64],
  [label06, qwen06, 4, 64],
];
if (benchFull()) cases.push([label06, qwen06, 8, 512]);

for (const [label, model, batch, seqLen] of cases) {
  const inputIds = batchOf(model, batch, seqLen);
  const times: number[] = [];
  Deno.bench({
    name: `forward ${label} ${batch}×${seqLen} tokens`,
    group: label,
    n: 5,
    warmup: 1,
    async fn(b) {
      b.start();
      const t0 = performance.now();
      await model.tokenLogprobs({ inputIds });
      times.push(performance.now() - t0);
      b.end();
    },
  });
  addEventListener("unload", () => {
    if (times.length === 0) return;
    const best = Math.min(...times);
    console.log(
      `forward ${label} batch ${batch} × ${seqLen}: ${
        ((batch * seqLen) / (best / 1e3)).toFixed(0)
      } ` +
        `tokens/s (best of ${times.length}) on ${ctx.gpu.description}`,
    );
  });
}
