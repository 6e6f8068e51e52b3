import { ok, strictEqual, throws } from "node:assert/strict";
import { logprobMismatch } from "./logprob_mismatch.ts";

Deno.test("logprobMismatch() gives the k1/k3 KL estimates and ratio percentiles", () => {
  // Per token Δ = trainer − sampler = [−0.1, +0.1, 0]: k1 = 0, k3 = (2 cosh 0.1 − 2) / 3.
  const m = logprobMismatch([[-1, -2], [-3]], [[-1.1, -1.9], [-3]]);
  strictEqual(m["mismatch/tokens"], 3);
  ok(Math.abs(m["mismatch/kl_k1"]) <= 1e-15, String(m["mismatch/kl_k1"]));
  ok(Math.abs(m["mismatch/kl_k3"] - (2 * Math.cosh(0.1) - 2) / 3) <= 1e-15);
  ok(Math.abs(m["mismatch/max_abs_diff"] - 0.1) <= 1e-12);
  ok(Math.abs(m["mismatch/ratio_min"] - Math.exp(-0.1)) <= 1e-12);
  ok(Math.abs(m["mismatch/ratio_max"] - Math.exp(0.1)) <= 1e-12);
  strictEqual(m["mismatch/ratio_p50"], 1);
  // p99 interpolates between the two largest ratios: 1 + 0.98 (e^0.1 − 1).
  ok(Math.abs(m["mismatch/ratio_p99"] - (1 + 0.98 * (Math.exp(0.1) - 1))) <= 1e-12);
  throws(() => logprobMismatch([[-1, -2]], [[-1]]), /sequence 0 has 2 sampler and 1 trainer/);
  throws(
    () => logprobMismatch([[-1]], []),
    /as many trainer sequences as sampler ones \(1\): got 0/,
  );
});
