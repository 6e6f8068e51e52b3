/**
 * Cosine similarity of anchor hidden states within prompt groups: among correct rollouts, among
 * incorrect ones, and across correct–incorrect pairs. The Hidden-Align term pulls the first up;
 * the gap to the others says how much the anchor state tells correct from incorrect.
 *
 * @module
 */

/**
 * The three mean cosines and their pair counts.
 *
 * @example Usage
 * ```ts
 * import type { AnchorCosines } from "./anchor_cosines.ts";
 *
 * const cos: AnchorCosines = {
 *   correctCorrect: 0.9, incorrectIncorrect: 0.8, correctIncorrect: 0.7,
 *   pairsCorrect: 3, pairsIncorrect: 1, pairsMixed: 4,
 * };
 * ```
 */
export interface AnchorCosines {
  /** Mean cosine over pairs of correct rollouts of the same group (NaN: no pair). */
  correctCorrect: number;
  /** Mean cosine over pairs of incorrect rollouts of the same group (NaN: no pair). */
  incorrectIncorrect: number;
  /** Mean cosine over correct–incorrect pairs of the same group (NaN: no pair). */
  correctIncorrect: number;
  /** Pair counts. */
  pairsCorrect: number;
  /** Pair counts. */
  pairsIncorrect: number;
  /** Pair counts. */
  pairsMixed: number;
}

function unit(h: Float64Array): Float64Array {
  let s = 0;
  for (const x of h) s += x * x;
  const n = Math.max(Math.sqrt(s), 1e-6);
  return h.map((x) => x / n);
}

/**
 * Mean pairwise cosines of anchor states within groups, pooled over all pairs of a kind.
 *
 * @param rows Each row's group, correctness and anchor state (`null`: no anchor; skipped).
 * @returns The means and pair counts.
 *
 * @example Two correct rollouts pointing the same way, one incorrect orthogonal to them
 * ```ts
 * import { anchorCosines } from "./anchor_cosines.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const cos = anchorCosines([
 *   { group: 0, correct: true, hidden: new Float64Array([1, 0]) },
 *   { group: 0, correct: true, hidden: new Float64Array([2, 0]) },
 *   { group: 0, correct: false, hidden: new Float64Array([0, 1]) },
 * ]);
 * strictEqual(cos.correctCorrect, 1);
 * strictEqual(cos.correctIncorrect, 0);
 * strictEqual(cos.pairsMixed, 2);
 * ```
 */
export function anchorCosines(
  rows: readonly { group: number; correct: boolean; hidden: Float64Array | null }[],
): AnchorCosines {
  const byGroup = new Map<number, { correct: boolean; u: Float64Array }[]>();
  for (const r of rows) {
    if (r.hidden === null) continue;
    const list = byGroup.get(r.group) ?? [];
    list.push({ correct: r.correct, u: unit(r.hidden) });
    byGroup.set(r.group, list);
  }
  const sum = { cc: 0, ii: 0, ci: 0 };
  const n = { cc: 0, ii: 0, ci: 0 };
  for (const list of byGroup.values()) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        let dot = 0;
        for (let k = 0; k < list[i].u.length; k++) dot += list[i].u[k] * list[j].u[k];
        const key = list[i].correct && list[j].correct
          ? "cc"
          : !list[i].correct && !list[j].correct
          ? "ii"
          : "ci";
        sum[key] += dot;
        n[key]++;
      }
    }
  }
  return {
    correctCorrect: sum.cc / n.cc,
    incorrectIncorrect: sum.ii / n.ii,
    correctIncorrect: sum.ci / n.ci,
    pairsCorrect: n.cc,
    pairsIncorrect: n.ii,
    pairsMixed: n.ci,
  };
}
