import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { AGGREGATIONS } from "./agg_loss.ts";
import { clippedPolicyLoss, type ClippedPolicyLossOptions } from "./clipped_policy_loss.ts";
import { assertGradClose, centralDiff, FD_TOL, rand } from "./_test_utils.ts";

const near = (a: number, b: number, tol = 1e-14) =>
  ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

// Two sequences of three tokens covering every branch (clipLow 0.2, clipHigh 0.28, dual 3):
//   t0: A =  1, r = 2   → l1 = −2,  l2 = −1.28 → clipped high, l = −1.28, no gradient
//   t1: A =  1, r = 0.5 → l1 = −0.5, l2 = −0.8 → l = −0.5, dl/dlogp = −A·r = −0.5
//   t2: A = −1, r = 0.5 → l1 = 0.5,  l2 = 0.8  → clipped low, l = 0.8, no gradient
//   t3: A = −1, r = 4   → l1 = 4,    l2 = 1.28 → l = 4, capped by the dual clip at 3
//   t4: A = −2, r = 1.5 → l1 = 3,    l2 = 2.56 → l = 3 (below the cap 6), dl/dlogp = 3
//   t5: not a loss token
const hand: ClippedPolicyLossOptions = {
  logprobs: [Math.log(2), Math.log(0.5), Math.log(0.5), Math.log(4), Math.log(1.5), -9],
  oldLogprobs: [0, 0, 0, 0, 0, -1],
  advantages: [1, 1, -1, -1, -2, 5],
  lossMask: [1, 1, 1, 1, 1, 0],
  batch: 2,
  dualClip: 3,
};

Deno.test("clippedPolicyLoss() computes values, gradient and metrics by hand", () => {
  const out = clippedPolicyLoss(hand);
  near(out.value, (-1.28 - 0.5 + 0.8 + 3 + 3) / 5);
  const g = out.grad.dLogprobs!;
  near(g[1], -0.5 / 5);
  near(g[4], 3 / 5);
  for (const i of [0, 2, 3, 5]) strictEqual(Math.abs(g[i]), 0, `token ${i}`);
  const m = out.metrics;
  near(m["loss/pg"], out.value);
  near(m["loss/pg_clipfrac"], 2 / 5);
  near(m["loss/pg_clipfrac_low"], 1 / 5);
  near(m["loss/pg_clipfrac_high"], 1 / 5);
  near(m["loss/pg_clipfrac_dual"], 1 / 5);
  near(m["loss/ppo_kl"], -Math.log(3) / 5); // −ln2 + ln2 + ln2 − ln4 − ln1.5 = −ln3
  near(m["loss/ratio_max"], 4);
  strictEqual(m["loss/pg_tokens"], 5);
  // Without the dual clip t3 keeps l = 4 and its gradient −A·r = 4.
  const free = clippedPolicyLoss({ ...hand, dualClip: undefined });
  near(free.value, (-1.28 - 0.5 + 0.8 + 4 + 3) / 5);
  near(free.grad.dLogprobs![3], 4 / 5);
  strictEqual(free.metrics["loss/pg_clipfrac_dual"], 0);
  // Seq-mean-token-mean: sequence 0 = (−1.28 − 0.5 + 0.8) / 3, sequence 1 = (3 + 3) / 2.
  const seq = clippedPolicyLoss({ ...hand, aggregation: "seq-mean-token-mean" });
  near(seq.value, ((-1.28 - 0.5 + 0.8) / 3 + 3) / 2);
  near(seq.grad.dLogprobs![1], -0.5 / 6);
  near(seq.grad.dLogprobs![4], 3 / 4);
});

