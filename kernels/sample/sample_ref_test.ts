import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { sampleRef, samplingDistributionRef } from "./sample_ref.ts";

// Closed-form probabilities in float64: agreement to 1e-12.
const TOL = 1e-12;

function close(got: ArrayLike<number>, want: number[], what: string): void {
  for (let i = 0; i < want.length; i++) {
    ok(Math.abs(got[i] - want[i]) <= TOL, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

Deno.test("samplingDistributionRef() applies temperature, then top-k, top-p and min-p", () => {
  const l = [Math.log(1), Math.log(2), Math.log(3), Math.log(4)]; // p ∝ 1, 2, 3, 4
  close(samplingDistributionRef(l, { temperature: 1 }), [0.1, 0.2, 0.3, 0.4], "T=1");
  close(
    samplingDistributionRef(l, { temperature: 0.5 }),
    [1 / 30, 4 / 30, 9 / 30, 16 / 30],
    "T=0.5",
  );
  close(samplingDistributionRef(l, { temperature: 1, topK: 2 }), [0, 0, 3 / 7, 4 / 7], "top-k 2");
  // Descending 0.4, 0.3 reaches 0.7 ≥ 0.6: keep two.
  close(
    samplingDistributionRef(l, { temperature: 1, topP: 0.6 }),
    [0, 0, 3 / 7, 4 / 7],
    "top-p 0.6",
  );
  close(
    samplingDistributionRef(l, { temperature: 1, topP: 0.75 }),
    [0, 2 / 9, 3 / 9, 4 / 9],
    "top-p 0.75",
  );
  // Top-p after top-k: of {3, 4}, 4/7 < 0.6 so both stay.
  close(
    samplingDistributionRef(l, { temperature: 1, topK: 2, topP: 0.6 }),
    [0, 0, 3 / 7, 4 / 7],
    "k+p",
  );
  // min-p 0.5: keep p ≥ 0.5 · 0.4.
  close(
    samplingDistributionRef(l, { temperature: 1, minP: 0.5 }),
    [0, 2 / 9, 3 / 9, 4 / 9],
    "min-p",
  );
  deepStrictEqual([...samplingDistributionRef([1, 5, 5, 2], { temperature: 0 })], [0, 1, 0, 0]);
  // Ties at the top-k threshold are all kept.
  close(
    samplingDistributionRef([0, 1, 1, 2], { temperature: 1, topK: 2 }).map((p) => p > 0 ? 1 : 0),
    [0, 1, 1, 1],
    "ties",
  );
});

Deno.test("sampleRef() draws by Gumbel-max and reports both log-probs", () => {
  const l = [0.5, -1, 2, 0];
  const z = Math.log(l.reduce((s, x) => s + Math.exp(x), 0));
  const counts = [0, 0, 0, 0];
  for (let seq = 0; seq < 4000; seq++) {
    const r = sampleRef(l, { temperature: 1, seed: 1, sequence: seq, step: 0 });
    counts[r.token]++;
    ok(Math.abs(r.modelLogprob - (l[r.token] - z)) < TOL);
    ok(Math.abs(r.logprob - r.modelLogprob) < TOL, "at T=1 with no filter both log-probs agree");
  }
  const p = l.map((x) => Math.exp(x - z));
  // Chi-square with 3 dof; 21.108 is the 1e-4 upper quantile (fixed seed: deterministic).
  const chi2 = counts.reduce((s, c, j) => s + (c - 4000 * p[j]) ** 2 / (4000 * p[j]), 0);
  ok(chi2 < 21.108, `chi2 ${chi2}, counts ${counts}`);
  const greedy = sampleRef(l, { temperature: 0, seed: 1, sequence: 0, step: 0 });
  strictEqual(greedy.token, 2);
  strictEqual(greedy.logprob, 0);
});

Deno.test("sampleRef() treats banned ids as −∞ for the choice, not for the model log-prob", () => {
  const l = [Math.log(1), Math.log(2), Math.log(3), Math.log(4)]; // p ∝ 1, 2, 3, 4
  const coords = { seed: 1, sequence: 0, step: 0, bannedTokenIds: [3] };
  const greedy = sampleRef(l, { temperature: 0, ...coords });
  strictEqual(greedy.token, 2);
  close([greedy.logprob, greedy.modelLogprob], [0, Math.log(0.3)], "greedy");
  // Sampling from p ∝ 1, 2, 3 (top-k 2 keeps 1 and 2 of the allowed tokens).
  const drawn = sampleRef(l, { temperature: 1, topK: 2, ...coords });
  ok(drawn.token === 1 || drawn.token === 2);
  close(
    [drawn.logprob, drawn.modelLogprob],
    [Math.log((drawn.token + 1) / 5), Math.log((drawn.token + 1) / 10)],
    "top-k 2",
  );
  for (let seed = 0; seed < 50; seed++) {
    strictEqual(sampleRef(l, { temperature: 1, ...coords, seed }).token === 3, false);
  }
});
