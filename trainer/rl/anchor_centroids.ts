// Copyright 2025 the halo authors. MIT license.
/**
 * The Hidden-Align targets of an RL step from its forward pass's anchor states.
 *
 * @module
 */
import { alignCentroids, type AlignCentroidsOptions } from "../losses/mod.ts";
import type { RlRow } from "./rl_batch.ts";

/**
 * The stop-gradient target of each group with ≥ 2 correct, anchored rows, over whole groups
 * (so groups split across micro-batches share them): `alignCentroids` of the anchor states the
 * forward pass gathered (`forwardPass(...).hidden`), stacked as `[rows, 1, hiddenSize]`.
 *
 * @param hidden Per row, its anchor state (`null`: no anchor).
 * @param rows The rows (their `group` and `correct`).
 * @param options Hidden size and the align type (not `"cos-pairwise"`, which has no target).
 * @returns The target per group id.
 *
 * @example Two correct rows of group 0
 * ```ts
 * import { anchorCentroids } from "./anchor_centroids.ts";
 * import type { RlRow } from "./rl_batch.ts";
 * import assert from "node:assert/strict";
 *
 * const rows = [{ group: 0, correct: true }, { group: 0, correct: true }] as RlRow[];
 * const hidden = [Float64Array.of(1, 0), Float64Array.of(0, 1)];
 * const c = anchorCentroids(hidden, rows, { hiddenSize: 2 }).get(0)!;
 * assert.ok(Math.abs(c[0] - Math.SQRT1_2) < 1e-12 && Math.abs(c[1] - Math.SQRT1_2) < 1e-12);
 * ```
 */
export function anchorCentroids(
  hidden: readonly (Float64Array | null)[],
  rows: readonly Pick<RlRow, "group" | "correct">[],
  options: { hiddenSize: number; type?: AlignCentroidsOptions["type"] },
): Map<number, Float64Array> {
  const H = options.hiddenSize;
  const stacked = new Float64Array(rows.length * H);
  hidden.forEach((h, i) => h && stacked.set(h, i * H));
  return alignCentroids({
    hidden: stacked,
    batch: rows.length,
    seqLen: 1,
    hiddenSize: H,
    anchors: hidden.map((h) => (h === null ? -1 : 0)),
    groups: rows.map((r) => r.group),
    correct: rows.map((r) => r.correct),
    ...(options.type === undefined ? {} : { type: options.type }),
  });
}