Deno.test("clippedPolicyLoss() uses the defaults clipLow 0.2, clipHigh 0.28, token-mean", () => {
  // r just inside both bounds is unclipped; just outside is clipped.
  const lp = (r: number) => Math.log(r);
  const out = clippedPolicyLoss({
    logprobs: [lp(1.27), lp(1.29), lp(0.81), lp(0.79)],
    oldLogprobs: [0, 0, 0, 0],
    advantages: [1, 1, -1, -1],
    lossMask: [1, 1, 1, 1],
    batch: 1,
  });
  near(out.metrics["loss/pg_clipfrac_high"], 0.25);
  near(out.metrics["loss/pg_clipfrac_low"], 0.25);
  deepStrictEqual(
    [...out.grad.dLogprobs!].map((g) => Math.abs(g) > 0),
    [true, false, true, false],
  );
  near(out.value, (-1.27 - 1.28 + 0.81 + 0.8) / 4);
});

// Ratios away from the kinks (0.8, 1.28 and the dual cap at 3), so central differences are
// smooth; advantages of both signs.
function randomCase(seed: number, batch: number, width: number): ClippedPolicyLossOptions {
  const ratios = [0.3, 0.7, 0.95, 1.05, 1.2, 1.6, 3.5, 5];
  const n = batch * width;
  const u = rand(3 * n, seed, 0, 1);
  const oldLogprobs = rand(n, seed + 1, -3, -0.1);
  const logprobs = oldLogprobs.map((o, i) => o + Math.log(ratios[Math.floor(u[i] * 8)]));
  const advantages = Float64Array.from(
    { length: n },
    (_, i) => (u[n + i] < 0.5 ? -1 : 1) * (0.3 + 1.2 * u[2 * n + i]),
  );
  const lossMask = Float64Array.from({ length: n }, (_, i) => {
    const b = Math.floor(i / width);
    const t = i % width;
    return b === batch - 1 ? 0 : t >= b % 3 && t < width - (b % 2) ? 1 : 0; // last: empty
  });
  return { logprobs, oldLogprobs, advantages, lossMask, batch };
}

Deno.test("clippedPolicyLoss() gradient matches central differences in every aggregation", () => {
  let worst = 0;
  for (const aggregation of AGGREGATIONS) {
    for (const dualClip of [undefined, 3]) {
      for (const extra of [{}, { normalizer: 7, maxResponseLength: 9 }]) {
        const c = randomCase(11, 6, 8);
        const options = { ...c, aggregation, dualClip, ...extra };
        const lp = Float64Array.from(c.logprobs);
        const out = clippedPolicyLoss({ ...options, logprobs: lp });
        // The case exercises clipped, unclipped and (with dualClip) capped tokens.
        const m = out.metrics;
        ok(m["loss/pg_clipfrac_low"] > 0 && m["loss/pg_clipfrac_high"] > 0);
        ok(m["loss/pg_clipfrac"] < 1);
        if (dualClip) ok(m["loss/pg_clipfrac_dual"] > 0);
        const fd = centralDiff(lp, () => clippedPolicyLoss({ ...options, logprobs: lp }).value);
        const what = `${aggregation} dual=${dualClip} ${JSON.stringify(extra)}`;
        worst = Math.max(worst, assertGradClose(out.grad.dLogprobs!, fd, FD_TOL, what));
      }
    }
  }
  console.log(`clippedPolicyLoss: max |analytic − central difference| = ${worst.toExponential(2)}`);
});

Deno.test("clippedPolicyLoss() micro-batches with a shared normalizer add up to the batch", () => {
  const c = randomCase(21, 4, 5);
  const half = (k: 0 | 1) => {
    const s = (a: ArrayLike<number>) => Array.from(a).slice(k * 10, k * 10 + 10);
    return {
      logprobs: s(c.logprobs),
      oldLogprobs: s(c.oldLogprobs),
      advantages: s(c.advantages),
      lossMask: s(c.lossMask),
      batch: 2,
    };
  };
  const tokens = Array.from(c.lossMask).reduce((a, b) => a + b, 0);
  const full = clippedPolicyLoss(c);
  const parts = [half(0), half(1)].map((h) => clippedPolicyLoss({ ...h, normalizer: tokens }));
  near(parts[0].value + parts[1].value, full.value, 1e-14);
  const joined = [...parts[0].grad.dLogprobs!, ...parts[1].grad.dLogprobs!];
  assertGradClose(joined, full.grad.dLogprobs!, 1e-16, "micro-batch gradient");
  // Sequence means: the normalizer is the batch's non-empty sequence count (3 of 4).
  const seq = clippedPolicyLoss({ ...c, aggregation: "seq-mean-token-sum" });
  const seqParts = [half(0), half(1)].map((h) =>
    clippedPolicyLoss({ ...h, aggregation: "seq-mean-token-sum", normalizer: 3 })
  );
  near(seqParts[0].value + seqParts[1].value, seq.value, 1e-14);
});

