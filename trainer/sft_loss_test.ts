import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { sftLoss } from "./sft_loss.ts";

Deno.test("sftLoss() is the token mean of the masked negated log-probs", () => {
  const logprobs = [-0.5, -1.25, -3, -0.125, -2, -7];
  const lossMask = [0, 1, 1, 0, 1, 0];
  const out = sftLoss({ logprobs, lossMask });
  // Independent reference: (1.25 + 3 + 2) / 3, exact in binary.
  strictEqual(out.value, 6.25 / 3);
  deepStrictEqual(out.metrics, { "loss/nll": 6.25 / 3, "loss/tokens": 3 });
  deepStrictEqual([...out.grad.dLogprobs!], [0, -1 / 3, -1 / 3, 0, -1 / 3, 0]);
});

Deno.test("sftLoss() gradient matches central finite differences of its value", () => {
  const logprobs = [-0.3, -1.7, -0.01, -4.2];
  const lossMask = [1, 0, 1, 1];
  const { grad } = sftLoss({ logprobs, lossMask });
  const h = 1e-6;
  for (let i = 0; i < logprobs.length; i++) {
    const up = [...logprobs];
    const down = [...logprobs];
    up[i] += h;
    down[i] -= h;
    const fd = (sftLoss({ logprobs: up, lossMask }).value -
      sftLoss({ logprobs: down, lossMask }).value) / (2 * h);
    ok(Math.abs(fd - grad.dLogprobs![i]) < 1e-8, `position ${i}: ${fd} vs ${grad.dLogprobs![i]}`);
  }
});

Deno.test("sftLoss() with a batch normalizer sums micro-batches to the batch token mean", () => {
  const a = { logprobs: [-1, -2], lossMask: [1, 1] };
  const b = { logprobs: [-4, -8, -16], lossMask: [1, 0, 0] };
  const total = 3;
  const sum = sftLoss({ ...a, normalizer: total }).value +
    sftLoss({ ...b, normalizer: total }).value;
  ok(Math.abs(sum - 7 / 3) < 1e-15, `${sum}`); // up to one rounding
  // The plain mean of the two micro-batch means differs: (1.5 + 4) / 2.
  ok(Math.abs(sum - (sftLoss(a).value + sftLoss(b).value) / 2) > 0.4);
});

Deno.test("sftLoss() with no loss token is 0 with a zero gradient", () => {
  const out = sftLoss({ logprobs: [-1, -2], lossMask: [0, 0] });
  strictEqual(out.value, 0);
  deepStrictEqual([...out.grad.dLogprobs!], [0, 0]);
  strictEqual(out.metrics["loss/tokens"], 0);
});

Deno.test("sftLoss() names the wrong input", () => {
  throws(() => sftLoss({ logprobs: [-1, -2], lossMask: [1] }), {
    name: "RangeError",
    message: /"lossMask" must have the length of "logprobs" \(2\): current length is 1/,
  });
  throws(() => sftLoss({ logprobs: [-1], lossMask: [0.5] }), {
    name: "RangeError",
    message: /"lossMask\[0\]" must be 0 or 1: current value is 0.5/,
  });
  throws(() => sftLoss({ logprobs: [-1], lossMask: [1], normalizer: 0 }), {
    name: "RangeError",
    message: /option "normalizer" must be a finite number > 0: current value is 0/,
  });
});
