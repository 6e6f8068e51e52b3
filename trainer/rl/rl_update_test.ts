import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
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
import type { ClippedPgTermConfig, RlLossTermConfig } from "./config.ts";
import type { Aggregation } from "../losses/mod.ts";
import type { RlRow } from "./rl_batch.ts";
import { rlUpdate, splitMicroBatches, splitMiniBatches } from "./rl_update.ts";
import type { TrainBackend } from "../backend.ts";
import type { ObjectiveRequest } from "../losses/mod.ts";
import { anchorCentroids } from "./anchor_centroids.ts";
import type { GradientTransformation, ParamTree } from "../types.ts";
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

// Groups of 4 rollouts (3 response tokens each, the marker in the second): `mixed` ones (2 correct)
// for the policy loss, `allCorrect` ones kept for the align term only.
function stepRows(mixed: number, allCorrect: number): RlRow[] {
  const group = (g: number, correct: boolean[]) => ({
    rollouts: correct.map(() => ({
      group: g,
      promptIds: [1],
      tokens: [5, 6, 7],
      oldLogprobs: new Float64Array(3),
      text: "x Answer: 1",
      tokenOffsets: [0, 1, 9],
      stopReason: "eos" as const,
    })),
    scores: correct.map((ok) => ({
      reward: ok ? 1 : -1,
      correct: ok,
      markerOffset: 2,
      penalty: 0,
      truncated: false,
    })),
  });
  const ids = (n: number, from: number) => Array.from({ length: n }, (_, i) => from + i);
  return buildRows(
    ids(mixed, 0).map((g) => group(g, [true, false, false, true])),
    ids(allCorrect, mixed).map((g) => group(g, [true, true, true, true])),
    { advantage: "grpo", anchor: "before-marker", overlongFilter: false, seed: 0 },
  );
}

/** What the backend saw of one micro-batch. */
interface Seen {
  update: number;
  groups: number[];
  lossTokens: number;
  alignRows: number;
  normalizers: Record<string, number>;
  terms: ObjectiveRequest["terms"];
}

// A backend that records each micro-batch's objective inputs (by update, from the dropout seed
// callback) and returns a zero loss with a unit gradient.
async function recordUpdate(
  rows: readonly RlRow[],
  miniBatches: number,
  microBatchSize: number,
  type: "cos-centroid" | "cos-pairwise" = "cos-centroid",
  /** The clipped loss's aggregation, and the groups with a centroid (default: every group). */
  extra: {
    aggregation?: Aggregation;
    centroidGroups?: readonly number[];
    pg?: Partial<ClippedPgTermConfig>;
    ppoEpochs?: number;
  } = {},
) {
  const seen: Seen[] = [];
  let update = -1;
  const tree = { w: new Float32Array(1) };
  let setParamsCalls = 0;
  const backend = {
    params: { tree, shapes: { w: [1] } },
    setParams() {
      setParamsCalls++;
    },
    objectiveAndGrads(_input: unknown, request: ObjectiveRequest) {
      const { inputs } = request;
      const alignRows = Array.from(inputs.anchors!).filter((a) => a >= 0).length;
      seen.push({
        update,
        groups: Array.from(inputs.groups!),
        lossTokens: Array.from(inputs.lossMask!).reduce((a, b) => a + b, 0),
        alignRows,
        normalizers: { ...inputs.normalizers },
        terms: request.terms,
      });
      // Metrics for rlUpdate to combine: a ratio max that falls with each call (9, 8, …: the
      // last is not the largest), a constant clip fraction, and the rows taking part.
      const metrics = {
        "loss/ratio_max": 10 - seen.length,
        "loss/pg_clipfrac": 0.5,
        "align/rows": alignRows,
      };
      return Promise.resolve({ loss: { value: 0, metrics }, grads: { w: new Float32Array([1]) } });
    },
  } as unknown as TrainBackend;
  const losses: RlLossTermConfig[] = [
    // DAPO's clipped policy-gradient term as the config's default has it.
    {
      ...DEFAULT_RL_CONFIG.losses[0] as ClippedPgTermConfig,
      ...(extra.aggregation === undefined ? {} : { aggregation: extra.aggregation }),
      ...extra.pg,
    },
    {
      name: "hidden_align",
      weight: 0.1,
      type,
      anchor: "before-marker",
      layer: "final",
    },
  ];
  // As run_rl.ts: centroids for the centroid types, none for cos-pairwise.
  const centroids = type === "cos-pairwise" ? null : new Map(
    (extra.centroidGroups ?? [...new Set(rows.map((r) => r.group))]).map((
      g,
    ) => [g, new Float64Array(2)]),
  );
  const optimizer = adamw({ lr: 1e-3 });
  const result = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(tree),
    losses,
    ppoEpochs: extra.ppoEpochs ?? 1,
    miniBatches,
    microBatchSize,
    padId: 0,
    maxNewTokens: 4,
    centroids,
    dropoutSeed: (u) => {
      update = u;
      return undefined;
    },
  });
  return { seen, result, setParamsCalls };
}

