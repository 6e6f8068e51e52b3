import { ok, strictEqual, throws } from "node:assert/strict";
import { alignCentroids } from "./align_centroids.ts";
import {
  ALIGN_TYPES,
  type AlignType,
  hiddenAlignLoss,
  type HiddenAlignLossOptions,
} from "./hidden_align_loss.ts";
import { assertGradClose, centralDiff, FD_TOL, rand } from "./_test_utils.ts";

const near = (a: number, b: number, tol = 1e-14) =>
  ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

/** Rows given directly: batch = rows.length, seqLen 1, one group unless given. */
function rowsCase(rows: number[][], groups?: number[]): HiddenAlignLossOptions {
  return {
    hidden: rows.flat(),
    batch: rows.length,
    seqLen: 1,
    hiddenSize: rows[0].length,
    anchors: rows.map(() => 0),
    groups: groups ?? rows.map(() => 0),
    correct: rows.map(() => 1),
  };
}

Deno.test("hiddenAlignLoss() cos-centroid by hand: two orthogonal rows", () => {
  const out = hiddenAlignLoss(rowsCase([[2, 0], [0, 3]]));
  near(out.value, 1 - Math.SQRT1_2);
  // Row 0: u = e1, ĉ = (1, 1)/√2, d/du = −ĉ/2; projected off u and divided by ‖h‖ = 2.
  const g = out.grad.dLastHidden!;
  near(g[0], 0);
  near(g[1], -Math.SQRT1_2 / 4);
  near(g[2], -Math.SQRT1_2 / 6);
  near(g[3], 0);
  strictEqual(out.metrics["align/rows"], 2);
  strictEqual(out.metrics["align/groups"], 1);
  near(out.metrics["align/cos_correct"], 0);
  near(out.metrics["align/loss"], out.value);
});

Deno.test("hiddenAlignLoss() cos-pairwise by hand: three rows, three pairs", () => {
  const out = hiddenAlignLoss({ ...rowsCase([[1, 0], [0, 5], [1, 1]]), type: "cos-pairwise" });
  // Cosines 0, 1/√2, 1/√2.
  near(out.value, (3 - Math.SQRT2) / 3);
  near(out.metrics["align/cos_correct"], Math.SQRT2 / 3);
  strictEqual(out.metrics["align/rows"], 3);
});

Deno.test("hiddenAlignLoss() cos-pairwise divides by the pairs, not the rows, over groups", () => {
  // Group 0: (1, 0), (0, 1), (1, 1): cosines 0, 1/√2, 1/√2. Group 7: (1, 0), (−2, 0): cosine −1.
  // P = 3 + 1 = 4 pairs (N = 5 rows); Σ (1 − cos) = 1 + 2(1 − 1/√2) + 2 = 5 − √2.
  const out = hiddenAlignLoss({
    ...rowsCase([[1, 0], [0, 1], [1, 1], [1, 0], [-2, 0]], [0, 0, 0, 7, 7]),
    type: "cos-pairwise",
  });
  near(out.value, (5 - Math.SQRT2) / 4);
  near(out.metrics["align/cos_correct"], (Math.SQRT2 - 1) / 4);
  strictEqual(out.metrics["align/rows"], 5);
  strictEqual(out.metrics["align/groups"], 2);
});

Deno.test("hiddenAlignLoss() cos-centroid normalises a supplied centroid", () => {
  // One row h = (2, 0) (u = e1) against a supplied, not unit, centroid (3, 4): ĉ = (0.6, 0.8),
  // loss 1 − u·ĉ = 0.4; gradient (−ĉ − (−ĉ·u) u) / ‖h‖ = (0, −0.8) / 2.
  const out = hiddenAlignLoss({ ...rowsCase([[2, 0]]), centroids: new Map([[0, [3, 4]]]) });
  near(out.value, 0.4);
  const g = out.grad.dLastHidden!;
  near(g[0], 0);
  near(g[1], -0.4);
  // The mse types take the supplied target as it is: ‖u − (3, 4)‖² = 4 + 16.
  near(
    hiddenAlignLoss({
      ...rowsCase([[2, 0]]),
      type: "mse-normalized",
      centroids: new Map([[0, [3, 4]]]),
    }).value,
    20,
  );
});

Deno.test("hiddenAlignLoss() mse types by hand", () => {
  const rows = [[2, 0], [0, 2]];
  // Unit rows e1, e2 around their mean (½, ½): ‖u − m‖² = ½ each.
  near(hiddenAlignLoss({ ...rowsCase(rows), type: "mse-normalized" }).value, 0.5);
  // Raw rows around (1, 1): ‖h − m‖² = 2 each, over hiddenSize 2 → 1; gradient 2(h − m)/(N·H).
  const raw = hiddenAlignLoss({ ...rowsCase(rows), type: "mse-raw" });
  near(raw.value, 1);
  [0.5, -0.5, -0.5, 0.5].forEach((want, i) => near(raw.grad.dLastHidden![i], want));
});

