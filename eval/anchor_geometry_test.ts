// Copyright 2025 the halo authors. MIT license.
import { ok, strictEqual, throws } from "node:assert/strict";
import { anchorGeometry, cosineSimilarity } from "./anchor_geometry.ts";

const TOL = 1e-12;

function near(actual: number, expected: number, what: string): void {
  ok(Math.abs(actual - expected) <= TOL, `${what}: ${actual}, expected ${expected} ± ${TOL}`);
}

Deno.test("cosineSimilarity() of vectors at known angles", () => {
  for (const degrees of [0, 30, 60, 90, 120, 180, 245]) {
    const t = (degrees * Math.PI) / 180;
    // Scaled and embedded in 4 dimensions: the cosine only depends on the angle.
    near(
      cosineSimilarity([2, 0, 0, 0], [0, 5 * Math.cos(t), 0, 5 * Math.sin(t)]),
      0,
      "orthogonal by construction",
    );
    near(
      cosineSimilarity([3, 0, 0, 0], [7 * Math.cos(t), 7 * Math.sin(t), 0, 0]),
      Math.cos(t),
      `${degrees}°`,
    );
  }
  near(cosineSimilarity(new Float32Array([1, 2, 3]), [1, 2, 3]), 1, "Float32Array");
  throws(() => cosineSimilarity([1, 2], [1, 2, 3]), {
    name: "RangeError",
    message: /a and b must be non-empty vectors of the same length: current lengths are 2 and 3/,
  });
  throws(() => cosineSimilarity([1, 2], [0, 0]), {
    name: "RangeError",
    message: /b has zero norm/,
  });
});

Deno.test("anchorGeometry() averages each pair kind over same-group pairs only", () => {
  const c60 = Math.cos(Math.PI / 3);
  const s60 = Math.sin(Math.PI / 3);
  const rows = [
    // Group "a": two correct rows at 60° (cosine 0.5), two incorrect opposite rows (cosine −1),
    // each correct row orthogonal to each incorrect one (cosine 0, 4 pairs).
    [1, 0, 0],
    [c60, s60, 0],
    [0, 0, 1],
    [0, 0, -1],
    // Group "b": three correct rows along (1, 1, 1) at different scales (cosine 1, 3 pairs) and
    // one incorrect row along x (cosine 1/√3 with each correct row, 3 pairs).
    [1, 1, 1],
    [2, 2, 2],
    [0.5, 0.5, 0.5],
    [4, 0, 0],
    // Group "c": one row, no pair. It equals a row of "a", which must not count.
    [0, 0, 1],
  ];
  const groups = ["a", "a", "a", "a", "b", "b", "b", "b", "c"];
  const correct = [true, true, false, false, true, true, true, false, false];
  const g = anchorGeometry(rows, groups, correct);
  strictEqual(g.correctCorrect.count, 1 + 3);
  strictEqual(g.correctCorrect.groups, 2);
  near(g.correctCorrect.mean, (0.5 + 3 * 1) / 4, "correct–correct (pooled over pairs)");
  strictEqual(g.incorrectIncorrect.count, 1);
  strictEqual(g.incorrectIncorrect.groups, 1);
  near(g.incorrectIncorrect.mean, -1, "incorrect–incorrect");
  strictEqual(g.correctIncorrect.count, 4 + 3);
  strictEqual(g.correctIncorrect.groups, 2);
  near(g.correctIncorrect.mean, (4 * 0 + 3 / Math.sqrt(3)) / 7, "correct–incorrect");
  strictEqual(g.all.count, 6 + 6);
  near(g.all.mean, (0.5 + 3 - 1 + 3 / Math.sqrt(3)) / 12, "all pairs");
});

Deno.test("anchorGeometry() gives NaN with count 0 for a kind without pairs", () => {
  const g = anchorGeometry([new Float32Array([1, 0]), new Float32Array([0, 1])], [0, 0], [
    true,
    true,
  ]);
  near(g.correctCorrect.mean, 0, "orthogonal");
  ok(Number.isNaN(g.incorrectIncorrect.mean));
  strictEqual(g.incorrectIncorrect.count, 0);
  strictEqual(g.incorrectIncorrect.groups, 0);
  ok(Number.isNaN(anchorGeometry([], [], []).all.mean));
});

Deno.test("anchorGeometry() rejects malformed input, naming the argument", () => {
  throws(() => anchorGeometry([[1]], [0, 0], [true]), {
    name: "RangeError",
    message:
      /rows, groups and correct must have one entry per rollout: current lengths are 1, 2 and 1/,
  });
  throws(() => anchorGeometry([[1, 2], [1]], [0, 0], [true, true]), {
    name: "RangeError",
    message: /rows\[1\] must have 2 values like rows\[0\]: current length is 1/,
  });
  throws(() => anchorGeometry([[1, Number.NaN]], [0], [true]), {
    name: "RangeError",
    message: /rows\[0\]\[1\] must be finite/,
  });
  throws(() => anchorGeometry([[1, 2], [0, 0]], ["p", "p"], [true, false]), {
    name: "RangeError",
    message: /rows\[0\] and rows\[1\] \(group p\) must have a non-zero norm/,
  });
});