Deno.test("clippedPolicyLoss() clamps the log-ratio at ±20 with no gradient beyond", () => {
  const out = clippedPolicyLoss({
    logprobs: [30, -30],
    oldLogprobs: [0, 0],
    advantages: [-1, 1],
    lossMask: [1, 1],
    batch: 1,
  });
  // t0: A < 0, r = e^20 unclipped, l = e^20 with a zero gradient (clamped); t1: r = e^−20 → 0,
  // l1 = −e^−20 > l2 = −0.8: unclipped, zero gradient (clamped).
  near(out.value, (Math.exp(20) - Math.exp(-20)) / 2);
  deepStrictEqual([...out.grad.dLogprobs!].map(Math.abs), [0, 0]);
  near(out.metrics["loss/ratio_max"], Math.exp(20));
});

Deno.test("clippedPolicyLoss() with no loss token is 0 with a zero gradient", () => {
  const out = clippedPolicyLoss({
    logprobs: [-1, -2],
    oldLogprobs: [-1, -1],
    advantages: [1, 1],
    lossMask: [0, 0],
    batch: 1,
  });
  strictEqual(out.value, 0);
  ok(out.grad.dLogprobs!.every((g) => g === 0));
  strictEqual(out.metrics["loss/pg_clipfrac"], 0);
});

Deno.test("clippedPolicyLoss() names the wrong input", () => {
  const base: ClippedPolicyLossOptions = {
    logprobs: new Float64Array(12),
    oldLogprobs: new Float64Array(12),
    advantages: new Float64Array(12),
    lossMask: new Float64Array(12).fill(1),
    batch: 3,
  };
  throws(() => clippedPolicyLoss({ ...base, lossMask: new Float64Array(10) }), {
    name: "RangeError",
    message: 'Cannot compute the clipped policy loss: "lossMask" must have 12 values ([batch, ' +
      "seqLen − 1]): current length is 10",
  });
  throws(() => clippedPolicyLoss({ ...base, batch: 5 }), {
    name: "RangeError",
    message:
      /"logprobs" must have batch · \(seqLen − 1\) values, a multiple of "batch" \(5\): current length is 12/,
  });
  throws(
    () => clippedPolicyLoss({ ...base, lossMask: Array.from(base.lossMask).fill(0.5, 3, 4) }),
    {
      name: "RangeError",
      message: /"lossMask\[3\]" must be 0 or 1: current value is 0.5/,
    },
  );
  throws(
    () => clippedPolicyLoss({ ...base, advantages: Array.from(base.advantages).fill(NaN, 7, 8) }),
    {
      name: "RangeError",
      message: /"advantages\[7\]" must be a finite number: current value is NaN/,
    },
  );
  throws(
    () =>
      clippedPolicyLoss({
        ...base,
        oldLogprobs: Array.from(base.oldLogprobs).fill(-Infinity, 0, 1),
      }),
    { message: /"oldLogprobs\[0\]" must be a finite number: current value is -Infinity/ },
  );
  throws(
    // deno-lint-ignore no-explicit-any
    () => clippedPolicyLoss({ ...base, aggregation: "sum" as any }),
    {
      name: "TypeError",
      message: /option "aggregation" must be one of .*: current value is "sum"/,
    },
  );
  throws(() => clippedPolicyLoss({ ...base, dualClip: 1 }), {
    message: /option "dualClip" must be a finite number > 1: current value is 1/,
  });
  throws(() => clippedPolicyLoss({ ...base, clipLow: 1 }), {
    message: /option "clipLow" must be a number in \[0, 1\): current value is 1/,
  });
  throws(() => clippedPolicyLoss({ ...base, batch: 0 }), {
    message: /"batch" must be an integer ≥ 1: current value is 0/,
  });
});