// 12 sequences of 3 tokens, hiddenSize 5, in groups with 2 of 3 correct (3), 1 correct (1),
// none correct (8), 3 correct of which one has no anchor (0), 3 correct (6).
const B = 12;
const T = 3;
const HS = 5;
const base: HiddenAlignLossOptions = {
  hidden: rand(B * T * HS, 5, -1, 1),
  batch: B,
  seqLen: T,
  hiddenSize: HS,
  groups: [3, 1, 3, 8, 0, 3, 1, 0, 8, 0, 6, 6],
  correct: [1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, true],
  anchors: [2, 1, 0, 2, 1, 0, -1, 2, 1, -1, 0, 2],
};
// Taking part: group 3: {0, 5}; group 1: {1} (alone); group 0: {4, 7}; group 6: {10, 11}.
const takingPart = [0, 5, 4, 7, 10, 11];

Deno.test("hiddenAlignLoss() counts rows and groups with 0, 1 and ≥ 2 correct rows", () => {
  for (const type of ALIGN_TYPES) {
    const out = hiddenAlignLoss({ ...base, type });
    strictEqual(out.metrics["align/rows"], 6, type);
    strictEqual(out.metrics["align/groups"], 3, type);
    // Only the anchor rows of taking-part sequences get a gradient.
    const g = out.grad.dLastHidden!;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        let s = 0;
        for (let j = 0; j < HS; j++) s += Math.abs(g[(b * T + t) * HS + j]);
        const want = takingPart.includes(b) && base.anchors[b] === t;
        strictEqual(s > 0, want, `${type}: sequence ${b} token ${t}`);
      }
    }
  }
});

Deno.test("hiddenAlignLoss() gradient matches central differences for all four types", () => {
  let worst = 0;
  for (const type of ALIGN_TYPES) {
    for (const normalizer of [undefined, 4.5]) {
      const hidden = Float64Array.from(base.hidden);
      const options = { ...base, hidden, type, normalizer };
      const out = hiddenAlignLoss(options);
      const fd = centralDiff(hidden, () => hiddenAlignLoss(options).value);
      const what = `${type} normalizer=${normalizer}`;
      worst = Math.max(worst, assertGradClose(out.grad.dLastHidden!, fd, FD_TOL, what));
    }
  }
  console.log(`hiddenAlignLoss: max |analytic − central difference| = ${worst.toExponential(2)}`);
});

Deno.test("hiddenAlignLoss() with centroids held fixed: the stop-gradient gradient", () => {
  let worst = 0;
  for (const type of ["cos-centroid", "mse-normalized", "mse-raw"] as AlignType[]) {
    const centroids = alignCentroids({ ...base, type });
    strictEqual(centroids.size, 3);
    const hidden = Float64Array.from(base.hidden);
    const options = { ...base, hidden, type, centroids };
    const out = hiddenAlignLoss(options);
    // Same value and gradient as computing the centroids inside (they are the same numbers).
    const inside = hiddenAlignLoss({ ...base, type });
    near(out.value, inside.value, 1e-14);
    assertGradClose(out.grad.dLastHidden!, inside.grad.dLastHidden!, 1e-15, `${type} inside`);
    // Central differences of the value with the centroids fixed = the stop-gradient gradient.
    const fd = centralDiff(hidden, () => hiddenAlignLoss(options).value);
    worst = Math.max(worst, assertGradClose(out.grad.dLastHidden!, fd, FD_TOL, type));
  }
  console.log(`hiddenAlignLoss (centroids fixed): max |analytic − FD| = ${worst.toExponential(2)}`);
});

Deno.test("hiddenAlignLoss() micro-batches with centroids and normalizer add up to the batch", () => {
  for (const type of ["cos-centroid", "mse-normalized", "mse-raw"] as AlignType[]) {
    const full = hiddenAlignLoss({ ...base, type });
    const centroids = alignCentroids({ ...base, type });
    const normalizer = full.metrics["align/rows"];
    // Sequences 0–5 and 6–11: groups 3, 0 and 6 are split (6 has one row in each half).
    const part = (lo: number, hi: number) => {
      const s = <T>(a: ArrayLike<T>) => Array.from(a).slice(lo, hi);
      return hiddenAlignLoss({
        hidden: Array.from(base.hidden).slice(lo * T * HS, hi * T * HS),
        batch: hi - lo,
        seqLen: T,
        hiddenSize: HS,
        anchors: s(base.anchors),
        groups: s(base.groups),
        correct: s(base.correct),
        type,
        centroids,
        normalizer,
      });
    };
    const a = part(0, 6);
    const b = part(6, 12);
    near(a.value + b.value, full.value, 1e-13);
    const joined = [...a.grad.dLastHidden!, ...b.grad.dLastHidden!];
    assertGradClose(joined, full.grad.dLastHidden!, 1e-15, `${type} micro-batches`);
    // Without the centroids, the half-groups of one row drop out and the sum differs.
    const alone = hiddenAlignLoss({
      ...base,
      type,
      batch: 6,
      hidden: Array.from(base.hidden).slice(0, 6 * T * HS),
      anchors: Array.from(base.anchors).slice(0, 6),
      groups: Array.from(base.groups).slice(0, 6),
      correct: Array.from(base.correct).slice(0, 6),
    });
    strictEqual(alone.metrics["align/rows"], 2, `${type}: only group 3 is whole in 0–5`);
  }
});

