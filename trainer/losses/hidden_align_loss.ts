/**
 * The Hidden-Align auxiliary loss: pull the anchor-token hidden states of the correct rollouts
 * of one prompt towards each other.
 *
 * @module
 */
import type { LossOutput } from "../types.ts";
import { type AlignRow, alignRows, type AlignType, groupTarget, normalize } from "./_align_rows.ts";
import { checkFinite, checkLength, checkOption, describe } from "./_validate.ts";

export type { AlignType } from "./_align_rows.ts";
export { ALIGN_TYPES, NORM_EPS } from "./_align_rows.ts";

/**
 * Options of {@linkcode hiddenAlignLoss}.
 *
 * @example Two correct rollouts of one prompt, anchored at their first token
 * ```ts
 * import type { HiddenAlignLossOptions } from "./hidden_align_loss.ts";
 * const options: HiddenAlignLossOptions = {
 *   hidden: [1, 0, 9, 9, 0, 1, 9, 9],
 *   batch: 2,
 *   seqLen: 2,
 *   hiddenSize: 2,
 *   anchors: [0, 0],
 *   groups: [0, 0],
 *   correct: [1, 1],
 * };
 * ```
 */
export interface HiddenAlignLossOptions {
  /** Hidden states `[batch, seqLen, hiddenSize]` (the final-norm output by default). */
  hidden: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Hidden size. */
  hiddenSize: number;
  /** Position in `[0, seqLen)` of each sequence's anchor token; −1 for none. */
  anchors: ArrayLike<number>;
  /** Prompt group of each sequence (any integers). */
  groups: ArrayLike<number>;
  /** The verifier's binary correctness of each sequence (0/1 or booleans). */
  correct: ArrayLike<number | boolean>;
  /** The variant; default `"cos-centroid"`. */
  type?: AlignType;
  /**
   * Replaces N (the number of taking-part rows in contributing groups; for `"cos-pairwise"` P,
   * the number of pairs), so that micro-batches add up to their mini-batch's loss.
   */
  normalizer?: number;
  /**
   * Stop-gradient targets per group id (`hiddenSize` values each; see `alignCentroids`), for
   * groups split across micro-batches. A group given here contributes with ≥ 1 taking-part row
   * and is compared with this target (normalised for `"cos-centroid"`) instead of its own
   * centroid. Not allowed with `"cos-pairwise"`.
   */
  centroids?: ReadonlyMap<number, ArrayLike<number>>;
}

const WHERE = "Cannot compute the Hidden-Align loss";

/**
 * The Hidden-Align term. A sequence's anchor row takes part when the sequence is correct and has
 * an anchor; a group contributes with ≥ 2 taking-part rows (or ≥ 1 with a supplied centroid).
 * With `u_i = h_i / max(‖h_i‖, 1e-6)` and N the number of taking-part rows of contributing
 * groups (or `normalizer`):
 * - `"cos-centroid"`: `(1/N) Σ_i (1 − u_i·ĉ_g)`, `ĉ_g = stopgrad(normalize(mean_{j∈g} u_j))`;
 * - `"cos-pairwise"`: `(1/P) Σ_g Σ_{i<j} (1 − u_i·u_j)`, P the number of pairs, no stop-gradient;
 * - `"mse-normalized"`: `(1/N) Σ_i ‖u_i − stopgrad(mean_{j∈g} u_j)‖²`;
 * - `"mse-raw"`: `(1/N) Σ_i ‖h_i − stopgrad(mean_{j∈g} h_j)‖² / hiddenSize`.
 *
 * The means are those of the rows passed in, unless `centroids` supplies them. The RL trainer
 * does: its targets (`alignCentroids`) are computed once per RL step, before the step's first
 * update, and held fixed for all `ppoEpochs × miniBatches` updates, so there they are the
 * step-start centroids, not those of the current parameters.
 *
 * The gradient goes through the normalisation exactly: for `‖h‖ > 1e-6`,
 * `d/dh = (g − (g·u) u) / ‖h‖` with `g = d/du`; below it `d/dh = g / 1e-6`.
 *
 * Metrics: `"align/loss"` (the value), `"align/rows"` (N before `normalizer`), `"align/groups"`
 * (contributing groups) and `"align/cos_correct"` (mean cosine `u_i·u_j` over the pairs of
 * taking-part rows of each group; 0 when there is no pair).
 *
 * @param options Hidden states, anchors, groups, correctness, type and micro-batch options.
 * @returns Value, `grad.dLastHidden` (`[batch, seqLen, hiddenSize]`, non-zero only at taking-part
 *   anchor rows) and metrics. With no contributing row, the value and gradient are 0.
 * @throws {RangeError} On mismatched lengths, an anchor outside `[−1, seqLen)`, a correctness
 *   other than 0/1, a non-finite value in an anchor row or centroid, or `normalizer` ≤ 0.
 * @throws {TypeError} On an unknown type, or `centroids` with `"cos-pairwise"`.
 *
 * @example Two orthogonal rows: each is 45° from the centroid
 * ```ts
 * import { hiddenAlignLoss } from "./hidden_align_loss.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const out = hiddenAlignLoss({
 *   hidden: [2, 0, 0, 3],
 *   batch: 2,
 *   seqLen: 1,
 *   hiddenSize: 2,
 *   anchors: [0, 0],
 *   groups: [0, 0],
 *   correct: [1, 1],
 * });
 * ok(Math.abs(out.value - (1 - Math.SQRT1_2)) < 1e-12);
 * strictEqual(out.metrics["align/rows"], 2);
 * strictEqual(out.metrics["align/cos_correct"], 0);
 * ```
 */