Deno.test("rlUpdate() with align-only groups: every mini-batch has its share of the policy and the align-only groups", async () => {
  const rows = stepRows(4, 4); // groups 0-3 mixed, 4-7 all correct
  strictEqual(rows.filter((r) => r.policy).length, 16);
  ok(rows.every((r) => r.anchor >= 0));
  const { seen, result } = await recordUpdate(rows, 2, 4);
  strictEqual(result.metrics["optim/updates"], 2);
  for (
    const [update, policyGroups, alignGroups] of [[0, [0, 1], [4, 5]], [1, [2, 3], [6, 7]]] as const
  ) {
    const micros = seen.filter((s) => s.update === update);
    const groups = [...new Set(micros.flatMap((s) => s.groups))];
    deepStrictEqual(groups, [...policyGroups, ...alignGroups], `update ${update}'s groups`);
    // Half the policy tokens (8 rows of 3), each micro-batch normalised by the mini-batch's count.
    strictEqual(micros.reduce((n, s) => n + s.lossTokens, 0), 24, `update ${update}'s loss tokens`);
    ok(micros.every((s) => s.normalizers.clipped_pg === 24), `update ${update}'s pg normalizer`);
    // Align rows: 2 correct per mixed group, 4 per all-correct group.
    const align = micros.reduce((n, s) => n + s.alignRows, 0);
    strictEqual(align, 2 * 2 + 2 * 4, `update ${update}'s align rows`);
    ok(
      micros.every((s) =>
        s.alignRows === 0
          ? !("hidden_align" in s.normalizers)
          : s.normalizers.hidden_align === align
      ),
      `update ${update}'s align normalizer`,
    );
  }
});

Deno.test("splitMiniBatches() shares out policy and align-only groups apart, by whole groups", () => {
  const groupsOf = (minis: RlRow[][]) => minis.map((m) => [...new Set(m.map((r) => r.group))]);
  const rows = stepRows(4, 4);
  deepStrictEqual(groupsOf(splitMiniBatches(rows, 2)), [[0, 1, 4, 5], [2, 3, 6, 7]]);
  deepStrictEqual(groupsOf(splitMiniBatches(rows, 4)), [[0, 4], [1, 5], [2, 6], [3, 7]]);
  // Uneven counts: 3 policy groups and 2 align-only ones in 2 mini-batches.
  const unevenRows = stepRows(3, 2);
  const uneven = splitMiniBatches(unevenRows, 2);
  deepStrictEqual(groupsOf(uneven), [[0, 3], [1, 2, 4]]);
  // Each mini-batch: its policy groups' rows, then its align-only groups'; nothing lost or repeated.
  ok(uneven.every((m) => m.slice(m.findIndex((r) => !r.policy)).every((r) => !r.policy)));
  strictEqual(uneven.flat().length, unevenRows.length);
  ok(unevenRows.every((r) => uneven.flat().includes(r)));
  // A policy group whose rows are all masked out (overlong filtering) counts as align-only.
  const masked = stepRows(3, 0).map((r) => (r.group === 2 ? { ...r, policy: false } : r));
  deepStrictEqual(groupsOf(splitMiniBatches(masked, 2)), [[0], [1, 2]]);
});

