// The CPU train backend's `hiddenLayer` (the loss reads a decoder layer's output as `lastHidden`)
// and its LoRA dropout (the non-linear path's cotangent comes from the same dropout forward as the
// backward; masks do not depend on the batch layout), checked against central finite differences
// of the float64 forward through the whole model.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createTrainBackend, type PolicyOutputs } from "./backend.ts";
import { sftLoss } from "./sft_loss.ts";
import type { LossOutput } from "./types.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { Qwen3Config } from "../model/config.ts";
import { TINY_CONFIG } from "./_test_utils.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";

const CONFIG: Qwen3Config = { ...TINY_CONFIG, numHiddenLayers: 2 };

const INPUT: ForwardInput = {
  inputIds: [[1, 5, 7, 2], [3, 4, 9, 0]],
  attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]],
};
const MASK = new Float64Array([0, 1, 1, 1, 1, 0]);

// Finite-difference step on float32 weights (the quotient divides by the step actually taken) and
// the bound on ‖analytic − fd‖ / ‖fd‖ over the checked entries. The central difference's
// truncation error scales as H²: measured 2.3e-4 / 2.3e-6 relative at H = 1e-3 / 1e-4 on the
// dropout case (that clean scaling is itself evidence the gradients are exact); at H = 1e-5 it is
// ~2e-8, plus ~6e-8 from the float32 rounding of the returned gradients. 1e-6 leaves a margin of
// >10× while a missing or misplaced term (or the dropout bug: a relative error of ~1) is ≥ 1e-2.
const H = 1e-5;
const FD_TOL = 1e-6;

/** A non-linear term: the SFT NLL plus ½ Σ (r_i·h_i)² on the hidden states (r fixed). */
function term(outputs: PolicyOutputs, lossMask: Float64Array = MASK): LossOutput {
  const sft = sftLoss({ logprobs: outputs.logprobs, lossMask });
  const h = outputs.lastHidden!;
  const dLastHidden = new Float64Array(h.length);
  let value = sft.value;
  for (let i = 0; i < h.length; i++) {
    const r = 0.3 + ((i * 7) % 11) / 10;
    value += 0.5 * (r * h[i]) ** 2;
    dLastHidden[i] = r * r * h[i];
  }
  return { value, grad: { dLogprobs: sft.grad.dLogprobs, dLastHidden }, metrics: {} };
}

/** The term's value from the forward alone (trace), reading layer `layer`'s output. */
function valueOf(
  model: CpuQwen3,
  layer: number | undefined,
  dropoutSeed?: number,
  lossMask: Float64Array = MASK,
): number {
  const t = model.trace(INPUT, { dropoutSeed });
  const { batch: B, seqLen: T, targets } = t.batch;
  const lp = logprobRef(t.logits, targets, model.config.vocabSize).logprobs;
  const logprobs = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let s = 0; s + 1 < T; s++) logprobs[b * (T - 1) + s] = lp[b * T + s];
  }
  const lastHidden = Float64Array.from(
    layer === undefined ? t.hidden[t.hidden.length - 1] : t.layers[layer].hOut,
  );
  // The backend gives zeros at padded positions.
  const Hs = model.config.hiddenSize;
  t.batch.mask.forEach((m, i) => {
    if (!m) lastHidden.fill(0, i * Hs, (i + 1) * Hs);
  });
  return term({ logprobs, lastHidden, batch: B, seqLen: T }, lossMask).value;
}

/** ‖g − fd‖ / ‖fd‖ over a few entries of each named tensor. */
function fdError(
  tree: Record<string, Float32Array>,
  grads: Record<string, Float32Array>,
  value: () => number,
  names: string[],
): number {
  let num = 0;
  let den = 0;
  for (const name of names) {
    const w = tree[name];
    for (const i of [0, 5, Math.floor(w.length / 2), w.length - 1]) {
      const keep = w[i];
      w[i] = keep + H;
      const wUp = w[i];
      const up = value();
      w[i] = keep - H;
      const wDown = w[i];
      const down = value();
      w[i] = keep;
      const fd = (up - down) / (wUp - wDown);
      num += (grads[name][i] - fd) ** 2;
      den += fd ** 2;
    }
  }
  return Math.sqrt(num / den);
}

for (const layer of [undefined, 0, 1]) {
  Deno.test(`TrainBackend.lossAndGrads() with hiddenLayer ${layer} matches finite differences through the model`, async () => {
    const model = new CpuQwen3(CONFIG, initQwen3Weights(CONFIG, { seed: 3, std: 0.3 }));
    const backend = createTrainBackend(model, { mode: "full" });
    const { loss, grads } = await backend.lossAndGrads(INPUT, term, { hiddenLayer: layer });
    strictEqual(loss.value, valueOf(model, layer));
    const names = [
      "model.embed_tokens.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.mlp.down_proj.weight",
      "model.layers.1.self_attn.v_proj.weight",
      "model.layers.1.post_attention_layernorm.weight",
      "model.norm.weight",
    ];
    const err = fdError(backend.params.tree, grads, () => valueOf(model, layer), names);
    ok(err < FD_TOL, `hiddenLayer ${layer}: rel err vs finite differences ${err}`);
    console.log(`hiddenLayer ${layer}: rel err vs finite differences ${err.toExponential(2)}`);
    backend.dispose();
  });
}

