// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { majAtK } from "./maj_at_k.ts";

const samples = [
  { answer: "5", correct: false },
  { answer: "(1,2)", correct: true },
  { answer: "(1, 2)", correct: true },
  { answer: null, correct: false },
  { answer: "5", correct: false },
  { answer: "5", correct: false },
];

Deno.test("majAtK() votes over the first k samples", () => {
  assert.equal(majAtK(samples, 3), true);
  assert.equal(majAtK(samples, 6), false);
  assert.equal(majAtK(samples, 1), false);
});

Deno.test("majAtK() is false when no sample has an answer", () => {
  assert.equal(majAtK([{ answer: null, correct: false }], 1), false);
});

Deno.test("majAtK() throws RangeError on a bad k", () => {
  assert.throws(() => majAtK(samples, 7), { name: "RangeError", message: /got k=7/ });
});