Deno.test("splitMiniBatches() without align-only groups or with one mini-batch: the rows cut by count as before", () => {
  // The earlier rule: `parts` contiguous runs of row counts differing by at most one.
  const byCount = <T>(items: readonly T[], parts: number): T[][] =>
    Array.from(
      { length: parts },
      (_, i) =>
        items.slice(
          Math.floor((i * items.length) / parts),
          Math.floor(((i + 1) * items.length) / parts),
        ),
    ).filter((p) => p.length > 0);
  const same = (a: RlRow[][], b: RlRow[][]) =>
    a.length === b.length &&
    a.every((m, i) => m.length === b[i].length && m.every((r, j) => r === b[i][j]));
  for (
    const [mixed, allCorrect, parts] of [[3, 0, 2], [4, 0, 3], [2, 0, 16], [0, 3, 2], [4, 4, 1], [
      1,
      2,
      1,
    ]]
  ) {
    const rows = stepRows(mixed, allCorrect);
    ok(
      same(splitMiniBatches(rows, parts), byCount(rows, parts)),
      `${mixed}+${allCorrect} groups, ${parts} parts`,
    );
  }
});

Deno.test("rlUpdate() with one mini-batch: all rows in order, align-only ones included, one normalizer", async () => {
  const rows = stepRows(2, 2);
  const { seen, result } = await recordUpdate(rows, 1, 4);
  strictEqual(result.metrics["optim/updates"], 1);
  deepStrictEqual(seen.flatMap((s) => s.groups), rows.map((r) => r.group));
  ok(seen.every((s) => s.update === 0 && s.normalizers.clipped_pg === 8 * 3));
  ok(seen.every((s) => s.normalizers.hidden_align === 2 * 2 + 2 * 4));
});

Deno.test("rlUpdate()'s normalizers by hand: policy tokens or rows per aggregation, align rows taking part", async () => {
  // stepRows(2, 1): groups 0 and 1 mixed (rows correct, wrong, wrong, correct), group 2
  // all-correct and align-only; 3 response tokens a row. Policy rows: 8 (24 tokens), non-empty.
  const rows = stepRows(2, 1);
  rows[3] = { ...rows[3], anchor: -1 }; // group 0's second correct row has no anchor
  const want: Record<Aggregation, number> = {
    "token-mean": 24,
    "seq-mean-token-sum": 8,
    "seq-mean-token-mean": 8,
    "seq-mean-token-sum-norm": 8, // the policy rows, not the align-only ones
  };
  for (const aggregation of Object.keys(want) as Aggregation[]) {
    // Group 1 has no centroid: the rows taking part are row 0 (group 0) and rows 8–11.
    const { seen } = await recordUpdate(rows, 1, 12, "cos-centroid", {
      aggregation,
      centroidGroups: [0, 2],
    });
    strictEqual(seen.length, 1, aggregation);
    strictEqual(seen[0].normalizers.clipped_pg, want[aggregation], aggregation);
    strictEqual(seen[0].normalizers.hidden_align, 5, aggregation);
    strictEqual(seen[0].alignRows, 5, aggregation);
  }
});

Deno.test("rlUpdate() hands the objective the configured terms: clip range, dual clip, length budget", async () => {
  const pg = { weight: 0.7, clipLow: 0.2, clipHigh: 0.28, dualClip: 3, aggregation: "token-mean" };
  const { seen } = await recordUpdate(stepRows(1, 0), 1, 4, "cos-centroid", {
    pg: pg as Partial<ClippedPgTermConfig>,
  });
  strictEqual(seen.length, 1);
  deepStrictEqual(seen[0].terms, [
    {
      name: "clipped_pg",
      weight: 0.7,
      // maxResponseLength is rlUpdate's maxNewTokens (4 in recordUpdate).
      options: {
        clipLow: 0.2,
        clipHigh: 0.28,
        aggregation: "token-mean",
        maxResponseLength: 4,
        dualClip: 3,
      },
    },
    { name: "hidden_align", weight: 0.1, options: { type: "cos-centroid" } },
  ]);
  // A dual clip of 0 (off) is not passed.
  const off = await recordUpdate(stepRows(1, 0), 1, 4, "cos-centroid", { pg: { dualClip: 0 } });
  ok(!("dualClip" in off.seen[0].terms[0].options!), JSON.stringify(off.seen[0].terms[0]));
});

