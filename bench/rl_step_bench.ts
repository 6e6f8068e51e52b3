// RL step throughput and its time split, as runRl does one step (trainer/rl/run_rl.ts):
// generate (G rollouts of each prompt through backend.generate, sampled at temperature 1),
// score (verifier + overlong shaping), train (rows and group advantages, the no-gradient pass for
// the anchor states and the align centroids, then forward + backward of DAPO's clipped loss +
// 0.1 Hidden-Align in micro-batches and one AdamW update). Each case prints, for its fastest
// step: the split, rollout tokens/s (generated tokens / generate time), train tokens/s (prompt +
// response tokens through forward+backward / train time) and the step's tokens/s (both / step
// time). The update is computed but not applied (every iteration samples the same rollouts).
//
// Cases:
// - tiny: the bundled models/arithmetic-tiny (2 layers, hidden 64) on the arithmetic task at the
//   demo's sizes (4 prompts × G=8, ≤ 40 new tokens), full fine-tuning, on the CPU backend and on
//   the WebGPU backend (whatever adapter there is: on a machine without a GPU, Mesa's software
//   lavapipe/llvmpipe).
// - qwen3-0.6B shape: random weights of the Qwen3-0.6B shape (bench/random_model.ts), WebGPU
//   only (the float64 CPU path takes minutes a step at this size). It is cut to 2 layers and a
//   4096 vocabulary unless HALO_BENCH_FULL=1 (the real shape: 28 layers, vocabulary 151936). On a
//   hardware adapter a step is 4 prompts × G=8 with ≤ 128 new tokens; on a software one (unless
//   HALO_BENCH_FULL=1) 2 prompts × G=2 with ≤ 16 new tokens, timed once while loading (Deno.bench
//   calls a function at least 3 times, and one step there takes about two minutes). The
//   random model has no tokenizer: its ids are decoded modulo the arithmetic tokenizer's 64 ids,
//   so the verifier reads text of the right length; and since it never answers, every other
//   rollout is marked correct, with its anchor before its last token, so that the update has the
//   demo's shape (mixed groups, align rows).
//
// Run: deno bench --allow-read --allow-env bench/rl_step_bench.ts
// Measured 2026-12-03 on the shared 2-core development machine (AMD EPYC, one thread; Mesa
// lavapipe "llvmpipe (LLVM 15.0.6, 256 bits)"; load average ~4 from other jobs, so ±30%), the
// fastest of 5 steps:
// - tiny, CPU:    2.37 s = generate 0.59 s (1187 tokens, 2000 rollout tokens/s) + score 0.007 s
//                 + train 1.77 s (32 rows, 2371 tokens, 1340 train tokens/s); 1500 tokens/s
// - tiny, WebGPU: 11.3 s = generate 1.54 s (the same 1187 tokens, 770 rollout tokens/s) + score
//                 0.006 s + train 9.70 s (244 train tokens/s); 316 tokens/s: on a software
//                 adapter the CPU is 5x faster (2.6x at generation, 5.5x at training)
// - 0.6B shape cut to 2 layers / vocab 4096, WebGPU, one step with pipeline compilation: 111 s =
//                 generate 26 s (64 tokens, 2 rollout tokens/s) + train 84 s (4 rows, 212 tokens,
//                 3 train tokens/s)
import { createGpu, type Gpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import type { Qwen3Config } from "../model/config.ts";
import { readQwen3Config } from "../model/config.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import type { Qwen3Model } from "../model/model.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { loadQwen3Weights, type Qwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type TrainBackend } from "../trainer/backend.ts";
import { modelParams } from "../trainer/params.ts";
import { adamw } from "../trainer/optim/mod.ts";
import { anchorCentroids } from "../trainer/rl/anchor_centroids.ts";
import { arithmeticPrompts } from "../trainer/rl/prompt_data.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";
import { sampleGroups } from "../trainer/rl/rollout.ts";
import { type RolloutScore, scoreRollout } from "../trainer/rl/score_rollout.ts";
import { buildRows, type ScoredGroup } from "../trainer/rl/build_rows.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import { rlUpdate } from "../trainer/rl/rl_update.ts";
import { DEFAULT_RL_CONFIG } from "../trainer/rl/config.ts";
import { benchFull, qwen3_0p6bConfig, randomWeights } from "./random_model.ts";

const TINY_DIR = new URL("../models/arithmetic-tiny", import.meta.url).pathname;
const tokenizer = await loadTokenizer(TINY_DIR);
const LOSSES = [
  DEFAULT_RL_CONFIG.losses[0],
  {
    name: "hidden_align",
    weight: 0.1,
    type: "cos-centroid",
    anchor: "before-marker",
    layer: "final",
  } as const,
];

/** The time split of one RL step, in seconds, and its token counts. */
interface Split {
  generate: number;
  score: number;
  train: number;
  rolloutTokens: number;
  trainTokens: number;
  rows: number;
}

interface Case {
  label: string;
  config: Qwen3Config;
  weights: Qwen3Weights;
  backend: "cpu" | "webgpu";
  prompts: number;
  groupSize: number;
  maxNewTokens: number;
  microBatchSize: number;
  /** Mark every other rollout correct (a model that never answers). */
  forceMixed: boolean;
  /** The ids the tokenizer decodes (the random model's modulo the arithmetic vocabulary). */
  tokenizer: Tokenizer;
  /** Time one step while loading instead of a Deno.bench. */
  once: boolean;
}

/** The arithmetic tokenizer reading any id modulo its vocabulary (for random weights). */
function moduloTokenizer(t: Tokenizer, vocab: number): Tokenizer {
  const map = (ids: readonly number[]) => ids.map((id) => id % vocab);
  // What sampleGroups reads of a tokenizer.
  const reader: Pick<Tokenizer, "decode" | "tokenOffsets"> = {
    decode: (ids, options) => t.decode(map(ids), options),
    tokenOffsets: (ids, options) => t.tokenOffsets(map(ids), options),
  };
  return reader as Tokenizer;
}

function makeModel(c: Case, gpu: Gpu | null): { model: Qwen3Model; backend: TrainBackend } {
  if (c.backend === "cpu") {
    const model = new CpuQwen3(c.config, c.weights);
    return { model, backend: createTrainBackend(model, { mode: "full" }) };
  }
  const model = new WebGpuQwen3(new GpuContext(gpu!), c.config, c.weights);
  const params = modelParams(c.weights, c.config);
  return { model, backend: createTrainBackend(model, { mode: "full", params }) };
}

/** One RL step without the optimizer's commit, timed part by part. */
async function rlStep(c: Case, backend: TrainBackend, ids: number[][], golds: string[]) {
  const eos = c.config.eosTokenIds;
  const padId = c.config.padTokenId ?? eos[0] ?? 0;
  let t0 = performance.now();
  const sampled = await sampleGroups(backend, ids, {
    tokenizer: c.tokenizer,
    groupSize: c.groupSize,
    maxNewTokens: c.maxNewTokens,
    temperature: 1,
    seed: 2,
    eosTokenIds: eos,
    firstGroup: 0,
  });
  const generate = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const groups: ScoredGroup[] = sampled.groups.map((rollouts, i) => ({
    rollouts,
    scores: rollouts.map((r) =>
      scoreRollout(
        { text: r.text, length: r.tokens.length, truncated: r.stopReason === "length" },
        golds[i],
        {
          mode: "dapo",
          budgetMs: 0,
          maxNewTokens: c.maxNewTokens,
          overlongBuffer: 8,
          overlongFactor: 1,
        },
      )
    ),
  }));
  const score = (performance.now() - t0) / 1000;
  if (c.forceMixed) {
    for (const g of groups) {
      g.scores = g.rollouts.map((r, j): RolloutScore => ({
        ...g.scores[j],
        correct: j % 2 === 0,
        reward: j % 2 === 0 ? 1 : -1,
        markerOffset: r.tokenOffsets.length > 1 ? r.tokenOffsets[r.tokenOffsets.length - 1] : -1,
      }));
    }
  }

  t0 = performance.now();
  const rows = buildRows(groups, [], {
    advantage: "grpo",
    anchor: "before-marker",
    overlongFilter: false,
    seed: 0,
  });
  const pass = await forwardPass(backend, rows, {
    padId,
    microBatchSize: c.microBatchSize,
    layer: "final",
  });
  const centroids = anchorCentroids(pass.hidden, rows, { hiddenSize: c.config.hiddenSize });
  const optimizer = adamw({ lr: 1e-5 });
  const r = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(backend.params.tree),
    losses: LOSSES,
    ppoEpochs: 1,
    miniBatches: 1,
    microBatchSize: c.microBatchSize,
    padId,
    maxNewTokens: c.maxNewTokens,
    centroids,
  });
  const train = (performance.now() - t0) / 1000;
  return {
    generate,
    score,
    train,
    rolloutTokens: sampled.generatedTokens,
    trainTokens: r.tokens,
    rows: rows.length,
  } satisfies Split;
}

