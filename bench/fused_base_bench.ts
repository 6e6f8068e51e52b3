// generate() of a base model (no adapters) with its q|k|v and gate|up weights stored fused
// (`WebGpuQwen3Options.fuseProjections`, the default: one decode matvec per group) against the
// separate layout, in the same run: whole warm calls (prefill and decode; EOS off) at batch 1.
//
//   deno bench --allow-read --allow-env bench/fused_base_bench.ts
//
// Measured on llvmpipe (2026-12-04, load 2–4, 2 cores shared, four runs): tiny 262–300 → 203–266
// ms a call (1.13–1.42× faster fused); the 1-layer 0.6B shape 2.2–2.5 s either way, single calls
// of both swinging between 1.2 and 2.6 s with the load (docs/perf.md).
//
// Default (llvmpipe, ~10 s): the qwen3-tiny fixture, 8-token prompt, 32 new tokens; and the
// Qwen3-0.6B-shaped random model of bench/random_model.ts cut to 1 layer and a 4096-token
// vocabulary, 2-token prompt, 8 new tokens. HALO_BENCH_FULL=1 (a real GPU): the real 0.6B shape
// (28 layers), 64-token prompt, 256 new tokens.
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
  console.warn(`fused_base benches skipped: ${(e as Error).message}`);
}

interface Case {
  name: string;
  model: (fuseProjections: boolean) => Promise<WebGpuQwen3>;
  promptLen: number;
  newTokens: number;
}

const cases: Case[] = [
  ...(FULL ? [] : [{
    name: "tiny",
    model: async (fuseProjections: boolean) =>
      await loadModel("tests/fixtures/qwen3-tiny", {
        gpu: ctx!,
        warn: false,
        fuseProjections,
      }) as WebGpuQwen3,
    promptLen: 8,
    newTokens: 32,
  }]),
  {
    name: FULL ? "qwen3-0.6b-shape" : "qwen3-0.6b-shape-1layer-v4096",
    model: (fuseProjections: boolean) => {
      const config = FULL ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 1, vocab: 4096 });
      return Promise.resolve(
        new WebGpuQwen3(ctx!, config, randomWeights(config), { fuseProjections }),
      );
    },
    promptLen: FULL ? 64 : 2,
    newTokens: FULL ? 256 : 8,
  },
];

// One model on the device at a time: both layouts of a case, freed when the case changes.
let current: { name: string; models: Map<boolean, WebGpuQwen3> } | undefined;
async function modelOf(c: Case, fuse: boolean): Promise<WebGpuQwen3> {
  if (current?.name !== c.name) {
    for (const m of current?.models.values() ?? []) {
      releaseGenerateWorkspace(m);
      m.dispose();
    }
    current = { name: c.name, models: new Map() };
  }
  const models = current.models;
  if (!models.has(fuse)) models.set(fuse, await c.model(fuse));
  return models.get(fuse)!;
}

for (const c of cases) {
  const prompts = [Array.from({ length: c.promptLen }, (_, t) => (t * 17 + 1) % 300)];
  for (const fuse of [false, true]) {
    Deno.bench({
      name: `${c.name} b1 base ${fuse ? "fused" : "separate"}`,
      group: c.name,
      baseline: !fuse,
      warmup: 1,
      n: FULL ? 3 : 4,
      ignore: ctx === null,
      async fn(b) {
        const model = await modelOf(c, fuse);
        const options = { prompts, maxNewTokens: c.newTokens, temperature: 1, eosTokenIds: [] };
        b.start();
        const r = await generate(model, options);
        b.end();
        console.log(
          `${c.name} ${fuse ? "fused" : "separate"}: ${r.stats.generatedTokens} tokens in ` +
            `${r.stats.seconds.toFixed(3)} s`,
        );
      },
    });
  }
}