Deno.test("rlUpdate() with 2 PPO epochs makes every update of both passes; metrics over them", async () => {
  // stepRows(2, 0): 8 rows in 2 groups; 2 mini-batches of 4 rows, micro-batches of 2 rows.
  const { seen, result, setParamsCalls } = await recordUpdate(
    stepRows(2, 0),
    2,
    2,
    "cos-centroid",
    {
      ppoEpochs: 2,
    },
  );
  // 2 epochs × 2 mini-batches = 4 updates: 3 applied through setParams, the last returned.
  deepStrictEqual(seen.map((s) => s.update), [0, 0, 1, 1, 2, 2, 3, 3]);
  strictEqual(setParamsCalls, 3);
  strictEqual(result.metrics["optim/updates"], 4);
  ok(Object.keys(result.updates).length > 0, "the last update is returned");
  // Ratio max over all 8 micro-batches (the first call's 10 − 1), the token-weighted clip fraction
  // (0.5 everywhere), and the rows taking part per epoch (the 4 correct anchored rows).
  strictEqual(result.metrics["loss/ratio_max"], 9);
  strictEqual(result.metrics["loss/pg_clipfrac"], 0.5);
  strictEqual(result.metrics["align/rows"], 4);
});

Deno.test("rlUpdate() with fewer rows than miniBatches: one update per mini-batch there is, the last returned", async () => {
  // 3 rows in 4 requested mini-batches: 3 updates; the first two applied through setParams, the
  // third returned to the caller, and the loss averaged over 3 (each micro-batch's loss is 1).
  const rows = stepRows(1, 0).slice(0, 3);
  let applied = 0;
  const tree = { w: new Float32Array(1) };
  const backend = {
    params: { tree, shapes: { w: [1] } },
    setParams() {
      applied++;
    },
    objectiveAndGrads() {
      return Promise.resolve({
        loss: { value: 1, metrics: {} },
        grads: { w: new Float32Array([1]) },
      });
    },
  } as unknown as TrainBackend;
  const optimizer = adamw({ lr: 1e-3 });
  const result = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(tree),
    losses: [DEFAULT_RL_CONFIG.losses[0]],
    ppoEpochs: 1,
    miniBatches: 4,
    microBatchSize: 1,
    padId: 0,
    maxNewTokens: 4,
    centroids: null,
  });
  strictEqual(result.metrics["optim/updates"], 3);
  strictEqual(applied, 2);
  ok(result.updates.w !== undefined && result.updates.w[0] !== 0, "the last update is returned");
  strictEqual(result.loss, 1);
});

Deno.test("rlUpdate() counts align/groups for cos-pairwise too (groups with 2+ anchored correct rows)", async () => {
  const rows = stepRows(4, 4); // 4 mixed groups (2 correct each) and 4 all-correct groups
  const pairwise = await recordUpdate(rows, 1, 16, "cos-pairwise");
  strictEqual(pairwise.result.metrics["align/groups"], 8);
  const centroid = await recordUpdate(rows, 1, 16);
  strictEqual(centroid.result.metrics["align/groups"], 8);
});

Deno.test("rlUpdate() with cos-pairwise keeps every group in one micro-batch and mini-batch (no pair lost)", async () => {
  const rows = stepRows(5, 0); // 5 groups of 4 rows, 2 correct each: 1 pair a group
  const whole = (seen: Seen[]) => {
    const where = new Map<number, Set<string>>();
    seen.forEach((s, i) => {
      for (const g of s.groups) {
        (where.get(g) ?? where.set(g, new Set()).get(g)!).add(`${s.update}/${i}`);
      }
    });
    return [...where.values()].every((places) => places.size === 1);
  };
  // 20 rows at 8 a micro-batch: cut by count they would be [6, 7, 7] and split groups.
  const one = await recordUpdate(rows, 1, 8, "cos-pairwise");
  deepStrictEqual(one.seen.map((s) => s.groups.length), [8, 8, 4]);
  ok(whole(one.seen), "each group in one micro-batch");
  ok(one.seen.every((s) => s.normalizers.hidden_align === 5), "all 5 pairs counted");
  // Two mini-batches of whole groups (2 and 3), each normalised by its own pairs.
  const two = await recordUpdate(rows, 2, 8, "cos-pairwise");
  ok(whole(two.seen), "each group in one micro-batch of one update");
  deepStrictEqual(
    [0, 1].map((u) =>
      two.seen.filter((s) => s.update === u).map((s) => s.normalizers.hidden_align)
    ),
    [[2], [3, 3]],
  );
  // The centroid types keep the cut by row count (their targets are per group already).
  const centroid = await recordUpdate(rows, 1, 8);
  deepStrictEqual(centroid.seen.map((s) => s.groups.length), [6, 7, 7]);
});