function report(c: Case, device: string, splits: Split[], once: boolean): string {
  const best = splits.reduce((a, b) =>
    a.generate + a.score + a.train <= b.generate + b.score + b.train ? a : b
  );
  const total = best.generate + best.score + best.train;
  const s = (x: number) => `${x.toFixed(x < 0.1 ? 3 : 2)} s`;
  return `rl step ${c.label} on ${c.backend} (${device}): ${s(total)} = generate ` +
    `${s(best.generate)} (${best.rolloutTokens} tokens, ` +
    `${(best.rolloutTokens / best.generate).toFixed(0)} rollout tokens/s) + score ` +
    `${s(best.score)} + train ${s(best.train)} (${best.rows} rows, ${best.trainTokens} tokens, ` +
    `${(best.trainTokens / best.train).toFixed(0)} train tokens/s); step ` +
    `${((best.rolloutTokens + best.trainTokens) / total).toFixed(0)} tokens/s ` +
    `(${once ? "one step, incl. pipeline compilation" : `best of ${splits.length}`})`;
}

let gpu: Gpu | null = null;
try {
  gpu = await createGpu();
} catch (error) {
  console.log(`no WebGPU adapter (${(error as Error).message}): CPU cases only`);
}
const full = benchFull();

const tinyConfig = await readQwen3Config(TINY_DIR);
const tinyWeights = await loadQwen3Weights(TINY_DIR, tinyConfig);
const cases: Case[] = (["cpu", "webgpu"] as const).map((backend) => ({
  label: "arithmetic-tiny 4 prompts x G=8, <= 40 new tokens",
  config: tinyConfig,
  weights: tinyWeights,
  backend,
  prompts: 4,
  groupSize: 8,
  maxNewTokens: 40,
  microBatchSize: 32,
  forceMixed: false,
  tokenizer,
  once: false,
}));
const slow = gpu === null || (gpu.isFallbackAdapter && !full);
const config06 = full ? qwen3_0p6bConfig() : qwen3_0p6bConfig({ layers: 2, vocab: 4096 });
const size06 = slow
  ? { prompts: 2, groupSize: 2, maxNewTokens: 16, microBatchSize: 4 }
  : { prompts: 4, groupSize: 8, maxNewTokens: 128, microBatchSize: 8 };
