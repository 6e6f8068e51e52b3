import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { alignCentroids } from "./align_centroids.ts";

// Group 4: rows (3, 0) and (0, 5); group 9: one row (1, 1); sequence 3 is wrong.
const options = {
  hidden: [3, 0, 0, 5, 1, 1, 7, 7],
  batch: 4,
  seqLen: 1,
  hiddenSize: 2,
  anchors: [0, 0, 0, 0],
  groups: [4, 4, 9, 4],
  correct: [1, 1, 1, 0],
};

Deno.test("alignCentroids() gives each contributing group its type's target", () => {
  const near = (got: Float64Array | undefined, want: number[]) =>
    want.forEach((w, j) => ok(Math.abs(got![j] - w) < 1e-15, `${got} vs ${want}`));
  const cos = alignCentroids(options);
  deepStrictEqual([...cos.keys()], [4]); // group 9 has one row, so no target
  near(cos.get(4), [Math.SQRT1_2, Math.SQRT1_2]);
  near(alignCentroids({ ...options, type: "mse-normalized" }).get(4), [0.5, 0.5]);
  near(alignCentroids({ ...options, type: "mse-raw" }).get(4), [1.5, 2.5]);
  strictEqual(alignCentroids({ ...options, correct: [1, 0, 1, 0] }).size, 0);
});