export function hiddenAlignLoss(options: HiddenAlignLossOptions): LossOutput {
  const rows = alignRows(WHERE, options);
  const { type, hiddenSize: H } = rows;
  checkOption(WHERE, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
  const centroids = options.centroids;
  if (centroids !== undefined) {
    if (!(centroids instanceof Map)) {
      throw new TypeError(
        `${WHERE}: option "centroids" must be a Map from group id to ${H} values: current ` +
          `value is ${describe(centroids)}`,
      );
    }
    if (type === "cos-pairwise") {
      throw new TypeError(
        `${WHERE}: option "centroids" must not be given with type "cos-pairwise" (it has no ` +
          `stop-gradient target)`,
      );
    }
    for (const [g, c] of centroids) {
      checkLength(WHERE, `centroids.get(${g})`, c, H, "hiddenSize");
      checkFinite(WHERE, `centroids.get(${g})`, c);
    }
  }

  // Contributing groups, their targets, N and P; pairwise cosines for the metric.
  const contributing: { rows: AlignRow[]; target: Float64Array }[] = [];
  let nRows = 0;
  let nPairs = 0;
  let cosSum = 0;
  let cosPairs = 0;
  for (const [g, list] of rows.groups) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        cosSum += dot(list[i].u, list[j].u);
        cosPairs++;
      }
    }
    const supplied = centroids?.get(g);
    if (supplied === undefined && list.length < 2) continue;
    let target: Float64Array;
    if (supplied !== undefined) {
      target = type === "cos-centroid" ? normalize(supplied).u : Float64Array.from(supplied);
    } else if (type === "cos-pairwise") {
      target = new Float64Array(H);
      for (const r of list) for (let j = 0; j < H; j++) target[j] += r.u[j]; // Σ u
    } else {
      target = groupTarget(type, list, H);
    }
    contributing.push({ rows: list, target });
    nRows += list.length;
    nPairs += list.length * (list.length - 1) / 2;
  }
  const count = type === "cos-pairwise" ? nPairs : nRows;
  const denom = options.normalizer ?? count;
  const dLastHidden = new Float64Array(options.batch * options.seqLen * H);
  let sum = 0;
  if (count > 0) {
    const gu = new Float64Array(H);
    for (const { rows: list, target } of contributing) {
      for (let i = 0; i < list.length; i++) {
        const { u, h, norm, offset } = list[i];
        switch (type) {
          case "cos-centroid":
            sum += 1 - dot(u, target);
            for (let j = 0; j < H; j++) gu[j] = -target[j] / denom;
            break;
          case "cos-pairwise":
            // Each pair once, directly (the gradient below uses the group sum instead).
            for (let k = i + 1; k < list.length; k++) sum += 1 - dot(u, list[k].u);
            for (let j = 0; j < H; j++) gu[j] = -(target[j] - u[j]) / denom;
            break;
          case "mse-normalized":
            for (let j = 0; j < H; j++) {
              const d = u[j] - target[j];
              sum += d * d;
              gu[j] = 2 * d / denom;
            }
            break;
          case "mse-raw":
            for (let j = 0; j < H; j++) {
              const d = h[j] - target[j];
              sum += d * d / H;
              dLastHidden[offset + j] = 2 * d / (denom * H);
            }
            continue;
        }
        // Through u = h / max(‖h‖, eps).
        if (norm > 1e-6) {
          const gdotu = dot(gu, u);
          for (let j = 0; j < H; j++) dLastHidden[offset + j] = (gu[j] - gdotu * u[j]) / norm;
        } else {
          for (let j = 0; j < H; j++) dLastHidden[offset + j] = gu[j] / 1e-6;
        }
      }
    }
  }
  const value = count > 0 ? sum / denom : 0;
  return {
    value,
    grad: { dLastHidden },
    metrics: {
      "align/loss": value,
      "align/rows": nRows,
      "align/groups": contributing.length,
      "align/cos_correct": cosPairs > 0 ? cosSum / cosPairs : 0,
    },
  };
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