Deno.test("splitMicroBatches() packs whole groups, cutting only a group larger than the size", () => {
  const rows = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2].map((group) => ({ group }));
  const groupsOf = (micros: { group: number }[][]) => micros.map((m) => m.map((r) => r.group));
  deepStrictEqual(groupsOf(splitMicroBatches(rows, 5, { wholeGroups: true })), [
    [0, 0, 0, 1, 1],
    [2, 2, 2, 2, 2],
  ]);
  deepStrictEqual(groupsOf(splitMicroBatches(rows, 4, { wholeGroups: true })), [
    [0, 0, 0],
    [1, 1],
    [2, 2, 2, 2],
    [2],
  ]);
  deepStrictEqual(groupsOf(splitMicroBatches(rows, 4)), [[0, 0, 0], [1, 1, 2], [2, 2, 2, 2]]);
});

Deno.test("rlUpdate() gives HILO's balance term weight 1 / micro-batches and logs its mean as loss/balance", async () => {
  // 3 rows, one update, micro-batches of 1 row: each call gets balanceWeight 1/3 (the summed
  // gradients hold the mean of the micro-batches' terms), and the metric is their mean.
  const rows = stepRows(1, 0).slice(0, 3);
  const weights: (number | undefined)[] = [];
  const values = [3, 6, 12];
  const tree = { w: new Float32Array(1) };
  const backend = {
    params: { tree, shapes: { w: [1] } },
    setParams() {},
    objectiveAndGrads(_: unknown, __: unknown, options: { balanceWeight?: number }) {
      weights.push(options.balanceWeight);
      return Promise.resolve({
        loss: { value: 1, metrics: { "loss/balance": values[weights.length - 1] } },
        grads: { w: new Float32Array([1]) },
      });
    },
  } as unknown as TrainBackend;
  const optimizer = adamw({ lr: 1e-3 });
  const result = await rlUpdate(backend, rows, {
    optimizer,
    state: optimizer.init(tree),
    losses: [DEFAULT_RL_CONFIG.losses[0]],
    ppoEpochs: 1,
    miniBatches: 1,
    microBatchSize: 1,
    padId: 0,
    maxNewTokens: 4,
    centroids: null,
  });
  deepStrictEqual(weights, [1 / 3, 1 / 3, 1 / 3]);
  strictEqual(result.metrics["loss/balance"], (3 + 6 + 12) / 3);
});

