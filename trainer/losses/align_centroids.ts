/**
 * The stop-gradient targets of the Hidden-Align term, computed over a whole mini-batch so that
 * `hiddenAlignLoss` can be evaluated on micro-batches that split a group.
 *
 * @module
 */
import { alignRows, type AlignType, groupTarget } from "./_align_rows.ts";

/**
 * Options of {@linkcode alignCentroids}: the same fields as `hiddenAlignLoss`'s.
 *
 * @example Two sequences of one group
 * ```ts
 * import type { AlignCentroidsOptions } from "./align_centroids.ts";
 * const options: AlignCentroidsOptions = {
 *   hidden: [1, 0, 0, 1],
 *   batch: 2,
 *   seqLen: 1,
 *   hiddenSize: 2,
 *   anchors: [0, 0],
 *   groups: [7, 7],
 *   correct: [1, 1],
 * };
 * ```
 */
export interface AlignCentroidsOptions {
  /** Hidden states `[batch, seqLen, hiddenSize]`. */
  hidden: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Hidden size. */
  hiddenSize: number;
  /** Anchor position of each sequence (−1: none). */
  anchors: ArrayLike<number>;
  /** Prompt group of each sequence. */
  groups: ArrayLike<number>;
  /** Verifier correctness of each sequence (0/1). */
  correct: ArrayLike<number | boolean>;
  /** The align type whose target is wanted; default `"cos-centroid"` (not `"cos-pairwise"`). */
  type?: AlignType;
}

const WHERE = "Cannot compute the Hidden-Align centroids";

/**
 * The target each contributing group (≥ 2 taking-part rows: correct and anchored) is compared
 * against by `hiddenAlignLoss`: for `"cos-centroid"` the normalised mean of the unit rows
 * `u_i = h_i / max(‖h_i‖, 1e-6)`, for `"mse-normalized"` their mean, for `"mse-raw"` the mean of
 * the raw rows. Pass the map as `centroids` (and the mini-batch's row count as `normalizer`) to
 * each micro-batch's `hiddenAlignLoss`.
 *
 * @param options Hidden states, anchors, groups, correctness and type.
 * @returns Group id → target (`hiddenSize` values), for contributing groups only.
 * @throws {TypeError} For `"cos-pairwise"` (no stop-gradient target) or an unknown type.
 * @throws {RangeError} On the inputs `hiddenAlignLoss` rejects.
 *
 * @example The centroid of two orthogonal unit rows
 * ```ts
 * import { alignCentroids } from "./align_centroids.ts";
 * const c = alignCentroids({
 *   hidden: [3, 0, 0, 5],
 *   batch: 2,
 *   seqLen: 1,
 *   hiddenSize: 2,
 *   anchors: [0, 0],
 *   groups: [7, 7],
 *   correct: [1, 1],
 * });
 * console.log(c.get(7)); // Float64Array [0.7071…, 0.7071…]
 * ```
 */
export function alignCentroids(options: AlignCentroidsOptions): Map<number, Float64Array> {
  const rows = alignRows(WHERE, options);
  if (rows.type === "cos-pairwise") {
    throw new TypeError(
      `${WHERE}: option "type" must not be "cos-pairwise" (it has no stop-gradient target): ` +
        `current value is "cos-pairwise"`,
    );
  }
  const out = new Map<number, Float64Array>();
  for (const [g, list] of rows.groups) {
    if (list.length >= 2) out.set(g, groupTarget(rows.type, list, rows.hiddenSize));
  }
  return out;
}
