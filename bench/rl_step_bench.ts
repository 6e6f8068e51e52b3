// One RL step of the demo (configs/rl_arith_*.yaml sizes) on the bundled models/arithmetic-tiny,
// CPU backend, split into its parts: rollouts (4 prompts x G=8 sampled at temperature 1 through
// backend.generate, up to 40 new tokens), scoring (verifier + overlong shaping + rows), and the
// policy update (a forward pass for the anchor states, then forward + backward of DAPO's clipped
// loss + 0.1 Hidden-Align, micro-batches of 32, one AdamW update). Prints rollout tokens/s
// (generated tokens / generate time) and train tokens/s (prompt + response tokens through
// forward+backward / update time) once per group.
// Run: deno bench --allow-read --allow-env bench/rl_step_bench.ts
// Measured 2026-12-03 on the shared 2-core development machine (one thread): rollouts 5.2 s =
// 142 rollout tokens/s with this branch's CPU generation (every prefix recomputed), 0.38 s =
// ~1600-2200 tokens/s with the CPU KV cache of branch s8c-cpu-trainer merged in; scoring 2-5 ms;
// update 0.96-1.3 s = 1400-2100 train tokens/s (32 rows, 2012 tokens).
import { loadModel } from "../model/load_model.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { adamw } from "../trainer/optim/mod.ts";
import { alignCentroids } from "../trainer/losses/mod.ts";
import { arithmeticPrompts } from "../trainer/rl/prompt_data.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";
import { sampleGroups } from "../trainer/rl/rollout.ts";
import { scoreRollout } from "../trainer/rl/score_rollout.ts";
import { buildRows, type ScoredGroup } from "../trainer/rl/build_rows.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import { rlUpdate } from "../trainer/rl/rl_update.ts";
import { DEFAULT_RL_CONFIG } from "../trainer/rl/config.ts";

const DIR = "models/arithmetic-tiny";
const G = 8;
const MAX_NEW = 40;
const tokenizer = await loadTokenizer(DIR);
const model = await loadModel(DIR, { backend: "cpu", warn: false });
const backend = createTrainBackend(model, { mode: "full" });
const prompts = arithmeticPrompts("train", { size: 4, seed: 0, digits: 1, maxTerms: 3 });
const ids = prompts.map((p) => promptIds(tokenizer, p.question, { template: "task" }));
const optimizer = adamw({ lr: 0 }); // the update is computed, the parameters stay as they are
const losses = [
  DEFAULT_RL_CONFIG.losses[0],
  {
    name: "hidden_align",
    weight: 0.1,
    type: "cos-centroid",
    anchor: "before-marker",
    layer: "final",
  } as const,
];
const H = model.config.hiddenSize;

async function rollouts(seed: number) {
  const began = performance.now();
  const sampled = await sampleGroups(backend, ids, {
    tokenizer,
    groupSize: G,
    maxNewTokens: MAX_NEW,
    temperature: 1,
    seed,
    firstGroup: 0,
  });
  return { sampled, seconds: (performance.now() - began) / 1000 };
}

function score(sampled: Awaited<ReturnType<typeof rollouts>>["sampled"]): ScoredGroup[] {
  return sampled.groups.map((rs, i) => ({
    rollouts: rs,
    scores: rs.map((r) =>
      scoreRollout(
        { text: r.text, length: r.tokens.length, truncated: r.stopReason === "length" },
        prompts[i].gold,
        { mode: "dapo", budgetMs: 0, maxNewTokens: MAX_NEW, overlongBuffer: 8, overlongFactor: 1 },
      )
    ),
  }));
}

const fixed = await rollouts(1);
const groups = score(fixed.sampled);
const rows = buildRows(groups, [], {
  advantage: "grpo",
  anchor: "before-marker",
  overlongFilter: false,
  seed: 0,
});

async function update(): Promise<{ seconds: number; tokens: number }> {
  const began = performance.now();
  const pass = await forwardPass(backend, rows, { padId: 52, microBatchSize: 32, layer: "final" });
  const stacked = new Float64Array(rows.length * H);
  pass.hidden.forEach((h, i) => h && stacked.set(h, i * H));
  const centroids = alignCentroids({
    hidden: stacked,
    batch: rows.length,
    seqLen: 1,
    hiddenSize: H,
    anchors: pass.hidden.map((h) => (h === null ? -1 : 0)),
    groups: rows.map((r) => r.group),
    correct: rows.map((r) => r.correct),
  });
  const r = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(backend.params.tree),
    losses,
    ppoEpochs: 1,
    miniBatches: 1,
    microBatchSize: 32,
    padId: 52,
    maxNewTokens: MAX_NEW,
    centroids,
  });
  return { seconds: (performance.now() - began) / 1000, tokens: r.tokens };
}

let printed = false;
Deno.bench({
  name: `rollouts: 4 prompts x G=${G}, <= ${MAX_NEW} new tokens (generate)`,
  group: "rl step",
  baseline: true,
  n: 3, // seconds per iteration on the CPU: a few iterations are enough
  warmup: 1,
  async fn() {
    const r = await rollouts(2);
    if (!printed) {
      printed = true;
      console.log(
        `rollouts: ${r.sampled.generatedTokens} tokens in ${r.seconds.toFixed(2)} s = ` +
          `${(r.sampled.generatedTokens / r.seconds).toFixed(0)} rollout tokens/s`,
      );
    }
  },
});
Deno.bench({
  name: "score: verifier + overlong shaping + rows",
  group: "rl step",
  n: 20,
  warmup: 2,
  fn() {
    buildRows(score(fixed.sampled), [], {
      advantage: "grpo",
      anchor: "before-marker",
      overlongFilter: false,
      seed: 0,
    });
  },
});
let printedTrain = false;
Deno.bench({
  name: "update: anchor forward pass + clipped_pg + 0.1 hidden_align fwd/bwd + AdamW",
  group: "rl step",
  n: 3,
  warmup: 1,
  async fn() {
    const r = await update();
    if (!printedTrain) {
      printedTrain = true;
      console.log(
        `update: ${r.tokens} tokens in ${r.seconds.toFixed(2)} s = ` +
          `${(r.tokens / r.seconds).toFixed(0)} train tokens/s (${rows.length} rows)`,
      );
    }
  },
});