cases.push({
  label: `qwen3-0.6B shape${full ? "" : " (2 layers, vocab 4096)"} ${size06.prompts} prompts x ` +
    `G=${size06.groupSize}, <= ${size06.maxNewTokens} new tokens`,
  config: config06,
  weights: randomWeights(config06),
  backend: "webgpu",
  ...size06,
  forceMixed: true,
  tokenizer: moduloTokenizer(tokenizer, tinyConfig.vocabSize),
  once: slow,
});

const prompts = arithmeticPrompts("train", { size: 4, seed: 0, digits: 1, maxTerms: 3 });
for (const c of cases) {
  if (c.backend === "webgpu" && gpu === null) continue;
  const { model, backend } = makeModel(c, gpu);
  const device = model.device;
  const chosen = prompts.slice(0, c.prompts);
  const ids = chosen.map((p) => promptIds(tokenizer, p.question, { template: "task" }));
  const golds = chosen.map((p) => p.gold);
  const splits: Split[] = [];
  if (c.once) {
    splits.push(await rlStep(c, backend, ids, golds));
    console.log(report(c, device, splits, true));
    backend.dispose();
    model.dispose();
    continue;
  }
  Deno.bench({
    name: `rl step ${c.label} (${c.backend})`,
    group: `rl step ${c.config === tinyConfig ? "tiny" : "0.6B"}`,
    baseline: c.backend === "cpu",
    n: 3,
    warmup: 1,
    async fn(b) {
      b.start();
      splits.push(await rlStep(c, backend, ids, golds));
      b.end();
    },
  });
  addEventListener("unload", () => {
    if (splits.length > 0) console.log(report(c, device, splits, false));
  });
}
