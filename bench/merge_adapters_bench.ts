// generate() with LoRA adapters (r = 16 on all seven projections, random values) merged into the
// weights (`mergeAdapters: true`, model/merge_adapters_webgpu.ts) against the unmerged path, in
// the same run: whole warm calls (the merge, prefill and decode; EOS off) at batch 1.
//
//   deno bench --allow-read --allow-env bench/merge_adapters_bench.ts
//
// Measured on llvmpipe (load ~1.9, 2 cores shared): tiny 99.2 → 65.3 ms a call (1.52× faster
// merged: dispatches dominate); the 1-layer 0.6B shape 127.6 → 194.1 ms (1.52× slower: the
// merge, 0.5 GFLOP, costs more than 8 decode steps save there, hence off by default on software
// adapters).
//
// Default (llvmpipe, ~20 s): the qwen3-tiny fixture, 8-token prompt, 32 new tokens; and the
// Qwen3-0.6B-shaped random model of bench/random_model.ts cut to 1 layer and a 4096-token vocabulary,
// 2-token prompt, 8 new tokens. HALO_BENCH_FULL=1 (a real GPU): the real 0.6B shape (28 layers),
// 64-token prompt, 256 new tokens. Each with f32 weights, and with f16 ones ("f16" groups: the
// merge writes f16 copies, kernels/lora_merge_f16; skipped without "shader-f16").
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import { createGpu } from "../gpu/device.ts";
import { generate } from "../model/generate.ts";
import { releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import { loadModel } from "../model/load_model.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const FULL = benchFull();

let ctx: GpuContext | null = null;
try {
  ctx = new GpuContext(await createGpu());
} catch (e) {
  console.warn(`merge_adapters benches skipped: ${(e as Error).message}`);
}

interface Case {
  name: string;
  model: (weightDtype: "f32" | "f16") => Promise<WebGpuQwen3>;
  promptLen: number;
  newTokens: number;
}

const shapes: Case[] = [
  ...(FULL ? [] : [{
    name: "tiny",
    model: async (weightDtype: "f32" | "f16") =>
      await loadModel("tests/fixtures/qwen3-tiny", {
        gpu: ctx!,
        warn: false,
        weightDtype,
      }) as WebGpuQwen3,
    promptLen: 8,
    newTokens: 32,
  }]),
  {
    name: FULL ? "qwen3-0.6b-shape" : "qwen3-0.6b-shape-1layer-v4096",
    model: (weightDtype) => {
      const config = FULL ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 1, vocab: 4096 });
      return Promise.resolve(new WebGpuQwen3(ctx!, config, randomWeights(config), { weightDtype }));
    },
    promptLen: FULL ? 64 : 2,
    newTokens: FULL ? 256 : 8,
  },
];
const f16 = ctx?.gpu.features.has("shader-f16") ?? false;
const cases = [
  ...shapes.map((c) => ({ ...c, dtype: "f32" as const })),
  ...(f16 ? shapes : []).map((c) => ({ ...c, name: `${c.name} f16`, dtype: "f16" as const })),
];

let current: { name: string; model: WebGpuQwen3 } | undefined;
async function modelOf(c: (typeof cases)[number]): Promise<WebGpuQwen3> {
  if (current?.name === c.name) return current.model;
  if (current) {
    releaseGenerateWorkspace(current.model);
    current.model.dispose();
  }
  const model = await c.model(c.dtype);
  model.setAdapters(createLora(
    loraConfig({ r: 16, loraAlpha: 32, targetModules: "all-linear", initLoraWeights: false }),
    model.config,
    { seed: 3 },
  ));
  current = { name: c.name, model };
  return model;
}

for (const c of cases) {
  const prompts = [Array.from({ length: c.promptLen }, (_, t) => (t * 17 + 1) % 300)];
  for (const mergeAdapters of [false, true]) {
    Deno.bench({
      name: `${c.name} b1 LoRA r16 ${mergeAdapters ? "merged" : "unmerged"}`,
      group: c.name,
      baseline: !mergeAdapters,
      warmup: 1,
      n: FULL ? 3 : 2,
      ignore: ctx === null,
      async fn(b) {
        const model = await modelOf(c);
        const options = { prompts, maxNewTokens: c.newTokens, temperature: 1, eosTokenIds: [] };
        b.start();
        const r = await generate(model, { ...options, mergeAdapters });
        b.end();
        console.log(
          `${c.name} ${mergeAdapters ? "merged" : "unmerged"}: ${r.stats.generatedTokens} tokens ` +
            `in ${r.stats.seconds.toFixed(3)} s`,
        );
      },
    });
  }
}
