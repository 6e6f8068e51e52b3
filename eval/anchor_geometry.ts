// Copyright 2025 the halo authors. MIT license.
/**
 * Anchor geometry: how alike the hidden states of a prompt's rollouts are at their anchor token
 * (for Hidden-Align, the token just before the answer marker), by the correctness of the two
 * rollouts of a pair. Hidden-Align pulls the correct rollouts of a prompt together, so it only
 * has work to do when their anchor states differ (a mean correct–correct cosine below 1).
 *
 * Pure: given one hidden row per rollout, its group (prompt) id and its correctness, it returns
 * the mean cosine similarity over the unordered pairs of rollouts of the same group, by pair kind,
 * with the pair counts.
 *
 * @example Two groups of three rollouts
 * ```ts
 * import { anchorGeometry } from "./anchor_geometry.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const geometry = anchorGeometry(
 *   [[1, 0], [1, 0], [0, 1], [1, 1], [1, 1], [1, -1]],
 *   ["a", "a", "a", "b", "b", "b"],
 *   [true, true, false, true, true, false],
 * );
 * strictEqual(geometry.correctCorrect.mean, 1); // identical correct rows in both groups
 * strictEqual(geometry.correctIncorrect.count, 4);
 * strictEqual(geometry.incorrectIncorrect.count, 0);
 * ```
 *
 * @module
 */

/**
 * The mean cosine over one kind of pair, with how many pairs and groups it averages.
 *
 * @example Usage
 * ```ts
 * import type { PairCosine } from "./anchor_geometry.ts";
 *
 * const none: PairCosine = { mean: Number.NaN, count: 0, groups: 0 };
 * ```
 */
export interface PairCosine {
  /**
   * Mean cosine similarity over all such pairs, pooled over groups (each pair weighs the same);
   * `NaN` when there is no pair.
   */
  mean: number;
  /** Number of unordered pairs `(i, j)`, `i < j`, of the same group. */
  count: number;
  /** Number of groups with at least one such pair. */
  groups: number;
}

/**
 * The mean cosine between rollouts of the same group, by the correctness of the pair.
 *
 * @example Usage
 * ```ts
 * import type { AnchorGeometry } from "./anchor_geometry.ts";
 *
 * const empty = { mean: Number.NaN, count: 0, groups: 0 };
 * const geometry: AnchorGeometry = {
 *   correctCorrect: empty,
 *   incorrectIncorrect: empty,
 *   correctIncorrect: empty,
 *   all: empty,
 * };
 * ```
 */
export interface AnchorGeometry {
  /** Both rollouts correct (the pairs Hidden-Align pulls together). */
  correctCorrect: PairCosine;
  /** Both rollouts incorrect. */
  incorrectIncorrect: PairCosine;
  /** One correct, one incorrect. */
  correctIncorrect: PairCosine;
  /** Every pair of the same group, whatever the correctness (e.g. for a control). */
  all: PairCosine;
}

/**
 * Cosine similarity of two vectors of the same length.
 *
 * @param a The first vector.
 * @param b The second vector.
 * @returns `a·b / (|a| |b|)`, in [-1, 1] up to rounding.
 * @throws {RangeError} When the lengths differ, a vector is empty, or one has zero norm.
 *
 * @example Usage
 * ```ts
 * import { cosineSimilarity } from "./anchor_geometry.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(cosineSimilarity([1, 0], [0, 2]), 0);
 * strictEqual(cosineSimilarity([3, 4], [6, 8]), 1);
 * ```
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || a.length === 0) {
    throw new RangeError(
      `cosineSimilarity: a and b must be non-empty vectors of the same length: current ` +
        `lengths are ${a.length} and ${b.length}`,
    );
  }
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na === 0 || nb === 0) {
    throw new RangeError(
      `cosineSimilarity: ${na === 0 ? "a" : "b"} has zero norm, so its direction is undefined`,
    );
  }
  return dot / Math.sqrt(na * nb);
}

function accumulator(): { sum: number; count: number; groups: Set<unknown> } {
  return { sum: 0, count: 0, groups: new Set() };
}

function finish(a: { sum: number; count: number; groups: Set<unknown> }): PairCosine {
  return {
    mean: a.count > 0 ? a.sum / a.count : Number.NaN,
    count: a.count,
    groups: a.groups.size,
  };
}

/**
 * The mean cosine similarity of the rows of each pair kind over the unordered pairs of rows of
 * the same group (pairs across groups are never compared).
 *
 * @param rows One hidden-state row per rollout, all of the same non-zero length.
 * @param groups The group (prompt) id of each rollout, compared with `===`.
 * @param correct Whether each rollout is correct.
 * @returns The mean cosine, pair count and group count per pair kind.
 * @throws {RangeError} When the three lists differ in length, the rows differ in length or are
 *   empty, a value is not finite, or a row of a group with a pair has zero norm.
 *
 * @example Orthogonal correct rows, opposite incorrect rows
 * ```ts
 * import { anchorGeometry } from "./anchor_geometry.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const g = anchorGeometry([[1, 0], [0, 1], [0, 3], [0, -3]], [7, 7, 7, 7], [
 *   true,
 *   true,
 *   false,
 *   false,
 * ]);
 * strictEqual(g.correctCorrect.mean, 0);
 * strictEqual(g.incorrectIncorrect.mean, -1);
 * strictEqual(g.correctIncorrect.count, 4);
 * strictEqual(g.all.count, 6);
 * ```
 */
export function anchorGeometry(
  rows: readonly ArrayLike<number>[],
  groups: readonly unknown[],
  correct: readonly boolean[],
): AnchorGeometry {
  if (rows.length !== groups.length || rows.length !== correct.length) {
    throw new RangeError(
      `anchorGeometry: rows, groups and correct must have one entry per rollout: current ` +
        `lengths are ${rows.length}, ${groups.length} and ${correct.length}`,
    );
  }
  const width = rows[0]?.length ?? 0;
  rows.forEach((row, i) => {
    if (row.length !== width || width === 0) {
      throw new RangeError(
        `anchorGeometry: rows[${i}] must have ${width || "a non-zero number of"} values like ` +
          `rows[0]: current length is ${row.length}`,
      );
    }
    for (let k = 0; k < row.length; k++) {
      if (!Number.isFinite(row[k])) {
        throw new RangeError(
          `anchorGeometry: rows[${i}][${k}] must be finite: current value is ${row[k]}`,
        );
      }
    }
  });
  const byGroup = new Map<unknown, number[]>();
  groups.forEach((g, i) => {
    const members = byGroup.get(g);
    if (members) members.push(i);
    else byGroup.set(g, [i]);
  });
  const cc = accumulator();
  const ii = accumulator();
  const ci = accumulator();
  const all = accumulator();
  for (const [group, members] of byGroup) {
    for (let x = 0; x < members.length; x++) {
      for (let y = x + 1; y < members.length; y++) {
        const [i, j] = [members[x], members[y]];
        let cosine: number;
        try {
          cosine = cosineSimilarity(rows[i], rows[j]);
        } catch {
          throw new RangeError(
            `anchorGeometry: rows[${i}] and rows[${j}] (group ${String(group)}) must have a ` +
              `non-zero norm`,
          );
        }
        const kind = correct[i] && correct[j] ? cc : !correct[i] && !correct[j] ? ii : ci;
        for (const a of [kind, all]) {
          a.sum += cosine;
          a.count++;
          a.groups.add(group);
        }
      }
    }
  }
  return {
    correctCorrect: finish(cc),
    incorrectIncorrect: finish(ii),
    correctIncorrect: finish(ci),
    all: finish(all),
  };
}
