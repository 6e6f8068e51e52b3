import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { sftLoss } from "../sft_loss.ts";
import { clippedPolicyLoss } from "./clipped_policy_loss.ts";
import { hiddenAlignLoss } from "./hidden_align_loss.ts";
import { createLoss, createObjective, LOSS_NAMES, type LossInputs } from "./registry.ts";
import { rand } from "./_test_utils.ts";

// Three sequences of 4 tokens, hiddenSize 3.
const inputs: LossInputs = {
  logprobs: rand(9, 1, -3, -0.1),
  lastHidden: rand(3 * 4 * 3, 2),
  batch: 3,
  seqLen: 4,
  oldLogprobs: rand(9, 3, -3, -0.1),
  advantages: rand(9, 4),
  lossMask: [0, 1, 1, 1, 1, 0, 0, 1, 1],
  anchors: [2, 3, 1],
  groups: [0, 0, 0],
  correct: [1, 1, 1],
};

Deno.test("createLoss() builds each registered term from its options", () => {
  deepStrictEqual(LOSS_NAMES, ["clipped_pg", "hidden_align", "sft"]);
  const pg = createLoss("clipped_pg", { clipHigh: 0.3, aggregation: "seq-mean-token-mean" })(
    inputs,
  );
  deepStrictEqual(
    pg,
    clippedPolicyLoss({
      logprobs: inputs.logprobs,
      oldLogprobs: inputs.oldLogprobs!,
      advantages: inputs.advantages!,
      lossMask: inputs.lossMask!,
      batch: 3,
      clipHigh: 0.3,
      aggregation: "seq-mean-token-mean",
    }),
  );
  const align = createLoss("hidden_align", { type: "mse-raw" })(inputs);
  deepStrictEqual(
    align,
    hiddenAlignLoss({
      hidden: inputs.lastHidden!,
      batch: 3,
      seqLen: 4,
      hiddenSize: 3,
      anchors: inputs.anchors!,
      groups: inputs.groups!,
      correct: inputs.correct!,
      type: "mse-raw",
    }),
  );
  deepStrictEqual(
    createLoss("sft")(inputs),
    sftLoss({ logprobs: inputs.logprobs, lossMask: inputs.lossMask! }),
  );
});

Deno.test("createLoss() terms take per-micro-batch normalizers from their input", () => {
  const withN = { ...inputs, normalizers: { clipped_pg: 100, sft: 50, hidden_align: 9 } };
  const pg = createLoss("clipped_pg", { normalizer: 1 });
  strictEqual(pg(withN).value, clippedPolicyLoss({ ...pgArgs(), normalizer: 100 }).value);
  strictEqual(pg(inputs).value, clippedPolicyLoss({ ...pgArgs(), normalizer: 1 }).value);
  strictEqual(
    createLoss("sft")(withN).value,
    sftLoss({ logprobs: inputs.logprobs, lossMask: inputs.lossMask!, normalizer: 50 }).value,
  );
  const a = createLoss("hidden_align")(withN).value;
  const b = createLoss("hidden_align")(inputs).value;
  strictEqual(Math.abs(a * 9 - b * 3) < 1e-12, true, `${a} · 9 vs ${b} · 3`);
});

function pgArgs() {
  return {
    logprobs: inputs.logprobs,
    oldLogprobs: inputs.oldLogprobs!,
    advantages: inputs.advantages!,
    lossMask: inputs.lossMask!,
    batch: 3,
  };
}

Deno.test("createObjective() is the weighted sum of the named terms", () => {
  const objective = createObjective([
    { name: "clipped_pg", options: { dualClip: 3 } },
    { name: "hidden_align", weight: 0.1 },
  ]);
  const out = objective(inputs);
  const pg = createLoss("clipped_pg", { dualClip: 3 })(inputs);
  const align = createLoss("hidden_align")(inputs);
  strictEqual(out.value, pg.value + 0.1 * align.value);
  deepStrictEqual(out.grad.dLogprobs, pg.grad.dLogprobs);
  deepStrictEqual(out.grad.dLastHidden, align.grad.dLastHidden!.map((x) => 0.1 * x));
  deepStrictEqual(out.metrics, { ...pg.metrics, ...align.metrics });
  throws(() => createObjective([{ name: "sft" }, { name: "sft", weight: 2 }])(inputs), {
    name: "RangeError",
    message: /"sft" logs the metric "loss\/nll" that "sft" already logs/,
  });
});

Deno.test("createLoss() names the wrong name, option or input", () => {
  // deno-lint-ignore no-explicit-any
  throws(() => createLoss("dpo" as any), {
    name: "TypeError",
    message: /name must be one of "clipped_pg", "hidden_align", "sft": current value is "dpo"/,
  });
  // deno-lint-ignore no-explicit-any
  throws(() => createLoss("clipped_pg", { clip_high: 0.3 } as any), {
    name: "TypeError",
    message: /Cannot create loss "clipped_pg": unknown option "clip_high": known options are/,
  });
  // deno-lint-ignore no-explicit-any
  throws(() => createLoss("hidden_align", { type: "cos" as any }), {
    name: "TypeError",
    message: /option "type" must be one of/,
  });
  throws(() => createLoss("clipped_pg", { dualClip: 0.5 }), {
    name: "RangeError",
    message: /option "dualClip" must be a finite number > 1: current value is 0.5/,
  });
  throws(() => createLoss("clipped_pg")({ ...inputs, advantages: undefined }), {
    name: "TypeError",
    message: /Cannot evaluate loss "clipped_pg": the input has no "advantages"/,
  });
  throws(() => createLoss("hidden_align")({ ...inputs, lastHidden: undefined }), {
    name: "TypeError",
    message: /the input has no "lastHidden"/,
  });
  throws(() => createLoss("sft")({ ...inputs, seqLen: 5 }), {
    name: "RangeError",
    message:
      /"logprobs" must have 12 values \(\[batch, seqLen − 1\] = 3·\(5 − 1\)\): current length is 9/,
  });
});