Deno.test("rlUpdate()'s summed gradient does not depend on microBatchSize: each align type with the clipped loss", async () => {
  // The tiny Qwen3 fixture on the CPU backend (float64 arithmetic): 3 groups of 4 rows of random
  // prompts and responses, one align-only row (policy false), correct rows i % 3 ≠ 2, random
  // advantages, old log-probs and anchors. One mini-batch, one update: the gradient handed to
  // the optimizer is the mini-batch's, whether it was summed over 1 micro-batch or over 12
  // (4 of whole groups for cos-pairwise, which compares rows within a micro-batch).
  const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
  const backend = createTrainBackend(model, { mode: "full" });
  const H = model.config.hiddenSize;
  let seed = 1;
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const V = Math.min(model.config.vocabSize, 50);
  const token = () => 1 + Math.floor(rnd() * (V - 1));
  const rows: RlRow[] = [];
  for (let g = 0; g < 3; g++) {
    for (let i = 0; i < 4; i++) {
      const promptIds = Array.from({ length: 2 + Math.floor(rnd() * 3) }, token);
      const tokens = Array.from({ length: 1 + Math.floor(rnd() * 6) }, token);
      rows.push({
        promptIds,
        tokens,
        oldLogprobs: Float64Array.from(tokens, () => -2 - rnd() * 2),
        advantage: rnd() * 2 - 1,
        policy: !(g === 1 && i === 0),
        anchor: promptIds.length + Math.floor(rnd() * tokens.length),
        group: g,
        correct: i % 3 !== 2,
      });
    }
  }
  /** An optimizer that records the gradients and changes nothing. */
  const recorder = () => {
    const grads: ParamTree[] = [];
    const optimizer: GradientTransformation<null> = {
      init: () => null,
      update(g, state) {
        grads.push(g);
        const updates: ParamTree = {};
        for (const k of Object.keys(g)) updates[k] = new Float32Array(g[k].length);
        return { updates, state, metrics: {} };
      },
    };
    return { grads, optimizer };
  };
  const clipped = {
    name: "clipped_pg",
    weight: 1,
    clipLow: 0.2,
    clipHigh: 0.28,
    dualClip: 0,
    aggregation: "token-mean",
  } as const;
  const cases: [string, RlLossTermConfig[]][] = [
    ["clipped_pg", [clipped]],
    ...(["cos-centroid", "cos-pairwise", "mse-normalized", "mse-raw"] as const).map((type) =>
      [type, [clipped, {
        name: "hidden_align",
        weight: 0.5,
        type,
        anchor: "before-marker",
        layer: "final",
      }]] as [string, RlLossTermConfig[]]
    ),
  ];
  // The anchor states (one forward pass) and the stop-gradient targets of the centroid types,
  // over whole groups as runRl computes them.
  const pass = await forwardPass(backend, rows, { padId: 0, microBatchSize: 4, layer: "final" });
  try {
    for (const [name, losses] of cases) {
      const align = losses.find((t) => t.name === "hidden_align");
      const centroids = align?.name === "hidden_align" && align.type !== "cos-pairwise"
        ? anchorCentroids(pass.hidden, rows, { hiddenSize: H, type: align.type })
        : null;
      const run = async (microBatchSize: number) => {
        const { grads, optimizer } = recorder();
        const r = await rlUpdate(backend, rows, {
          optimizer,
          state: null,
          losses,
          ppoEpochs: 1,
          miniBatches: 1,
          microBatchSize,
          padId: 0,
          maxNewTokens: 8,
          centroids,
        });
        strictEqual(grads.length, 1, name);
        return { grad: grads[0], r };
      };
      const whole = await run(rows.length);
      const split = await run(
        align?.name === "hidden_align" && align.type === "cos-pairwise" ? 4 : 1,
      );
      // The gradients are summed in float64 and handed over as float32: the two sums differ by
      // float64 rounding (~1e-15 relative), so after the float32 rounding each element is equal
      // or 1 ulp apart, at most 2^-23 of the largest element. Bound: 2^-22.
      let diff = 0;
      let largest = 0;
      for (const k of Object.keys(whole.grad)) {
        strictEqual(split.grad[k].length, whole.grad[k].length, `${name} ${k}`);
        for (let i = 0; i < whole.grad[k].length; i++) {
          diff = Math.max(diff, Math.abs(whole.grad[k][i] - split.grad[k][i]));
          largest = Math.max(largest, Math.abs(whole.grad[k][i]));
        }
      }
      ok(largest > 1e-3, `${name}: the gradient is ${largest}`);
      ok(diff <= 2 ** -22 * largest, `${name}: gradient max diff ${diff} of max ${largest}`);
      // The loss and its terms: float64 throughout.
      for (const key of ["loss/total", "loss/pg", "loss/align", "align/rows"]) {
        const [a, b] = [whole.r.metrics[key], split.r.metrics[key]];
        if (key.includes("align") && align === undefined) continue;
        ok(
          Number.isFinite(a) && Math.abs(a - b) <= 1e-12 * Math.abs(a),
          `${name} ${key}: ${a} vs ${b}`,
        );
      }
      if (align !== undefined) ok(whole.r.metrics["loss/align"] > 0, `${name}: no align loss`);
    }
  } finally {
    backend.dispose();
  }
});
