/**
 * The policy update of one RL step: `ppoEpochs` passes over the rows, each split into
 * `miniBatches` mini-batches (one optimizer update each; see {@linkcode splitMiniBatches}), each
 * split into micro-batches of at most `microBatchSize` rows whose gradients are summed. Every
 * micro-batch's policy loss is normalised by its mini-batch's loss-token count (token-mean over
 * the mini-batch) and its align loss by the mini-batch's align rows, with the group centroids
 * computed once over whole groups, so the summed gradient is exactly the mini-batch's. HILO's
 * load-balancing term (adapters with `balanceCoef` > 0) takes `balanceWeight = 1 / micro-batches`:
 * the update's term is the mean of its micro-batches' (metric `"loss/balance"`).
 *
 * With align-only groups (`alignKeepAllCorrect`: groups with no row in the policy loss) next to
 * policy groups, the policy groups and the align-only groups are split into `miniBatches` parts
 * each, by whole groups, and mini-batch `i` takes part `i` of both: every update trains on its
 * share of the policy groups (DAPO/verl's `miniBatches` equal policy updates) and of the
 * align-only ones. Otherwise the rows are cut into `miniBatches` contiguous runs of (nearly)
 * equal row counts, as before.
 *
 * @module
 */
import type { LossOutput, ParamTree } from "../types.ts";
import type { GpuAdamw } from "../gpu_adamw.ts";
import type { GradientTransformation } from "../types.ts";
import type { AccumulatingBackend, TrainBackend } from "../backend.ts";
import { applyUpdates, globalNorm } from "../optim/mod.ts";
import type { RlLossTermConfig } from "./config.ts";
import { collateRl, type RlRow } from "./rl_batch.ts";
import type { LossSpec, ObjectiveInputs } from "../losses/mod.ts";
import { withMicroBatchKey } from "./micro_batch_key.ts";

/**
 * Options of {@linkcode rlUpdate}.
 *
 * @example Usage
 * ```ts ignore
 * import type { RlUpdateOptions } from "./rl_update.ts";
 * declare const options: RlUpdateOptions<unknown>;
 * ```
 */
export interface RlUpdateOptions<S> {
  /** The optimizer (one update per mini-batch). */
  optimizer: GradientTransformation<S>;
  /** Its state before the step. */
  state: S;
  /** The loss terms and weights. */
  losses: readonly RlLossTermConfig[];
  /** Passes over the rows. */
  ppoEpochs: number;
  /**
   * Optimizer updates per pass: the rows split by {@linkcode splitMiniBatches} (policy groups and
   * align-only groups each shared out over the updates).
   */
  miniBatches: number;
  /** Most rows per forward/backward. */
  microBatchSize: number;
  /** The padding id. */
  padId: number;
  /** The response length limit (Dr. GRPO's normaliser). */
  maxNewTokens: number;
  /** Align targets per contributing group (from `groupCentroids`), or `null`. */
  centroids: Map<number, Float64Array> | null;
  /** Dropout seed of micro-batch `micro` of update `update`; default none. */
  dropoutSeed?: (update: number, micro: number) => number | undefined;
  /**
   * A GPU-resident optimizer and the WebGPU backend it updates: gradients accumulate in the GPU's
   * buffers and every update (the last one too) is applied there; `optimizer`/`state` are then
   * passed through unchanged (the caller keeps the host state for checkpoints). Default: the
   * host optimizer.
   */
  device?: { optimizer: GpuAdamw; backend: AccumulatingBackend };
}

/**
 * Result of {@linkcode rlUpdate}: every update but the last is already applied; the last one is
 * returned for the caller to apply (after its finiteness checks).
 *
 * @example Usage
 * ```ts ignore
 * import type { RlUpdateResult } from "./rl_update.ts";
 * declare const result: RlUpdateResult<unknown>;
 * console.log(result.loss, result.metrics["loss/pg_clipfrac"]);
 * ```
 */
export interface RlUpdateResult<S> {
  /** The objective averaged over the updates. */
  loss: number;
  /** The last update, not applied yet. */
  updates: ParamTree;
  /** The optimizer state after the last update. */
  state: S;
  /** Loss and optimizer metrics. */
  metrics: Record<string, number>;
  /** Tokens through forward/backward. */
  tokens: number;
  /** True when every update was applied on the device (`updates` is then empty). */
  applied?: boolean;
}

