// Training-step throughput (tokens/s) and peak GPU memory of the WebGPU backend: forward, a loss
// hook writing d loss / d logprobs on the GPU, backward with per-layer recomputation (or with every
// layer's activations kept: HALO_BENCH_FULL=1 or HALO_KEEP_ACTIVATIONS=1), one 4-byte
// readback per step (as a trainer reading its loss), then the optimizer as the SFT trainer's
// device path runs it (trainer/sft.ts: GpuAdamw.update(): the gradient norm with its readback,
// then AdamW on every trainable tensor, submitted and not awaited, so the next step's readback
// waits for it: a timed step after the first pays the previous step's AdamW, as in the training
// loop), for LoRA (r=16 on every projection, "adapters" mode) and full fine-tuning; comparable to
// HF + PEFT's step with torch AdamW (../shared/gpu/torch_baselines.py). Models: the tiny fixture
// and a Qwen3-0.6B-shaped random model (cut to 2 layers and a 4096 vocabulary on software
// adapters; HALO_BENCH_FULL=1 runs the real shape). Each case has its own GpuContext, so its peak
// is that model's alone: weights, adapters, gradients, AdamW moments, step workspace and cotangent
// uploads. On a software adapter (unless HALO_BENCH_FULL=1) the 0.6B-shaped cases time one step
// each while loading, since Deno.bench calls a function at least 3 times and one step there takes
// about a minute.
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import type { Qwen3Config } from "../model/config.ts";
import { readQwen3Config } from "../model/config.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { GpuAdamw } from "../trainer/gpu_adamw.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const gpu = await createGpu();
console.log(`adapter: ${gpu.description}`);
const slow = gpu.isFallbackAdapter && !benchFull();
// Keep every layer's activations for the backward (trainer.keepActivations) instead of
// recomputing them, as HF + PEFT without gradient checkpointing does: at full size (Qwen3-0.6B,
// 4096 tokens: +9.5 GB), or as HALO_KEEP_ACTIVATIONS=1|0 says.
const keepEnv = Deno.env.get("HALO_KEEP_ACTIVATIONS");
const keep = keepEnv === undefined ? benchFull() : keepEnv === "1";

const tinyDir = new URL("../tests/fixtures/qwen3-tiny", import.meta.url).pathname;
const tinyConfig = await readQwen3Config(tinyDir);
const tinyWeights = await loadQwen3Weights(tinyDir, tinyConfig);
const config06 = benchFull() ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 2, vocab: 4096 });
const weights06 = randomWeights(config06);
const label06 = benchFull() ? "qwen3-0.6B shape" : "qwen3-0.6B shape (2 layers, vocab 4096)";

/** Floats of the matmul weights of a config (projections and LM head). */
function matmulParams(c: Qwen3Config): { layer: number; head: number } {
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  const h = c.hiddenSize;
  return {
    layer: c.numHiddenLayers * (2 * h * qd + 2 * h * kvd + 3 * h * c.intermediateSize),
    head: c.vocabSize * h,
  };
}

const MiB = 2 ** 20;

interface Case {
  label: string;
  config: Qwen3Config;
  weights: typeof tinyWeights;
  mode: "adapters" | "full";
  batch: number;
  seqLen: number;
  n: number;
  warmup: number;
  /**
   * Time one step at load instead of registering a Deno.bench (which calls its function at least
   * 3 times): a step of the cut 0.6B shape takes about a minute on a loaded 2-core llvmpipe.
   */
  once: boolean;
}

const cases: Case[] = [];
for (const mode of ["adapters", "full"] as const) {
  cases.push({
    label: "tiny",
    config: tinyConfig,
    weights: tinyWeights,
    mode,
    batch: 2,
    seqLen: 64,
    n: 2,
    warmup: 1,
    once: false,
  });
}
for (const mode of ["adapters", "full"] as const) {
  cases.push({
    label: label06,
    config: config06,
    weights: weights06,
    mode,
    // HALO_BENCH_FULL: 8 × 512, the shape of the HF + PEFT baseline (../shared/gpu/torch_baselines.py).
    batch: benchFull() ? 8 : slow ? 1 : 4,
    seqLen: benchFull() ? 512 : slow ? 64 : 256,
    n: 5,
    warmup: 1,
    once: slow,
  });
}

