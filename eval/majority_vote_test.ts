// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { majorityVote } from "./majority_vote.ts";

Deno.test("majorityVote() groups equivalent answers with the verifier's equality", () => {
  const r = majorityVote(["\\frac12", "3", "0.5", "3", "\\dfrac{1}{2}"]);
  assert.deepEqual(r, { index: 0, count: 3, classes: [[0, 2, 4], [1, 3]] });
});

Deno.test("majorityVote() breaks ties by first appearance and skips null", () => {
  assert.deepEqual(majorityVote([null, "2", "1", "1", "2"]).index, 1);
  assert.deepEqual(majorityVote([null, null]), { index: null, count: 0, classes: [] });
});

Deno.test("majorityVote() accepts a pluggable equality", () => {
  const r = majorityVote([1, 2, 3, 11], { equal: (a, b) => a % 10 === b % 10 });
  assert.equal(r.index, 0);
  assert.equal(r.count, 2);
});
