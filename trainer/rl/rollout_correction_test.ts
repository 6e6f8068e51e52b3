import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { rolloutCorrection } from "./rollout_correction.ts";

const near = (a: number, b: number, tol = 1e-12) =>
  ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

Deno.test("rolloutCorrection() weights, KL and percentiles by hand (tolerance 1e-12)", () => {
  // Policy sequence 0: ratios 0.5, 1, 4 (capped at 2); sequence 1 is not a policy row (its
  // tokens get weights but no metrics); sequence 2: ratios 1.5, 3 (capped).
  const ln = Math.log;
  const sampler = [[ln(0.4), ln(0.2), ln(0.1)], [ln(0.5)], [ln(0.2), ln(0.1)]];
  const trainer = [[ln(0.2), ln(0.2), ln(0.4)], [ln(0.05)], [ln(0.3), ln(0.3)]];
  const c = rolloutCorrection(sampler, trainer, { cap: 2, policy: [true, false, true] });
  const w = c.weights.map((x) => [...x]);
  near(w[0][0], 0.5);
  strictEqual(w[0][1], 1);
  strictEqual(w[0][2], 2);
  near(w[1][0], 0.1);
  near(w[2][0], 1.5);
  strictEqual(w[2][1], 2);
  const ratios = [0.5, 1, 4, 1.5, 3]; // the policy tokens
  const d = ratios.map(Math.log);
  const m = c.metrics;
  strictEqual(m["rollout/tokens"], 5);
  near(m["rollout/kl_k1"], -d.reduce((a, b) => a + b) / 5);
  near(m["rollout/kl_k3"], ratios.reduce((a, r, i) => a + r - 1 - d[i], 0) / 5);
  near(m["rollout/max_abs_diff"], Math.log(4));
  // Sorted 0.5, 1, 1.5, 3, 4: p50 is the middle one; p05 = 0.5 + 0.2·(1 − 0.5); p95 = 3 + 0.8·1.
  near(m["rollout/ratio_p50"], 1.5);
  near(m["rollout/ratio_p05"], 0.6);
  near(m["rollout/ratio_p95"], 3.8);
  near(m["rollout/tis_capped_frac"], 2 / 5);
  near(m["rollout/tis_weight_mean"], (0.5 + 1 + 2 + 1.5 + 2) / 5);
});

Deno.test("rolloutCorrection() counts a ratio exactly at the cap as not capped (ρ > cap)", () => {
  // d = ln 2 − 0, and exp(Math.LN2) is exactly 2 in float64: the weight is 2 either way.
  const c = rolloutCorrection([[0, 0]], [[Math.LN2, Math.log(3)]], { cap: 2, policy: [true] });
  deepStrictEqual([...c.weights[0]], [2, 2]);
  strictEqual(c.metrics["rollout/tis_capped_frac"], 0.5);
});

Deno.test("rolloutCorrection() of identical log-probs: weights 1, KL 0, ratios 1", () => {
  const lp = [[-0.3, -2.5, -7], [-1]];
  const c = rolloutCorrection(lp, lp, { cap: 2, policy: [true, true] });
  deepStrictEqual(c.weights.map((x) => [...x]), [[1, 1, 1], [1]]);
  strictEqual(c.metrics["rollout/kl_k3"], 0);
  strictEqual(c.metrics["rollout/ratio_p05"], 1);
  strictEqual(c.metrics["rollout/tis_capped_frac"], 0);
  // No policy token: neutral metrics.
  const none = rolloutCorrection(lp, lp, { cap: 2, policy: [false, false] });
  strictEqual(none.metrics["rollout/tokens"], 0);
  strictEqual(none.metrics["rollout/ratio_p50"], 1);
});

Deno.test("rolloutCorrection() names what is wrong", () => {
  throws(() => rolloutCorrection([[0]], [[0]], { cap: 0, policy: [true] }), {
    name: "RangeError",
    message: /"cap" must be a finite number > 0: current value is 0/,
  });
  throws(() => rolloutCorrection([[0, 0]], [[0]], { cap: 2, policy: [true] }), {
    message: /sequence 0 has 2 sampler and 1 trainer log-probs/,
  });
  throws(() => rolloutCorrection([[-Infinity]], [[0]], { cap: 2, policy: [true] }), {
    message: /sequence 0 token 0: log-probs must be finite/,
  });
});
