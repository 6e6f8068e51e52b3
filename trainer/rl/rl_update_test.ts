import { ok, strictEqual } from "node:assert/strict";
import { loadModel } from "../../model/load_model.ts";
import { loadTokenizer } from "../../model/tokenizer.ts";
import { createTrainBackend } from "../backend.ts";
import { adamw } from "../optim/mod.ts";
import { applyUpdates } from "../optim/mod.ts";
import { buildRows } from "./build_rows.ts";
import { DEFAULT_RL_CONFIG } from "./config.ts";
import { forwardPass } from "./forward_pass.ts";
import { arithmeticPrompts } from "./prompt_data.ts";
import { promptIds } from "./prompt_template.ts";
import { rlUpdate } from "./rl_update.ts";
import { sampleGroups } from "./rollout.ts";
import { scoreRollout } from "./score_rollout.ts";

Deno.test("rlUpdate() raises the surrogate Σ A·log p; most rows move the way of their advantage", async () => {
  const dir = "models/arithmetic-tiny";
  const tokenizer = await loadTokenizer(dir);
  const model = await loadModel(dir, { backend: "cpu", warn: false });
  const backend = createTrainBackend(model, { mode: "full" });
  const prompts = arithmeticPrompts("train", { size: 2, seed: 3, digits: 1, maxTerms: 2 });
  const { groups } = await sampleGroups(
    backend,
    prompts.map((p) => promptIds(tokenizer, p.question, { template: "task" })),
    { tokenizer, groupSize: 6, maxNewTokens: 20, temperature: 1.5, seed: 5, firstGroup: 0 },
  );
  const scored = groups.map((rollouts, g) => ({
    rollouts,
    // A synthetic reward (longer is better) so that every group is mixed whatever the model says.
    scores: rollouts.map((r, i) => ({
      ...scoreRollout(
        { text: r.text, length: r.tokens.length, truncated: false },
        prompts[g].gold,
        {
          mode: "dapo",
          budgetMs: 0,
          maxNewTokens: 20,
          overlongBuffer: 0,
          overlongFactor: 1,
        },
      ),
      reward: i % 2 === 0 ? 1 : -1,
    })),
  }));
  const rows = buildRows(scored, [], {
    advantage: "grpo",
    anchor: "before-marker",
    overlongFilter: false,
    seed: 0,
  });
  const sums = async () =>
    (await forwardPass(backend, rows, {
      padId: 52,
      microBatchSize: 4,
      layer: null,
      logprobs: true,
    }))
      .logprobs!.map((lp) => lp.reduce((a, b) => a + b, 0));
  const before = await sums();
  const optimizer = adamw({ lr: 1e-4, weightDecay: 0 });
  const result = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(backend.params.tree),
    losses: DEFAULT_RL_CONFIG.losses,
    ppoEpochs: 1,
    miniBatches: 1,
    microBatchSize: 5, // micro-batches of 5, 5, 2 rows: the accumulation across them is exercised
    padId: 52,
    maxNewTokens: 20,
    centroids: null,
  });
  backend.setParams(applyUpdates(backend.params.tree, result.updates));
  const after = await sums();
  // First order: a small step raises the surrogate Σ_i A_i · log p(response_i) (token-mean's
  // gradient is this objective's / N); and it moves most rows the way their advantage says
  // (not all: rows of one prompt share tokens).
  strictEqual(rows.filter((r) => r.advantage !== 0).length, 12);
  const surrogate = (sum: number[]) => sum.reduce((s, x, i) => s + rows[i].advantage * x, 0);
  ok(surrogate(after) > surrogate(before), `${surrogate(before)} -> ${surrogate(after)}`);
  const right = rows.filter((r, i) => Math.sign(after[i] - before[i]) === Math.sign(r.advantage));
  ok(right.length >= 9, `${right.length}/12 rows moved the way of their advantage`);
  backend.dispose();
});

Deno.test("rlUpdate() with token weights: all 1 is bit-identical to none; others change the update", async () => {
  const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
  const backend = createTrainBackend(model, { mode: "full" });
  const optimizer = adamw({ lr: 1e-3 });
  const row = (advantage: number, group: number, tokenWeights?: Float64Array) => ({
    promptIds: [1, 2],
    tokens: [3, 4, 5],
    oldLogprobs: new Float64Array([-6, -5.5, -6.5]),
    ...(tokenWeights ? { tokenWeights } : {}),
    advantage,
    policy: true,
    anchor: -1,
    group,
    correct: advantage > 0,
  });
  const run = (w: (i: number) => Float64Array | undefined) =>
    rlUpdate(backend, [row(1, 0, w(0)), row(-1, 0, w(1)), row(0.5, 1, w(2))], {
      optimizer,
      state: optimizer.init(backend.params.tree),
      ppoEpochs: 1,
      miniBatches: 1,
      microBatchSize: 2, // two micro-batches: rows with and without weights are collated apart
      padId: 0,
      maxNewTokens: 4,
      centroids: null,
      losses: [DEFAULT_RL_CONFIG.losses[0]],
    });
  const none = await run(() => undefined);
  const ones = await run(() => new Float64Array(3).fill(1));
  const same = (a: typeof none, b: typeof none) =>
    a.loss === b.loss &&
    Object.entries(a.updates).every(([k, v]) => v.every((x, i) => Object.is(x, b.updates[k][i])));
  ok(same(none, ones), "weights of 1 changed the update");
  // Only row 1 weighted (halved): the loss moves (a weight scales its token's loss, clipped or not).
  const half = await run((i) => (i === 1 ? new Float64Array(3).fill(0.5) : undefined));
  ok(!same(none, half), "weights of 0.5 changed nothing");
  backend.dispose();
  model.dispose();
});