Deno.test("hiddenAlignLoss() a supplied centroid makes a one-row group contribute", () => {
  const centroids = new Map([[1, [1, 0, 0, 0, 0]]]);
  const out = hiddenAlignLoss({ ...base, centroids });
  strictEqual(out.metrics["align/rows"], 7);
  strictEqual(out.metrics["align/groups"], 4);
  const hidden = Float64Array.from(base.hidden);
  const options = { ...base, hidden, centroids };
  const fd = centralDiff(hidden, () => hiddenAlignLoss(options).value);
  assertGradClose(hiddenAlignLoss(options).grad.dLastHidden!, fd, FD_TOL, "one-row group");
});

Deno.test("hiddenAlignLoss() differentiates through a row below the 1e-6 norm floor", () => {
  // Row 0 has norm ~3e-8: u = h / 1e-6 is linear in h, d/dh = (d/du) / 1e-6.
  const hidden = Float64Array.from([1e-8, -2e-8, 2e-8, 0.3, 0.9, -0.4, -0.5, 0.2, 0.7]);
  // (mse-raw does not normalise: nothing to check there.)
  for (const type of ["cos-centroid", "cos-pairwise", "mse-normalized"] as AlignType[]) {
    const options = { ...rowsCase([[0, 0, 0], [0, 0, 0], [0, 0, 0]]), hidden, type };
    const g = hiddenAlignLoss(options).grad.dLastHidden!;
    // Steps far below the row's norm (the value is smooth there); relative comparison.
    const fd = centralDiff(hidden, () => hiddenAlignLoss(options).value, 1e-12);
    let scale = 0;
    for (const x of fd) scale = Math.max(scale, Math.abs(x));
    assertGradClose(g, fd, 1e-6 * scale, `${type} tiny row`);
  }
});

Deno.test("hiddenAlignLoss() normalizer scales the value; no contributing row gives 0", () => {
  const rows = rowsCase([[2, 0], [0, 3]]);
  near(hiddenAlignLoss({ ...rows, normalizer: 8 }).value, (1 - Math.SQRT1_2) * 2 / 8);
  const pair = hiddenAlignLoss({ ...rows, type: "cos-pairwise", normalizer: 4 });
  near(pair.value, 1 / 4);
  for (const type of ALIGN_TYPES) {
    const none = hiddenAlignLoss({ ...rows, correct: [1, 0], type });
    strictEqual(none.value, 0);
    ok(none.grad.dLastHidden!.every((x) => x === 0));
    strictEqual(none.metrics["align/groups"], 0);
    strictEqual(none.metrics["align/cos_correct"], 0);
  }
});

Deno.test("hiddenAlignLoss() names the wrong input", () => {
  throws(() => hiddenAlignLoss({ ...base, hidden: new Float64Array(10) }), {
    name: "RangeError",
    message:
      /"hidden" must have 180 values \(\[batch, seqLen, hiddenSize\] = 12·3·5\): current length is 10/,
  });
  throws(() => hiddenAlignLoss({ ...base, anchors: [...base.anchors as number[]].fill(3, 2, 3) }), {
    message: /"anchors\[2\]" must be −1 or an integer in \[0, seqLen = 3\): current value is 3/,
  });
  throws(() => hiddenAlignLoss({ ...base, correct: [...base.correct as number[]].fill(2, 0, 1) }), {
    message: /"correct\[0\]" must be 0 or 1: current value is 2/,
  });
  throws(() => hiddenAlignLoss({ ...base, groups: [1] }), {
    message: /"groups" must have 12 values \(one per sequence\): current length is 1/,
  });
  const nan = Float64Array.from(base.hidden);
  nan[(0 * T + 2) * HS + 1] = NaN; // sequence 0's anchor row
  throws(() => hiddenAlignLoss({ ...base, hidden: nan }), {
    message:
      /"hidden \(anchor row of sequence 0\)\[1\]" must be a finite number: current value is NaN/,
  });
  throws(
    // deno-lint-ignore no-explicit-any
    () => hiddenAlignLoss({ ...base, type: "cosine" as any }),
    {
      name: "TypeError",
      message: /option "type" must be one of "cos-centroid", .*: current value is "cosine"/,
    },
  );
  throws(() => hiddenAlignLoss({ ...base, centroids: new Map([[3, [1, 2]]]) }), {
    message: /"centroids.get\(3\)" must have 5 values \(hiddenSize\): current length is 2/,
  });
  throws(
    () => hiddenAlignLoss({ ...base, type: "cos-pairwise", centroids: new Map() }),
    { name: "TypeError", message: /"centroids" must not be given with type "cos-pairwise"/ },
  );
  throws(() => hiddenAlignLoss({ ...base, normalizer: 0 }), {
    message: /option "normalizer" must be a finite number > 0: current value is 0/,
  });
  throws(() => alignCentroids({ ...base, type: "cos-pairwise" }), { name: "TypeError" });
});
