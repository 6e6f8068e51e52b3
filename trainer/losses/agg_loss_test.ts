import { ok, strictEqual, throws } from "node:assert/strict";
import { centralDiff, FD_TOL as TOL } from "./_test_utils.ts";
import { aggLoss, AGGREGATIONS } from "./agg_loss.ts";

// Three sequences of four tokens; sequence 2 has no loss token.
const lossMat = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const lossMask = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];

Deno.test("aggLoss() computes the four modes by hand", () => {
  const v = (aggregation: (typeof AGGREGATIONS)[number], extra = {}) =>
    aggLoss({ lossMat, lossMask, batch: 3, aggregation, ...extra }).value;
  // Masked losses: sequence 0: 1, 2, 4 (sum 7, 3 tokens); sequence 1: 6 (sum 6, 1 token).
  strictEqual(v("token-mean"), 13 / 4);
  strictEqual(v("seq-mean-token-sum"), 13 / 2);
  ok(Math.abs(v("seq-mean-token-mean") - (7 / 3 + 6) / 2) < 1e-15);
  strictEqual(v("seq-mean-token-sum-norm"), 13 / (3 * 4));
  strictEqual(v("seq-mean-token-sum-norm", { maxResponseLength: 8 }), 13 / (3 * 8));
  // The normalizer replaces the token count, the sequence count, or the batch.
  strictEqual(v("token-mean", { normalizer: 10 }), 13 / 10);
  strictEqual(v("seq-mean-token-sum", { normalizer: 4 }), 13 / 4);
  ok(Math.abs(v("seq-mean-token-mean", { normalizer: 4 }) - (7 / 3 + 6) / 4) < 1e-15);
  strictEqual(v("seq-mean-token-sum-norm", { normalizer: 6 }), 13 / (6 * 4));
  strictEqual(aggLoss({ lossMat, lossMask, batch: 3 }).value, 13 / 4); // default token-mean
});

Deno.test("aggLoss() weights are the gradient of its value (central differences)", () => {
  for (const aggregation of AGGREGATIONS) {
    const x = Float64Array.from(lossMat);
    const { weights } = aggLoss({ lossMat: x, lossMask, batch: 3, aggregation });
    const fd = centralDiff(x, () => aggLoss({ lossMat: x, lossMask, batch: 3, aggregation }).value);
    for (let i = 0; i < x.length; i++) {
      ok(Math.abs(fd[i] - weights[i]) < TOL, `${aggregation} [${i}]: ${fd[i]} vs ${weights[i]}`);
      if (lossMask[i] === 0) strictEqual(weights[i], 0);
    }
  }
});

Deno.test("aggLoss() with no loss token is 0 with zero weights", () => {
  for (const aggregation of AGGREGATIONS) {
    const out = aggLoss({ lossMat: [1, 2], lossMask: [0, 0], batch: 1, aggregation });
    strictEqual(out.value, 0);
    ok(out.weights.every((w) => w === 0));
  }
});

Deno.test("aggLoss() names the wrong input", () => {
  throws(() => aggLoss({ lossMat: [1, 2, 3], lossMask: [1, 1, 1], batch: 2 }), {
    name: "RangeError",
    message:
      /"lossMat" must have batch · tokens values, a multiple of "batch" \(2\): current length is 3/,
  });
  throws(() => aggLoss({ lossMat: [1, 2], lossMask: [1], batch: 1 }), {
    name: "RangeError",
    message: /"lossMask" must have 2 values \(\[batch, tokens\]\): current length is 1/,
  });
  throws(() => aggLoss({ lossMat: [1, 2], lossMask: [1, 2], batch: 1 }), {
    message: /"lossMask\[1\]" must be 0 or 1: current value is 2/,
  });
  throws(() => aggLoss({ lossMat: [1, NaN], lossMask: [1, 1], batch: 1 }), {
    message: /"lossMat\[1\]" must be a finite number: current value is NaN/,
  });
  throws(
    // deno-lint-ignore no-explicit-any
    () => aggLoss({ lossMat: [1], lossMask: [1], batch: 1, aggregation: "mean" as any }),
    {
      name: "TypeError",
      message: /option "aggregation" must be one of "token-mean", .*: current value is "mean"/,
    },
  );
  throws(() => aggLoss({ lossMat: [1], lossMask: [1], batch: 1, normalizer: -1 }), {
    message: /option "normalizer" must be a finite number > 0: current value is -1/,
  });
});
