import { ok } from "node:assert/strict";
import { logprobRef } from "./logprob_ref.ts";

/** The textbook entropy −Σ p log p with p = softmax(x), in float64. */
function entropyOf(x: readonly number[]): number {
  const m = Math.max(...x);
  const z = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  let h = 0;
  for (const v of x) {
    const p = Math.exp(v - z);
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

Deno.test("logprobRef() entropy equals −Σ p log p: uniform, peaked and random rows", () => {
  const rows = [
    [0, 0, 0, 0], // uniform: log 4
    [50, 0, -3, 2], // nearly one-hot
    [-800, -801, -799.5], // large magnitudes (the max shift keeps it finite)
    Array.from({ length: 37 }, (_, i) => Math.sin(i * 1.7) * 4),
  ];
  for (const x of rows) {
    const got = logprobRef(x, [0], x.length).entropy[0];
    const want = entropyOf(x);
    // Two float64 sums of ≤ 37 terms: 1e-12 absolute.
    ok(Math.abs(got - want) < 1e-12, `entropy of [${x.slice(0, 4)}…]: ${got} vs ${want}`);
  }
  ok(Math.abs(logprobRef([0, 0, 0, 0], [1], 4).entropy[0] - Math.log(4)) < 1e-15);
});
