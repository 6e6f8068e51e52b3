// Checks of cpuBackward() against central finite differences of the CPU forward in float64 (an
// independent reference: only the forward is used), for base weights (full fine-tuning), for the
// token log-prob cotangent path, and for multi-expert rsLoRA adapters with training-mode dropout.
// The LoRA path without dropout is checked against PEFT in tests/lora_golden_test.ts.
import assert from "node:assert/strict";
import { randomArray, relativeError } from "../gpu/test_utils.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { createLora, loraTensorName } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readQwen3Config } from "./config.ts";
import type { ForwardInput } from "./forward_input.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { cpuBackward, type CpuBackwardOptions } from "./qwen3_cpu_backward.ts";
import { loadQwen3Weights } from "./weights.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";

// Finite-difference step. Weights are float32, so the perturbed value is rounded: the quotient
// divides by the step actually taken, fround(w ± H) − w, which is exact in float64. The truncation
// error of the central difference scales as H²: measured 5e-6 / 5e-8 / 6e-10 relative at
// H = 1e-3 / 1e-4 / 1e-5 (that clean H² scaling is itself evidence the gradients are exact).
// At H = 1e-5 float64 rounding of the O(1e2) loss adds at most ~1e-8 relative.
const H = 1e-5;
// Bound on ‖analytic − finite difference‖ / ‖finite difference‖ over the checked entries: ~100×
// the measured error, far below the 1e-2..1e0 error of any missing or misplaced term.
const FD_TOL = 1e-7;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
const V = config.vocabSize;
const HS = config.hiddenSize;

// Two short sequences; row 1 is right-padded, so masking is exercised.
const input: ForwardInput = {
  inputIds: [[5, 17, 300, 42, 9, 77], [250, 3, 3, 128, 1, 0]],
  attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]],
};
const n = 12;

/** The loss cpuBackward differentiates, computed from the forward alone. */
function lossOf(model: CpuQwen3, opts: CpuBackwardOptions): number {
  const t = model.trace(input, { dropoutSeed: opts.dropoutSeed });
  const last = t.hidden[t.hidden.length - 1];
  let loss = 0;
  if (opts.dLogits) {
    for (let i = 0; i < t.logits.length; i++) loss += t.logits[i] * opts.dLogits[i];
  }
  if (opts.dLastHidden) {
    for (let i = 0; i < last.length; i++) loss += last[i] * opts.dLastHidden[i];
  }
  if (opts.dLogprobs) {
    const lp = logprobRef(t.logits, t.batch.targets, V).logprobs;
    const T = t.batch.seqLen;
    for (let b = 0; b < t.batch.batch; b++) {
      for (let s = 0; s + 1 < T; s++) loss += lp[b * T + s] * opts.dLogprobs[b * (T - 1) + s];
    }
  }
  return loss;
}

/** Central difference of the loss along element `i` of the float32 array `w`. */
function finiteDifference(model: CpuQwen3, w: Float32Array, i: number, opts: CpuBackwardOptions) {
  const w0 = w[i];
  w[i] = w0 + H;
  const up = w[i] - w0;
  const lp = lossOf(model, opts);
  w[i] = w0 - H;
  const down = w0 - w[i];
  const lm = lossOf(model, opts);
  w[i] = w0;
  return (lp - lm) / (up + down);
}

interface Probe {
  name: string;
  array: Float32Array;
  indices: number[];
}

function checkProbes(
  model: CpuQwen3,
  grads: Map<string, Float64Array>,
  probes: Probe[],
  opts: CpuBackwardOptions,
): number {
  const got: number[] = [];
  const want: number[] = [];
  for (const p of probes) {
    const g = grads.get(p.name);
    assert.ok(g, `missing gradient ${p.name}`);
    assert.equal(g.length, p.array.length, `gradient ${p.name} has the weight's size`);
    for (const i of p.indices) {
      got.push(g[i]);
      want.push(finiteDifference(model, p.array, i, opts));
    }
  }
  // Every probed gradient must be non-trivial, or the comparison proves nothing.
  assert.ok(want.every((x) => Math.abs(x) > 1e-6), `a probed derivative is ~0: ${want}`);
  const err = relativeError(got, want);
  assert.ok(err <= FD_TOL, `relative error ${err.toExponential(2)} exceeds ${FD_TOL}`);
  return err;
}

const range = (start: number, count: number, step = 1) =>
  Array.from({ length: count }, (_, i) => start + i * step);

