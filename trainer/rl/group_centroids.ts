/**
 * Per-group stop-gradient targets of the Hidden-Align term, computed once over a whole group so
 * that a group split across micro-batches aligns to the same centroid.
 *
 * @module
 */

/**
 * The alignment type whose centroid is wanted.
 *
 * @example Usage
 * ```ts
 * import type { CentroidType } from "./group_centroids.ts";
 *
 * const type: CentroidType = "cos-centroid";
 * ```
 */
export type CentroidType = "cos-centroid" | "mse-normalized" | "mse-raw";

/**
 * The centroid of each contributing group (≥ 2 correct rows with an anchor state): for
 * `cos-centroid` the normalised mean of the unit vectors `u_i = h_i / max(‖h_i‖, 1e-6)`, for
 * `mse-normalized` their plain mean, for `mse-raw` the mean of the raw states.
 *
 * @param rows Each row's group, correctness and anchor state (`null`: none).
 * @param type The alignment type.
 * @returns Group number → centroid; groups that do not contribute are absent.
 *
 * @example Two correct rows of group 3
 * ```ts
 * import { groupCentroids } from "./group_centroids.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const c = groupCentroids([
 *   { group: 3, correct: true, hidden: new Float64Array([2, 0]) },
 *   { group: 3, correct: true, hidden: new Float64Array([0, 5]) },
 *   { group: 4, correct: true, hidden: new Float64Array([1, 1]) },
 * ], "mse-normalized");
 * deepStrictEqual([...c.get(3)!], [0.5, 0.5]);
 * deepStrictEqual([...c.keys()], [3]);
 * ```
 */
export function groupCentroids(
  rows: readonly { group: number; correct: boolean; hidden: Float64Array | null }[],
  type: CentroidType,
): Map<number, Float64Array> {
  const members = new Map<number, Float64Array[]>();
  for (const r of rows) {
    if (!r.correct || r.hidden === null) continue;
    let v = r.hidden;
    if (type !== "mse-raw") {
      let s = 0;
      for (const x of v) s += x * x;
      const n = Math.max(Math.sqrt(s), 1e-6);
      v = v.map((x) => x / n);
    }
    const list = members.get(r.group) ?? [];
    list.push(v);
    members.set(r.group, list);
  }
  const out = new Map<number, Float64Array>();
  for (const [g, list] of members) {
    if (list.length < 2) continue;
    const c = new Float64Array(list[0].length);
    for (const v of list) for (let k = 0; k < c.length; k++) c[k] += v[k];
    for (let k = 0; k < c.length; k++) c[k] /= list.length;
    if (type === "cos-centroid") {
      let s = 0;
      for (const x of c) s += x * x;
      const n = Math.max(Math.sqrt(s), 1e-6);
      for (let k = 0; k < c.length; k++) c[k] /= n;
    }
    out.set(g, c);
  }
  return out;
}