function split<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < parts; i++) {
    const a = Math.floor((i * items.length) / parts);
    const b = Math.floor(((i + 1) * items.length) / parts);
    if (b > a) out.push(items.slice(a, b));
  }
  return out;
}

/** Part `i` of `parts` of `items` (contiguous, sizes differing by at most one). */
function part<T>(items: readonly T[], i: number, parts: number): T[] {
  return items.slice(
    Math.floor((i * items.length) / parts),
    Math.floor(((i + 1) * items.length) / parts),
  );
}

/**
 * The mini-batches of one pass over a step's rows (one optimizer update each).
 *
 * A group whose rows are all outside the policy loss (`policy: false`: an align-only group of
 * `alignKeepAllCorrect`) is an align-only group; the others are policy groups. When there are
 * both and `parts > 1`, the policy groups and the align-only groups are each split into `parts`
 * contiguous runs of whole groups (group counts differing by at most one, in row order), and
 * mini-batch `i` is run `i` of the policy groups followed by run `i` of the align-only groups.
 * So every update has its share of the policy groups, and the align term's rows are spread over
 * the updates too. Otherwise (one part, or only one kind of group) the rows are cut into `parts`
 * contiguous runs of row counts differing by at most one, regardless of groups, unless
 * `wholeGroups` is set: then the groups (of one kind) are cut into `parts` runs of whole groups
 * as above (the cos-pairwise align term compares rows of a group within one backward call, so
 * a group cut in two would lose its pairs across the cut). Empty mini-batches (fewer groups or
 * rows than `parts`) are left out.
 *
 * The normalisers of the losses (token-mean's loss tokens, the align term's rows or pairs) are
 * then counted per mini-batch by {@linkcode rlUpdate}; the align targets are per group, computed
 * once per step over whole groups, so they do not depend on the split.
 *
 * @param rows The step's rows (group ids and policy flags are read).
 * @param parts The number of mini-batches, `miniBatches`.
 * @param options `wholeGroups`: never cut a group (default false).
 * @returns The mini-batches, each a list of rows.
 *
 * @example Two mixed groups and two align-only groups in two mini-batches
 * ```ts
 * import { splitMiniBatches } from "./rl_update.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const rows = [0, 0, 1, 1, 2, 2, 3, 3].map((group) => ({ group, policy: group < 2 }));
 * const minis = splitMiniBatches(rows, 2);
 * deepStrictEqual(minis.map((m) => m.map((r) => r.group)), [[0, 0, 2, 2], [1, 1, 3, 3]]);
 * ```
 */
export function splitMiniBatches<T extends Pick<RlRow, "group" | "policy">>(
  rows: readonly T[],
  parts: number,
  options: { wholeGroups?: boolean } = {},
): T[][] {
  if (parts <= 1) return split(rows, parts);
  const policy: T[][] = [];
  const alignOnly: T[][] = [];
  for (const g of byGroup(rows)) (g.some((r) => r.policy) ? policy : alignOnly).push(g);
  if ((policy.length === 0 || alignOnly.length === 0) && !options.wholeGroups) {
    return split(rows, parts);
  }
  const out: T[][] = [];
  for (let i = 0; i < parts; i++) {
    const mini = [...part(policy, i, parts).flat(), ...part(alignOnly, i, parts).flat()];
    if (mini.length > 0) out.push(mini);
  }
  return out;
}

/** The rows of each group, groups in order of their first row. */
function byGroup<T extends Pick<RlRow, "group">>(rows: readonly T[]): T[][] {
  const groups = new Map<number, T[]>();
  for (const r of rows) {
    const g = groups.get(r.group);
    if (g) g.push(r);
    else groups.set(r.group, [r]);
  }
  return [...groups.values()];
}

/**
 * The micro-batches of a mini-batch (one backward call each, at most `size` rows): the rows cut
 * into the fewest runs, of row counts differing by at most one; or, with `wholeGroups`, whole
 * groups packed in order into runs of at most `size` rows (a group of more than `size` rows is
 * cut into runs of `size`; config.ts refuses `rl.microBatchSize < rl.groupSize` with the
 * cos-pairwise term).
 *
 * @param mini The mini-batch's rows.
 * @param size `microBatchSize`.
 * @param options `wholeGroups`: keep each group in one micro-batch (default false).
 * @returns The micro-batches.
 *
 * @example Five groups of 8 rows at 32 rows a micro-batch
 * ```ts
 * import { splitMicroBatches } from "./rl_update.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const rows = Array.from({ length: 40 }, (_, i) => ({ group: Math.floor(i / 8) }));
 * deepStrictEqual(splitMicroBatches(rows, 32).map((m) => m.length), [20, 20]);
 * deepStrictEqual(splitMicroBatches(rows, 32, { wholeGroups: true }).map((m) => m.length), [32, 8]);
 * ```
 */