Deno.test("TrainBackend.lossAndGrads() back-propagates a row with a hidden-state cotangent and no log-prob one", async () => {
  // Row 1 takes no log-prob loss (as an align-only row of RL) but the hidden term's cotangent.
  const alignOnly = new Float64Array([0, 1, 1, 0, 0, 0]);
  const model = new CpuQwen3(CONFIG, initQwen3Weights(CONFIG, { seed: 3, std: 0.3 }));
  const backend = createTrainBackend(model, { mode: "full" });
  const { grads } = await backend.lossAndGrads(INPUT, (o) => term(o, alignOnly));
  const names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"];
  const value = () => valueOf(model, undefined, undefined, alignOnly);
  const err = fdError(backend.params.tree, grads, value, names);
  ok(err < FD_TOL, `align-only row: rel err vs finite differences ${err}`);
  backend.dispose();
});

Deno.test("TrainBackend.lossAndGrads() names a hiddenLayer that is not a layer", async () => {
  const model = new CpuQwen3(CONFIG, initQwen3Weights(CONFIG, { seed: 3 }));
  const backend = createTrainBackend(model, { mode: "full" });
  for (const bad of [2, -1, 0.5]) {
    await rejects(backend.lossAndGrads(INPUT, term, { hiddenLayer: bad }), {
      name: "RangeError",
      message: new RegExp(
        `"hiddenLayer" must be an integer in \\[0, 2\\).*current value is ${bad}`,
      ),
    });
  }
});

function loraModel(): CpuQwen3 {
  const model = new CpuQwen3(CONFIG, initQwen3Weights(CONFIG, { seed: 4, std: 0.3 }));
  // initLoraWeights false: B is not zero, so A's gradient is not zero either.
  model.setAdapters(
    createLora(loraConfig({ r: 2, loraDropout: 0.5, initLoraWeights: false }), CONFIG, {
      seed: 5,
    }),
  );
  return model;
}

Deno.test("TrainBackend.lossAndGrads() with LoRA dropout and a non-linear term matches finite differences of the dropout forward", async () => {
  const model = loraModel();
  const backend = createTrainBackend(model, { mode: "adapters" });
  const seed = 77;
  const { loss, grads } = await backend.lossAndGrads(INPUT, term, { dropoutSeed: seed });
  strictEqual(loss.value, valueOf(model, undefined, seed));
  const names = Object.keys(backend.params.tree);
  const err = fdError(backend.params.tree, grads, () => valueOf(model, undefined, seed), names);
  ok(err < FD_TOL, `LoRA dropout, non-linear term: rel err vs finite differences ${err}`);
  console.log(
    `LoRA dropout, non-linear term: rel err vs finite differences ${err.toExponential(2)}`,
  );
});

Deno.test("TrainBackend.lossAndGrads() dropout masks do not depend on the batch layout or workers", async () => {
  const seq = [3, 4, 9, 12, 6];
  const others = [[1, 2], [7, 8, 9, 10, 11, 12], [5], [2, 2, 2], [13, 14, 15], [6, 1], [
    9,
    9,
    9,
    9,
  ]];
  // The sequence alone, and as row 3 of a batch of 8 whose other rows carry no loss.
  const single = { inputIds: [seq], mask: [0, 1, 1, 1] };
  const rows = [...others.slice(0, 3), seq, ...others.slice(3)];
  const T = Math.max(...rows.map((r) => r.length));
  const batch = {
    inputIds: rows.map((r) => [...r, ...new Array(T - r.length).fill(0)]),
    attentionMask: rows.map((r) => Array.from({ length: T }, (_, t) => (t < r.length ? 1 : 0))),
    mask: rows.flatMap((r) =>
      Array.from({ length: T - 1 }, (_, t) => (r === seq && t >= 1 && t < r.length - 1 ? 1 : 0))
    ),
  };
  const model = loraModel();
  const run = async (input: ForwardInput, lossMask: number[], workers: number) => {
    const backend = createTrainBackend(model, { mode: "adapters", workers });
    try {
      return await backend.lossAndGrads(
        input,
        ({ logprobs }) => sftLoss({ logprobs, lossMask }),
        { linear: true, dropoutSeed: 123 },
      );
    } finally {
      backend.dispose();
    }
  };
  const a = await run({ inputIds: single.inputIds }, single.mask, 1);
  const b = await run(batch, batch.mask, 1);
  const c = await run(batch, batch.mask, 3);
  strictEqual(a.loss.value, b.loss.value);
  strictEqual(a.loss.value, c.loss.value);
  deepStrictEqual(b.grads, a.grads);
  deepStrictEqual(c.grads, a.grads);
  // The masks themselves: the sequence's rows of a padded batch trace equal its own trace's.
  const alone = model.trace({ inputIds: [seq] }, { dropoutSeed: 123 });
  const inBatch = model.trace(
    { inputIds: batch.inputIds, attentionMask: batch.attentionMask },
    { dropoutSeed: 123 },
  );
  const m1 = alone.layers[1].lora.q_proj!.dropoutMask!;
  const m8 = inBatch.layers[1].lora.q_proj!.dropoutMask!;
  const width = CONFIG.hiddenSize;
  deepStrictEqual(m8.subarray(3 * T * width, (3 * T + seq.length) * width), m1);
  // Left padding does not move them either (they follow the index among the real tokens).
  const left = model.trace(
    {
      inputIds: [[0, 0, ...seq], [1, 2, 3, 4, 5, 6, 7]],
      attentionMask: [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]],
    },
    { dropoutSeed: 123 },
  );
  deepStrictEqual(left.layers[1].lora.q_proj!.dropoutMask!.subarray(2 * width, 7 * width), m1);
  // And the masks do change with the seed.
  const other = model.trace({ inputIds: [seq] }, { dropoutSeed: 124 });
  ok(other.layers[1].lora.q_proj!.dropoutMask!.some((x, i) => x !== m1[i]));
});