Deno.test("cpuBackward() full mode matches finite differences of base weights", () => {
  const model = new CpuQwen3(config, weights);
  const opts: CpuBackwardOptions = {
    mode: "full",
    dLogits: randomArray(n * V, 11),
    dLastHidden: randomArray(n * HS, 12),
  };
  const { grads, loss } = cpuBackward(model, input, opts);
  assert.ok(Math.abs(loss - lossOf(model, opts)) <= 1e-12 * Math.abs(loss));
  const l0 = weights.layers[0];
  const l1 = weights.layers[1];
  const tied = config.tieWordEmbeddings;
  // Token 300 is an input (embedding, and the LM head when tied); token 301 is not (LM head
  // only), so its row is probed in the LM head: the embedding matrix when tied, lm_head if not.
  const head: Probe = tied
    ? { name: "model.embed_tokens.weight", array: weights.embedTokens, indices: [301 * HS + 5] }
    : { name: "lm_head.weight", array: weights.lmHead, indices: [300 * HS + 2, 301 * HS + 5] };
  const err = checkProbes(model, grads, [
    { name: "model.norm.weight", array: weights.norm, indices: [0, (HS >> 1) - 1, HS - 1] },
    { name: "model.layers.0.input_layernorm.weight", array: l0.inputLayernorm, indices: [3, 40] },
    {
      name: "model.layers.1.post_attention_layernorm.weight",
      array: l1.postAttentionLayernorm,
      indices: [7],
    },
    {
      name: "model.layers.0.self_attn.q_proj.weight",
      array: l0.qProj,
      indices: [0, 1000, l0.qProj.length - 1],
    },
    { name: "model.layers.1.self_attn.k_proj.weight", array: l1.kProj, indices: [77] },
    { name: "model.layers.0.self_attn.v_proj.weight", array: l0.vProj, indices: [500] },
    { name: "model.layers.1.self_attn.o_proj.weight", array: l1.oProj, indices: [123] },
    {
      name: "model.layers.0.self_attn.q_norm.weight",
      array: l0.qNorm,
      indices: [0, config.headDim >> 1, config.headDim - 1],
    },
    { name: "model.layers.1.self_attn.k_norm.weight", array: l1.kNorm, indices: [5] },
    { name: "model.layers.0.mlp.gate_proj.weight", array: l0.gateProj, indices: [2000] },
    { name: "model.layers.1.mlp.up_proj.weight", array: l1.upProj, indices: [9] },
    { name: "model.layers.0.mlp.down_proj.weight", array: l0.downProj, indices: [4321] },
    {
      name: "model.embed_tokens.weight",
      array: weights.embedTokens,
      indices: range(300 * HS, 8, 8),
    },
    head,
  ], opts);
  // Tied embeddings: one gradient for the shared matrix, none for lm_head. Untied: both, and
  // the embedding row of a token that is not an input gets none.
  assert.equal(grads.has("lm_head.weight"), !tied);
  assert.equal(grads.size, 1 + 1 + (tied ? 0 : 1) + 11 * config.numHiddenLayers);
  if (!tied) {
    const dEmbed = grads.get("model.embed_tokens.weight")!;
    assert.ok(dEmbed.subarray(301 * HS, 302 * HS).every((x) => x === 0));
  }
  console.log(`full mode: rel err vs finite differences ${err.toExponential(2)}`);
});

Deno.test("cpuBackward() keeps lm_head and embedding gradients apart when untied", () => {
  // The same weights with an LM head that is a separate copy of the embeddings.
  const untied = { ...weights, lmHead: Float32Array.from(weights.embedTokens) };
  const model = new CpuQwen3({ ...config, tieWordEmbeddings: false }, untied);
  const opts: CpuBackwardOptions = { mode: "full", dLogits: randomArray(n * V, 31) };
  const { grads } = cpuBackward(model, input, opts);
  const err = checkProbes(model, grads, [
    { name: "lm_head.weight", array: untied.lmHead, indices: [300 * HS + 2, 301 * HS + 5] },
    { name: "model.embed_tokens.weight", array: untied.embedTokens, indices: [300 * HS + 2] },
  ], opts);
  // Token 301 is not an input: its embedding row gets no gradient when untied.
  const dEmbed = grads.get("model.embed_tokens.weight")!;
  assert.ok(dEmbed.subarray(301 * HS, 302 * HS).every((x) => x === 0));
  console.log(`untied LM head: rel err vs finite differences ${err.toExponential(2)}`);
});

