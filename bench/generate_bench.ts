// Throughput of generate() on WebGPU at batch 1, 16 and 64 on a Qwen3-0.6B-shaped random model
// (and the qwen3-tiny fixture on small runs), and readbacks per 100 tokens.
//
//   deno bench --allow-read --allow-env bench/generate_bench.ts
//
// Each (model, batch) has two benches, both timing whole generate() calls: "prefill" generates 1
// token (prefill + one sample + one readback) and "generate" N new tokens. The number compared
// with HF (bench/perf_table.ts) is the one ../shared/gpu/torch_baselines.py measures: batch · N /
// seconds of the whole warm call, prefill included (the best of Deno's ≥ 3 calls, so pipeline
// compilation in the first is left out); the decode-only rate batch · (N − 1) / (t_generate −
// t_prefill) is an extra line. Both are printed at the end (an unload handler, so without
// deno bench's per-bench prefix), with the adapter's name; each call's line is printed too, so a
// run cut short by a time limit still leaves its numbers. EOS is disabled so every sequence runs
// to the end.
//
// Default (about 1 min on llvmpipe): the tiny model at batch 1, 16 and 64 with 16-token prompts and
// 16 new tokens; the 0.6B-shaped model keeps hidden 1024, 16/8 heads of 128 and MLP 3072 but has
// 1 layer and a 4096-token vocabulary, 2-token prompts, 3 new tokens, batch 1 only (batch 16 alone
// takes ~1 min there). HALO_BENCH_FULL=1 (for a real GPU): HF's configuration, the real shape (28
// layers, vocab 151936, 40960 positions), 64-token prompts, 256 new tokens, batches 1, 64 and 16,
// and no tiny model. HALO_BENCH_BATCHES=1,16,64 overrides the batches.
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { generate } from "../model/generate.ts";
import { releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import { loadModel } from "../model/load_model.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { samplingLine } from "./perf_table.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const FULL = benchFull();
const BATCHES = Deno.env.get("HALO_BENCH_BATCHES")?.split(",").map(Number);

let ctx: GpuContext | null = null;
try {
  ctx = new GpuContext(await createGpu());
} catch (e) {
  console.warn(`generate benches skipped: ${(e as Error).message}`);
}

interface Case {
  name: string;
  model: () => Promise<WebGpuQwen3>;
  promptLen: number;
  /** New tokens per sequence of the "generate" bench (≥ 2). */
  newTokens: number;
  batches: number[];
}

const tiny: Case = {
  name: "tiny",
  model: async () =>
    await loadModel("tests/fixtures/qwen3-tiny", { gpu: ctx!, warn: false }) as WebGpuQwen3,
  promptLen: 16,
  newTokens: 16,
  batches: BATCHES ?? [1, 16, 64],
};
const shape06: Case = {
  name: FULL ? "qwen3-0.6b-shape" : "qwen3-0.6b-shape-1layer-v4096",
  model: () => {
    const config = FULL
      ? qwen3_0p6bConfig({ maxPositions: 40960 })
      : qwen3_0p6bConfig({ layers: 1, vocab: 4096 });
    return Promise.resolve(new WebGpuQwen3(ctx!, config, randomWeights(config)));
  },
  // HALO_BENCH_FULL: torch_baselines.py's gen_bench (P = 64, N = 256).
  promptLen: FULL ? 64 : 2,
  newTokens: FULL ? 256 : 3,
  batches: BATCHES ?? (FULL ? [1, 64, 16] : [1]), // the two targets first
};
const cases: Case[] = FULL ? [shape06] : [tiny, shape06];

/** The fastest whole call of each bench, in seconds, by `${key} prefill|generate`. */
const fastest = new Map<string, number>();
const keep = (key: string, seconds: number) =>
  fastest.set(key, Math.min(fastest.get(key) ?? Infinity, seconds));
const summaries: (() => string | undefined)[] = [];
let device = "";

// One model on the device at a time: switching cases frees the previous one.
let current: { name: string; model: WebGpuQwen3 } | undefined;
async function modelOf(c: Case): Promise<WebGpuQwen3> {
  if (current?.name === c.name) return current.model;
  if (current) {
    releaseGenerateWorkspace(current.model);
    current.model.dispose();
  }
  current = { name: c.name, model: await c.model() };
  device = current.model.device;
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
        keep(`${key} prefill`, r.stats.seconds);
        console.log(
          `${key}: prefill ${(r.stats.promptTokens / r.stats.seconds).toFixed(1)} tokens/s ` +
            `(${r.stats.promptTokens} tokens in ${r.stats.seconds.toFixed(3)} s, one readback)`,
        );
      },
    });
    Deno.bench({
      name: `${key} generate ${c.newTokens} tokens`,
      group: `${c.name} generate`,
      n: 1,
      warmup: 0,
      ignore: ctx === null,
      async fn(b) {
        const m = await get();
        b.start();
        const r = await generate(m, { ...options, maxNewTokens: c.newTokens });
        b.end();
        keep(`${key} generate`, r.stats.seconds);
        // Each call's line too (perf_table.ts takes the best), in case the run is cut short.
        console.log(samplingLine(c.name, batch, {
          promptLen: c.promptLen,
          newTokens: c.newTokens,
          seconds: r.stats.seconds,
          detail: `this call; ${r.stats.readbacks} readbacks for ${r.stats.steps} steps`,
        }));
      },
    });
    summaries.push(() => {
      const whole = fastest.get(`${key} generate`);
      if (whole === undefined) return undefined;
      const on = `on ${device}`;
      const lines = [
        samplingLine(c.name, batch, {
          promptLen: c.promptLen,
          newTokens: c.newTokens,
          seconds: whole,
          detail: `fastest call; ${on}`,
        }),
      ];
      const prefill = fastest.get(`${key} prefill`);
      if (prefill !== undefined && whole > prefill) {
        const tokens = batch * (c.newTokens - 1);
        lines.push(
          `${key}: decode-only ${(tokens / (whole - prefill)).toFixed(1)} tokens/s (${tokens} ` +
            `tokens in ${
              (whole - prefill).toFixed(3)
            } s: fastest generate − fastest prefill) ${on}`,
        );
      }
      return lines.join("\n");
    });
  }
}

addEventListener("unload", () => {
  for (const s of summaries) {
    const text = s();
    if (text) console.log(text);
  }
});

Deno.bench({
  name: "tiny readbacks per 100 tokens (must be <= 4)",
  group: "readbacks",
  n: 1,
  warmup: 0,
  ignore: ctx === null || FULL,
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
