// Copyright 2025 the halo authors. MIT license.
// Verifications per second on MATH-500-style pairs (each bench iteration verifies all 500
// problems once, so pairs/s = 500 / (time per iteration)). Run: deno task bench bench/verify_bench.ts

import { type PreparedGold, prepareGold, verify } from "../verify/mod.ts";

const answers: string[] = Deno.readTextFileSync(
  new URL("../tests/fixtures/verify_math500.jsonl", import.meta.url),
).trim().split("\n").map((l) => JSON.parse(l).answer);

const correct = answers.map((a) =>
  `Let me solve this step by step. ... So the answer is $\\boxed{${a}}$.`
);
// Deterministic mismatches: each response graded against another problem's gold.
const shifted = answers.map((_, i) => answers[(i * 7 + 13) % answers.length]);
const prepared: PreparedGold[] = answers.map((a) => prepareGold(a));
const N = answers.length;

Deno.bench({
  name: "verify() x500 MATH-500 correct pairs (gold as string)",
  group: "math500",
  baseline: true,
  fn() {
    for (let i = 0; i < N; i++) verify(correct[i], answers[i]);
  },
});

Deno.bench({
  name: "verify() x500 MATH-500 correct pairs (prepared gold)",
  group: "math500",
  fn() {
    for (let i = 0; i < N; i++) verify(correct[i], prepared[i]);
  },
});

Deno.bench({
  name: "verify() x500 MATH-500 mismatched pairs (gold as string)",
  group: "math500",
  fn() {
    for (let i = 0; i < N; i++) verify(correct[i], shifted[i]);
  },
});

Deno.bench({
  name: "verify() x500 MATH-500 mismatched pairs (prepared gold)",
  group: "math500",
  fn() {
    for (let i = 0; i < N; i++) verify(correct[i], prepared[(i * 7 + 13) % N]);
  },
});

Deno.bench({
  name: "verify() x500 perturbed responses (\\dfrac, x =, trailing period)",
  group: "math500",
  fn() {
    for (let i = 0; i < N; i++) {
      const a = answers[i].replace(/\\frac/g, "\\dfrac");
      verify(`Answer: ${/[=,<>]/.test(a) ? a : `x = ${a}`}.`, prepared[i]);
    }
  },
});

// GSM8K: 1319 integer golds (each iteration verifies all of them once).
const gsm: string[] = Deno.readTextFileSync(
  new URL("../tests/fixtures/verify_gsm8k.jsonl", import.meta.url),
).trim().split("\n").map((l) => {
  const a: string = JSON.parse(l).answer;
  return a.slice(a.lastIndexOf("####") + 4).trim();
});
const gsmPrepared: PreparedGold[] = gsm.map((a) => prepareGold(a));

Deno.bench({
  name: "verify() x1319 GSM8K correct pairs (#### format, prepared gold)",
  group: "gsm8k",
  baseline: true,
  fn() {
    for (let i = 0; i < gsm.length; i++) {
      verify(`So she pays ${gsm[i]}.\n#### ${gsm[i]}`, gsmPrepared[i]);
    }
  },
});

Deno.bench({
  name: "verify() x1319 GSM8K mismatched pairs (#### format, prepared gold)",
  group: "gsm8k",
  fn() {
    const n = gsm.length;
    for (let i = 0; i < n; i++) verify(`#### ${gsm[i]}`, gsmPrepared[(i * 7 + 13) % n]);
  },
});