Deno.test("clippedPolicyLoss() with tokenWeights weighs each token's loss and gradient by hand", () => {
  // The hand case's tokens with weights 0.5, 2, 1, 1.5, 0.25 (t5 is masked): each token's loss
  // and gradient scale by its weight; the clip fractions, ppo_kl and ratio_max do not change.
  const w = [0.5, 2, 1, 1.5, 0.25, 7];
  const out = clippedPolicyLoss({ ...hand, tokenWeights: w });
  near(out.value, (0.5 * -1.28 + 2 * -0.5 + 1 * 0.8 + 1.5 * 3 + 0.25 * 3) / 5);
  const g = out.grad.dLogprobs!;
  near(g[1], (2 * -0.5) / 5);
  near(g[4], (0.25 * 3) / 5);
  for (const i of [0, 2, 3, 5]) strictEqual(Math.abs(g[i]), 0, `token ${i}`);
  const plain = clippedPolicyLoss(hand);
  for (const key of Object.keys(plain.metrics)) {
    if (key !== "loss/pg") strictEqual(out.metrics[key], plain.metrics[key], key);
  }
});

Deno.test("clippedPolicyLoss() with tokenWeights of 1 is bit-identical to none", () => {
  for (const aggregation of AGGREGATIONS) {
    const c = randomCase(5, 5, 7);
    const a = clippedPolicyLoss({ ...c, aggregation, dualClip: 3 });
    const b = clippedPolicyLoss({
      ...c,
      aggregation,
      dualClip: 3,
      tokenWeights: new Float64Array(c.logprobs.length).fill(1),
    });
    deepStrictEqual(b.value, a.value, aggregation);
    deepStrictEqual([...b.grad.dLogprobs!], [...a.grad.dLogprobs!], aggregation);
    deepStrictEqual(b.metrics, a.metrics, aggregation);
  }
});

Deno.test("clippedPolicyLoss() with tokenWeights: gradient matches central differences", () => {
  // The weights are constants (TIS: no gradient through them), so the finite differences of the
  // value in the log-probs alone must equal the analytic gradient: tolerance FD_TOL absolute.
  let worst = 0;
  for (const aggregation of AGGREGATIONS) {
    const c = randomCase(17, 6, 8);
    const tokenWeights = rand(c.logprobs.length, 3, 0, 2);
    const lp = Float64Array.from(c.logprobs);
    const options = { ...c, aggregation, dualClip: 3, tokenWeights };
    const out = clippedPolicyLoss({ ...options, logprobs: lp });
    const fd = centralDiff(lp, () => clippedPolicyLoss({ ...options, logprobs: lp }).value);
    worst = Math.max(worst, assertGradClose(out.grad.dLogprobs!, fd, FD_TOL, aggregation));
  }
  console.log(`clippedPolicyLoss tokenWeights: max |analytic − FD| = ${worst.toExponential(2)}`);
});

Deno.test("clippedPolicyLoss() names bad tokenWeights", () => {
  const base = randomCase(2, 2, 3);
  throws(() => clippedPolicyLoss({ ...base, tokenWeights: [1, 1] }), {
    name: "RangeError",
    message: /"tokenWeights" must have 6 values/,
  });
  throws(() => clippedPolicyLoss({ ...base, tokenWeights: [1, 1, -1, 1, 1, 1] }), {
    name: "RangeError",
    message: /"tokenWeights" must be finite and ≥ 0: current value at index 2 is -1/,
  });
});