Deno.test("cpuBackward() dLogprobs path matches finite differences", () => {
  const model = new CpuQwen3(config, weights);
  model.setAdapters(createLora(loraConfig({ r: 2, initLoraWeights: false }), config, { seed: 3 }));
  const opts: CpuBackwardOptions = { mode: "full", dLogprobs: randomArray(2 * 5, 13) };
  const { grads, logprobs, loss, entropy, logits } = cpuBackward(model, input, opts);
  // Masked targets (row 1, positions 3 and 4 predict padding) have log-prob 0 like tokenLogprobs,
  // and entropy 0.
  assert.equal(logprobs[5 + 3], 0);
  assert.equal(logprobs[5 + 4], 0);
  assert.equal(entropy[5 + 3], 0);
  assert.equal(entropy[5 + 4], 0);
  // A real target's entropy is −Σ p·log p of the position's softmax, in float64 here: 1e-12.
  const V = config.vocabSize;
  const row = logits.subarray(8 * V, 9 * V); // row 1, position 2 (token 1·6 + 2)
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - max);
  let h = 0;
  for (const x of row) {
    const p = Math.exp(x - max) / z;
    if (p > 0) h -= p * Math.log(p);
  }
  assert.ok(Math.abs(entropy[5 + 2] - h) <= 1e-12 * h, `entropy ${entropy[5 + 2]} vs ${h}`);
  assert.ok(Math.abs(loss - lossOf(model, opts)) <= 1e-12 * Math.abs(loss));
  const lora = model.adapters!;
  const q0 = lora.modules.find((m) => m.name === "model.layers.0.self_attn.q_proj")!;
  const v1 = lora.modules.find((m) => m.name === "model.layers.1.self_attn.v_proj")!;
  const err = checkProbes(model, grads, [
    { name: "model.norm.weight", array: weights.norm, indices: [10] },
    {
      name: "model.layers.1.self_attn.q_norm.weight",
      array: weights.layers[1].qNorm,
      indices: [2],
    },
    {
      name: "model.layers.0.self_attn.q_proj.weight",
      array: weights.layers[0].qProj,
      indices: [7],
    },
    { name: "model.embed_tokens.weight", array: weights.embedTokens, indices: [17 * HS + 1] },
    { name: loraTensorName(q0, { matrix: "A" }), array: q0.experts[0].a, indices: [0, 100] },
    { name: loraTensorName(v1, { matrix: "B" }), array: v1.experts[0].b, indices: [3, 40] },
  ], opts);
  console.log(`dLogprobs path: rel err vs finite differences ${err.toExponential(2)}`);
});

Deno.test("cpuBackward() adapters mode matches finite differences for multi-expert rsLoRA with dropout", () => {
  const model = new CpuQwen3(config, weights);
  const cfg = loraConfig({
    r: 4,
    loraAlpha: 6,
    useRslora: true,
    loraDropout: 0.3,
    targetModules: "all-linear",
    initLoraWeights: false,
  });
  // HILO-like: layer 0 has two experts of ranks 2 and 3, layer 1 one expert of rank 4.
  const lora = createLora(cfg, config, {
    seed: 5,
    expertRanks: (m) => m.layer === 0 ? [2, 3] : [m.r],
  });
  model.setAdapters(lora);
  const opts: CpuBackwardOptions = {
    mode: "adapters",
    dLogits: randomArray(n * V, 21),
    dLastHidden: randomArray(n * HS, 22),
    dLogprobs: randomArray(2 * 5, 23),
    dropoutSeed: 99,
  };
  // Dropout is on: the training-mode loss differs from the evaluation-mode loss.
  assert.notEqual(lossOf(model, opts), lossOf(model, { ...opts, dropoutSeed: undefined }));
  const { grads } = cpuBackward(model, input, opts);
  const mod = (name: string) => lora.modules.find((m) => m.name === name)!;
  const probes: Probe[] = [];
  for (
    const [name, expert] of [
      ["model.layers.0.self_attn.q_proj", 1],
      ["model.layers.0.self_attn.k_proj", 0],
      ["model.layers.0.mlp.down_proj", 1],
      ["model.layers.1.self_attn.o_proj", 0],
      ["model.layers.1.mlp.gate_proj", 0],
    ] as const
  ) {
    const m = mod(name);
    for (const matrix of ["A", "B"] as const) {
      const array = matrix === "A" ? m.experts[expert].a : m.experts[expert].b;
      probes.push({
        name: loraTensorName(m, { matrix, expert }),
        array,
        indices: [1, array.length - 2],
      });
    }
  }
  const err = checkProbes(model, grads, probes, opts);
  // Adapters mode: exactly one A and one B gradient per expert, nothing for base weights.
  const experts = lora.modules.reduce((s, m) => s + m.experts.length, 0);
  assert.equal(grads.size, 2 * experts);
  assert.ok(grads.has("model.layers.0.self_attn.q_proj.experts.1.lora_B.weight"));
  console.log(
    `multi-expert rsLoRA + dropout: rel err vs finite differences ${err.toExponential(2)}`,
  );
});

Deno.test("cpuBackward() rejects bad options with clear errors", async () => {
  const model = new CpuQwen3(config, weights);
  await expectError(() => cpuBackward(model, input, { mode: "adapters", dLogprobs: [] }), {
    type: TypeError,
    includes: ['mode "adapters" needs adapters'],
  });
  await expectError(() => cpuBackward(model, input, { mode: "full" }), {
    type: TypeError,
    includes: ["dLogits, dLastHidden and dLogprobs"],
  });
  await expectError(
    () => cpuBackward(model, input, { mode: "full", dLogits: new Float32Array(5) }),
    { type: RangeError, includes: ["dLogits", String(n * V), "current length is 5"] },
  );
  await expectError(
    () => cpuBackward(model, input, { mode: "full", dLastHidden: new Float32Array(5) }),
    { type: RangeError, includes: ["dLastHidden", String(n * HS)] },
  );
  await expectError(
    () => cpuBackward(model, input, { mode: "full", dLogprobs: new Float32Array(12) }),
    { type: RangeError, includes: ["dLogprobs", "= 10 values"] },
  );
});