for (const c of cases) {
  const ctx = new GpuContext(gpu);
  const model = new WebGpuQwen3(ctx, c.config, c.weights);
  const weightBytes = ctx.allocatedBytes;
  const lora = createLora(loraConfig({ r: 16, targetModules: "all-linear" }), c.config, {
    seed: 0,
  });
  if (c.mode === "adapters") model.setAdapters(lora);
  const params = model.gradients(c.mode).reduce((s, p) => s + p.n, 0);
  // As an SFT run's defaults: clipping at norm 1, decay 0.01 (HF's torch AdamW: lr 1e-4).
  const opt = new GpuAdamw(model, c.mode, { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1 });
  const restBytes = ctx.allocatedBytes;
  const tokens = c.batch * c.seqLen;
  const inputIds = Array.from(
    { length: c.batch },
    (_, b) => Array.from({ length: c.seqLen }, (_, t) => (b * 131 + t * 7) % c.config.vocabSize),
  );
  // d loss / d logprobs = −1/tokens everywhere (a token-mean NLL), written on the GPU.
  const ones = ctx.upload(new Float32Array(tokens).fill(1), "ones");
  const times: number[] = [];
  const name = `train step ${c.label} ${c.mode === "adapters" ? "LoRA r=16" : "full"} ` +
    `${c.batch}×${c.seqLen} tokens${keep ? " (activations kept)" : ""}`;
  const step = async () => {
    const t0 = performance.now();
    const enc = ctx.device.createCommandEncoder();
    const { acts } = await model.encodeTrainStep(enc, { inputIds }, {
      mode: c.mode,
      keepActivations: keep,
      cotangents: { logprobs: true, lastHidden: false },
      lossHook: (pass, _acts, cot) =>
        encodeAdd(ctx, pass, { x: ones, y: cot.dLogprobs, n: tokens, alpha: -1 / tokens }),
    });
    await readback(ctx, [{ buffer: acts.lse, offset: 0, size: 4 }], enc);
    await opt.update();
    times.push(performance.now() - t0);
  };
  const report = (): string | undefined => {
    if (times.length === 0) return undefined;
    const best = Math.min(...times);
    const p = matmulParams(c.config);
    // forward 2·P·n, recomputation 2·P_layers·n (not with kept activations), dx 2·P·n, and dW
    // 2·P·n in full mode.
    const flops = tokens * 2 *
      ((c.mode === "full" ? 3 : 2) * (p.layer + p.head) + (keep ? 0 : p.layer));
    const line =
      `${name}: ${(tokens / (best / 1e3)).toFixed(1)} tokens/s, ~${
        (flops / (best / 1e3) / 1e9).toFixed(2)
      } GFLOP/s (${c.once ? "one step, incl. pipeline compilation" : `best of ${times.length}`}, ` +
      `${best.toFixed(0)} ms, AdamW included); ${params} trainable floats; GPU memory: weights ` +
      `${(weightBytes / MiB).toFixed(1)} MiB, at rest ${(restBytes / MiB).toFixed(1)} MiB, ` +
      `peak ${(ctx.peakBytes / MiB).toFixed(1)} MiB on ${gpu.description}`;
    return line;
  };
  if (c.once) {
    await step();
    console.log(report());
    model.dispose();
    continue;
  }
  Deno.bench({
    name,
    group: `${c.label} ${c.mode}`,
    n: c.n,
    warmup: c.warmup,
    async fn(b) {
      b.start();
      await step();
      b.end();
      // The best so far after every call (perf_table.ts takes the best), in case the run is cut
      // short by a time limit before the summary at unload.
      if (c.mode === "adapters") console.log(report());
    },
  });
  addEventListener("unload", () => {
    const line = report();
    if (line) console.log(line);
  });
}
