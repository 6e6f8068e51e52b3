// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { scoreProblems } from "./score_problems.ts";
import { passAtK } from "./pass_at_k.ts";

Deno.test("scoreProblems() averages pass@k, avg and maj@k over problems", () => {
  const problems = [
    { correct: [true, false, false, false], answers: ["1", "2", "2", "3"] },
    { correct: [true, true, true, false], answers: ["0.5", "\\frac12", "1/2", "7"] },
    { correct: [false, false, false, false], answers: [null, null, "9", "9"] },
  ];
  const r = scoreProblems(problems, { ks: [1, 2] });
  assert.equal(r.problems, 3);
  assert.ok(Math.abs(r.passAtK[1].mean - (0.25 + 0.75 + 0) / 3) < 1e-12);
  assert.ok(Math.abs(r.passAtK[2].mean - (passAtK(4, 1, 2) + passAtK(4, 3, 2)) / 3) < 1e-12);
  assert.ok(Math.abs(r.avg.mean - 1 / 3) < 1e-12);
  assert.equal(r.majAtK?.[2].mean, 2 / 3); // ties go to the first class: "1" (correct)
  assert.ok(r.passAtK[1].lower >= 0 && r.passAtK[1].upper <= 1);
});

Deno.test("scoreProblems() omits maj@k without answers and checks k", () => {
  const r = scoreProblems([{ correct: [true, false] }]);
  assert.equal(r.majAtK, undefined);
  // Present only when every problem has one answer per sample: one problem without answers, or
  // with too few, and there is no maj@k (it would count those problems as wrong).
  const full = { correct: [true, false], answers: ["1", "2"] };
  assert.equal(scoreProblems([full, { correct: [true, true] }]).majAtK, undefined);
  assert.equal(scoreProblems([full, { correct: [true, true], answers: ["1"] }]).majAtK, undefined);
  assert.throws(() => scoreProblems([{ correct: [true] }], { ks: [2] }), RangeError);
  assert.throws(() => scoreProblems([]), RangeError);
});