export function splitMicroBatches<T extends Pick<RlRow, "group">>(
  mini: readonly T[],
  size: number,
  options: { wholeGroups?: boolean } = {},
): T[][] {
  if (!options.wholeGroups) return split(mini, Math.ceil(mini.length / size));
  const out: T[][] = [];
  let current: T[] = [];
  for (const group of byGroup(mini)) {
    if (current.length > 0 && current.length + group.length > size) {
      out.push(current);
      current = [];
    }
    for (let i = 0; i < group.length; i += size) {
      const piece = group.slice(i, i + size);
      if (current.length + piece.length > size) {
        out.push(current);
        current = [];
      }
      current.push(...piece);
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

function addInto(sum: Record<string, Float64Array>, grads: ParamTree): void {
  for (const [name, g] of Object.entries(grads)) {
    const s = sum[name] ??= new Float64Array(g.length);
    for (let i = 0; i < g.length; i++) s[i] += g[i];
  }
}

/**
 * Runs the PPO epochs over the rows (see the module doc): each pass is split into mini-batches by
 * {@linkcode splitMiniBatches}. A row takes part in the align term when it is correct, has an
 * anchor, and its group has a centroid.
 *
 * @param backend The train backend.
 * @param rows The step's rows, group by group.
 * @param options Optimizer, loss terms and batch split.
 * @returns The final update (unapplied), the optimizer state and metrics.
 * @throws {RangeError} When there are no rows.
 *
 * @example One update of the clipped policy loss on the fixture model
 * ```ts
 * import { rlUpdate } from "./rl_update.ts";
 * import { createTrainBackend } from "../backend.ts";
 * import { loadModel } from "../../model/load_model.ts";
 * import { adamw } from "../optim/mod.ts";
 * import { ok } from "node:assert/strict";
 *
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const optimizer = adamw({ lr: 1e-3 });
 * const row = (advantage: number) => ({
 *   promptIds: [1, 2], tokens: [3, 4], oldLogprobs: new Float64Array([-6, -6]), advantage,
 *   policy: true, anchor: -1, group: 0, correct: advantage > 0,
 * });
 * const result = await rlUpdate(backend, [row(1), row(-1)], {
 *   optimizer, state: optimizer.init(backend.params.tree), ppoEpochs: 1, miniBatches: 1,
 *   microBatchSize: 1, padId: 0, maxNewTokens: 4, centroids: null,
 *   losses: [{
 *     name: "clipped_pg", weight: 1, clipLow: 0.2, clipHigh: 0.28, dualClip: 0,
 *     aggregation: "token-mean",
 *   }],
 * });
 * ok(Number.isFinite(result.loss) && result.metrics["optim/grad_norm"] > 0);
 * ```
 */
export async function rlUpdate<S>(
  backend: TrainBackend,
  rows: readonly RlRow[],
  options: RlUpdateOptions<S>,
): Promise<RlUpdateResult<S>> {
  if (rows.length === 0) {
    throw new RangeError("Cannot run the RL update: there are no rows to train on");
  }
  const { device } = options;
  const pg = options.losses.find((t) => t.name === "clipped_pg");
  const align = options.losses.find((t) => t.name === "hidden_align");
  const centroids = options.centroids ?? new Map<number, Float64Array>();
  // The objective as data (the loss registry's terms): each backend runs it where the model's
  // outputs are (float64 on the CPU; loss kernels inside the GPU training step).
  const terms = options.losses.map((t): LossSpec =>
    t.name === "clipped_pg"
      ? {
        name: "clipped_pg",
        weight: t.weight,
        options: {
          clipLow: t.clipLow,
          clipHigh: t.clipHigh,
          aggregation: t.aggregation,
          maxResponseLength: options.maxNewTokens,
          ...(t.dualClip > 1 ? { dualClip: t.dualClip } : {}),
        },
      }
      : { name: "hidden_align", weight: t.weight, options: { type: t.type } }
  );
  // A row takes part when it is correct and anchored and its group has a target: a centroid,
  // or for cos-pairwise (no stop-gradient target) at least one other such row.
  const pairwise = align !== undefined && align.type === "cos-pairwise";
  const anchored = new Map<number, number>();
  for (const r of rows) {
    if (r.correct && r.anchor >= 0) anchored.set(r.group, (anchored.get(r.group) ?? 0) + 1);
  }
  const takesPart = (r: RlRow): boolean =>
    r.correct && r.anchor >= 0 &&
    (pairwise ? (anchored.get(r.group) ?? 0) >= 2 : centroids.has(r.group));
  /** Pairs of taking-part rows of one group inside one micro-batch (cos-pairwise's P). */
  const pairsIn = (micro: readonly RlRow[]): number => {
    const count = new Map<number, number>();
    for (const r of micro) if (takesPart(r)) count.set(r.group, (count.get(r.group) ?? 0) + 1);
    let p = 0;
    for (const n of count.values()) p += (n * (n - 1)) / 2;
    return p;
  };
  const params = backend.params;
  let state = options.state;
  let updates: ParamTree | null = null;
  // The same mini-batches every pass; fewer than `miniBatches` when there are fewer rows or
  // (with align-only groups) groups, and then fewer updates.
  const minis = splitMiniBatches(rows, options.miniBatches, { wholeGroups: pairwise });
  const U = options.ppoEpochs * minis.length;
  let lossSum = 0;
  let tokens = 0;
  const m: Record<string, number> = {};
  const tokenWeighted: Record<string, number> = {};
  let weightTokens = 0;
  let ratioMax = 0;
  let pgSum = 0;
  let alignSum = 0;
  let alignRows = 0;
  let balanceSum: number | undefined;
  let lastOptMetrics: Record<string, number> = {};
  let gradNormSum = 0;
  let update = 0;
  for (let epoch = 0; epoch < options.ppoEpochs; epoch++) {
    for (const mini of minis) {
      const miniTokens = mini.reduce((n, r) => n + (r.policy ? r.tokens.length : 0), 0);
      const miniSeqs = mini.filter((r) => r.policy && r.tokens.length > 0).length;
      // cos-pairwise compares rows within a micro-batch, so its micro-batches (and mini-batches)
      // hold whole groups; its normaliser is the mini-batch's pairs.
      const microsOfMini = splitMicroBatches(mini, options.microBatchSize, {
        wholeGroups: pairwise,
      });
      const miniAlign = pairwise
        ? microsOfMini.reduce((p, m) => p + pairsIn(m), 0)
        : mini.filter(takesPart).length;
      const pgNormalizer = pg === undefined
        ? 1
        : pg.aggregation === "token-mean"
        ? miniTokens
        : pg.aggregation === "seq-mean-token-sum-norm"
        ? mini.filter((r) => r.policy).length
        : miniSeqs;
      const sum: Record<string, Float64Array> = {};
      let miniLoss = 0;
      const micros = microsOfMini;
      for (let k = 0; k < micros.length; k++) {
        const micro = micros[k];
        const batch = collateRl(micro, { padId: options.padId });
        tokens += batch.tokens;
        // The align term runs at weight 0 too (its zero cotangent must leave the step as is).
        const anchors = micro.map((r) => (takesPart(r) ? r.anchor : -1));
        const hasAlignRows = anchors.some((x) => x >= 0);
        const inputs: ObjectiveInputs = {
          lossMask: batch.lossMask,
          oldLogprobs: batch.oldLogprobs,
          advantages: batch.advantages,
          ...(batch.tokenWeights ? { tokenWeights: batch.tokenWeights } : {}),
          anchors,
          groups: batch.groups,
          correct: batch.correct,
          centroids: align !== undefined && align.type !== "cos-pairwise" ? centroids : undefined,
          normalizers: {
            // The mini-batch's denominators (> 0 where the term has anything to count).
            clipped_pg: Math.max(1, pgNormalizer),
            ...(hasAlignRows && miniAlign > 0 ? { hidden_align: miniAlign } : {}),
          },
        };
        const hiddenLayer = align !== undefined && align.layer !== "final"
          ? align.layer
          : undefined;
        const forward = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
        // HILO's balance term: the mean over the update's micro-batches (their gradients sum).
        const micOptions = {
          dropoutSeed: options.dropoutSeed?.(update, k),
          hiddenLayer,
          balanceWeight: 1 / micros.length,
        };
        const shape = {
          what: "training step",
          rows: micro.length,
          seqLen: batch.seqLen,
          microBatchSize: options.microBatchSize,
        };
        let loss: LossOutput;
        if (device) {
          // Gradients summed in the GPU's buffers (the first micro-batch replaces them).
          loss = await withMicroBatchKey(
            shape,
            () =>
              device.backend.accumulateObjective(forward, { terms, inputs }, {
                ...micOptions,
                accumulate: k > 0,
              }),
          );
        } else {
          const r = await withMicroBatchKey(
            shape,
            () => backend.objectiveAndGrads(forward, { terms, inputs }, micOptions),
          );
          loss = r.loss;
          addInto(sum, r.grads);
        }
        miniLoss += loss.value;
        const lm = loss.metrics;
        if (pg !== undefined) {
          pgSum += lm["loss/pg"] ?? 0;
          const t = batch.lossTokens;
          weightTokens += t;
          for (const key of Object.keys(lm)) {
            if (key.includes("clipfrac") || key === "loss/ppo_kl" || key === "policy/entropy") {
              tokenWeighted[key] = (tokenWeighted[key] ?? 0) + lm[key] * t;
            }
          }
          ratioMax = Math.max(ratioMax, lm["loss/ratio_max"] ?? 0);
        }
        if (align !== undefined) {
          alignSum += lm["align/loss"] ?? 0;
          alignRows += lm["align/rows"] ?? 0;
        }
        if (lm["loss/balance"] !== undefined) {
          balanceSum = (balanceSum ?? 0) + lm["loss/balance"] / micros.length;
        }
      }
      if (device) {
        // The update happens on the GPU, unless the loss or the gradient is not finite (then
        // nothing changes and the caller stops on the non-finite loss).
        lossSum += miniLoss;
        update++;
        if (!Number.isFinite(miniLoss)) {
          return { loss: miniLoss, updates: {}, state, metrics: {}, tokens, applied: true };
        }
        const om = await device.optimizer.update();
        if (om["optim/skipped"] === 1) {
          return { loss: NaN, updates: {}, state, metrics: om, tokens, applied: true };
        }
        gradNormSum += om["optim/grad_norm"];
        lastOptMetrics = om;
        continue;
      }
      const grads: ParamTree = {};
      for (const [name, s] of Object.entries(sum)) grads[name] = Float32Array.from(s);
      gradNormSum += globalNorm(grads);
      const r = options.optimizer.update(grads, state, params.tree);
      state = r.state;
      lastOptMetrics = r.metrics;
      lossSum += miniLoss;
      update++;
      if (update < U) {
        if (!Number.isFinite(miniLoss)) {
          return { loss: miniLoss, updates: r.updates, state, metrics: {}, tokens };
        }
        backend.setParams(applyUpdates(params.tree, r.updates));
      } else {
        updates = r.updates;
      }
    }
  }
  for (const [key, v] of Object.entries(tokenWeighted)) {
    m[key] = weightTokens > 0 ? v / weightTokens : 0;
  }
  if (pg !== undefined) {
    m["loss/pg"] = pgSum / U;
    m["loss/ratio_max"] = ratioMax;
  }
  // HILO's balance loss: mean over each update's micro-batches, then over the updates.
  if (balanceSum !== undefined) m["loss/balance"] = balanceSum / U;
  if (align !== undefined) {
    m["loss/align"] = alignSum / U;
    m["align/rows"] = alignRows / options.ppoEpochs;
    // Groups with a target: a centroid, or for cos-pairwise ≥ 2 anchored correct rows.
    m["align/groups"] = pairwise
      ? [...anchored.values()].filter((n) => n >= 2).length
      : centroids.size;
  }
  return {
    loss: lossSum / U,
    updates: updates ?? {},
    applied: device !== undefined,
    state,
    metrics: {
      ...lastOptMetrics,
      ...m,
      "loss/total": lossSum / U,
      "optim/grad_norm": gradNormSum / U, // pre-clip, mean over the updates
      "optim/updates": U,
    },
    tokens,
  };
}
