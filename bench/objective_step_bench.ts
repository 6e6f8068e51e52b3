// The Hidden-Align "zero overhead" claim, measured: time and peak GPU memory of one RL training
// step on WebGPU (`TrainBackend.objectiveAndGrads`: forward, the loss kernels inside the step,
// backward, one readback of gradients and loss scalars) with the clipped policy loss alone and
// with the clipped policy loss + 0.1 · Hidden-Align (cos-centroid at the final norm; weight 0
// records the same kernels as 0.1). Printed: both times, both peaks and the ratios; the target is
// a ratio within 1.05.
//
// Models: the tiny fixture and a Qwen3-0.6B-shaped random model with LoRA r=16 on every
// projection (cut to 2 layers and a 4096 vocabulary on a software adapter; HALO_BENCH_FULL=1
// runs all 28 layers, the 151,936 vocabulary and 8 × 512 tokens). Each case has its own
// GpuContext, so its peak is its own. On a software adapter the 0.6B cases time one step each at
// load (a Deno.bench function runs at least 3 times; one step there takes tens of seconds).
//   deno task bench bench/objective_step_bench.ts
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readQwen3Config } from "../model/config.ts";
import type { Qwen3Config } from "../model/config.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights, type Qwen3Weights } from "../model/weights.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { loraParams } from "../trainer/params.ts";
import type { ObjectiveInputs, ObjectiveRequest } from "../trainer/losses/objective_request.ts";
import type { LossSpec } from "../trainer/losses/registry.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const gpu = await createGpu();
console.log(`adapter: ${gpu.description}`);
const slow = gpu.isFallbackAdapter && !benchFull();

const tinyDir = new URL("../tests/fixtures/qwen3-tiny", import.meta.url).pathname;
const tinyConfig = await readQwen3Config(tinyDir);
const config06 = benchFull() ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 2, vocab: 4096 });
const label06 = benchFull() ? "qwen3-0.6B shape" : "qwen3-0.6B shape (2 layers, vocab 4096)";

const MiB = 2 ** 20;
const GROUP = 4;

/** A group-structured RL micro-batch: the prompt is the first quarter, anchors near the end. */
function rlInputs(batch: number, seqLen: number): ObjectiveInputs {
  const w = seqLen - 1;
  const lossMask = new Float64Array(batch * w);
  const oldLogprobs = new Float64Array(batch * w);
  const advantages = new Float64Array(batch * w);
  const prompt = Math.floor(seqLen / 4);
  for (let b = 0; b < batch; b++) {
    for (let t = prompt; t < w; t++) {
      lossMask[b * w + t] = 1;
      oldLogprobs[b * w + t] = -2 - 0.5 * Math.sin(b * 7 + t);
      advantages[b * w + t] = b % 2 === 0 ? 1 : -1;
    }
  }
  return {
    lossMask,
    oldLogprobs,
    advantages,
    anchors: Array.from({ length: batch }, (_, b) => seqLen - 3 - (b % 3)),
    groups: Array.from({ length: batch }, (_, b) => Math.floor(b / GROUP)),
    correct: Array.from({ length: batch }, (_, b) => (b % GROUP < GROUP / 2 + 1 ? 1 : 0)),
    normalizers: { clipped_pg: batch * (w - prompt), hidden_align: batch },
  };
}

const PG: LossSpec = { name: "clipped_pg" };
const ALIGN: LossSpec = { name: "hidden_align", weight: 0.1 };

interface Shape {
  label: string;
  config: Qwen3Config;
  weights: () => Promise<Qwen3Weights> | Qwen3Weights;
  batch: number;
  seqLen: number;
  once: boolean;
}

const shapes: Shape[] = [
  {
    label: "tiny",
    config: tinyConfig,
    weights: () => loadQwen3Weights(tinyDir, tinyConfig),
    batch: 8,
    seqLen: 64,
    once: false,
  },
  {
    label: label06,
    config: config06,
    weights: () => randomWeights(config06),
    batch: benchFull() ? 8 : slow ? 4 : 8,
    seqLen: benchFull() ? 512 : slow ? 32 : 256,
    once: slow,
  },
];

const results = new Map<string, { ms: number[]; peak: number }>();

function summary(shape: Shape): string | undefined {
  const a = results.get(`${shape.label}|pg`);
  const b = results.get(`${shape.label}|pg+align`);
  if (!a || !b || a.ms.length === 0 || b.ms.length === 0) return undefined;
  const [ta, tb] = [Math.min(...a.ms), Math.min(...b.ms)];
  return `${shape.label}, LoRA r=16, ${shape.batch}×${shape.seqLen} tokens: clipped_pg ` +
    `${ta.toFixed(1)} ms, peak ${(a.peak / MiB).toFixed(1)} MiB; + 0.1·hidden_align ` +
    `${tb.toFixed(1)} ms, peak ${(b.peak / MiB).toFixed(1)} MiB; time ratio ` +
    `${(tb / ta).toFixed(3)}, memory ratio ${(b.peak / a.peak).toFixed(3)} (target ≤ 1.05; ` +
    `${shape.once ? "one step each, incl. pipeline compilation" : `best of ${a.ms.length}`}) on ` +
    gpu.description;
}

for (const shape of shapes) {
  const weights = await shape.weights();
  for (const [kind, terms] of [["pg", [PG]], ["pg+align", [PG, ALIGN]]] as const) {
    const ctx = new GpuContext(gpu);
    const model = new WebGpuQwen3(ctx, shape.config, weights);
    const lora = createLora(loraConfig({ r: 16, targetModules: "all-linear" }), shape.config, {
      seed: 0,
    });
    model.setAdapters(lora);
    const backend = createTrainBackend(model, { mode: "adapters", params: loraParams(lora) });
    const { batch, seqLen } = shape;
    const inputIds = Array.from(
      { length: batch },
      (_, b) =>
        Array.from({ length: seqLen }, (_, t) => (b * 131 + t * 7) % shape.config.vocabSize),
    );
    const request: ObjectiveRequest = { terms: [...terms], inputs: rlInputs(batch, seqLen) };
    const record = { ms: [] as number[], peak: 0 };
    results.set(`${shape.label}|${kind}`, record);
    const step = async () => {
      ctx.resetPeak();
      const t0 = performance.now();
      await backend.objectiveAndGrads({ inputIds }, request);
      record.ms.push(performance.now() - t0);
      record.peak = Math.max(record.peak, ctx.peakBytes);
    };
    if (shape.once) {
      await step();
      backend.dispose();
      model.dispose();
      continue;
    }
    Deno.bench({
      name: `RL step ${shape.label} ${kind} ${batch}×${seqLen}`,
      group: shape.label,
      baseline: kind === "pg",
      n: 5,
      warmup: 1,
      async fn(b) {
        b.start();
        await step();
        b.end();
      },
    });
  }
  if (shape.once) console.log(summary(shape));
  else addEventListener("unload", () => console.log(summary(shape) ?? ""));
}
