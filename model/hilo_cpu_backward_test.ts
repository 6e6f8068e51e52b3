// HILO adapters through the whole CPU model: cpuBackward()'s router and expert gradients (with the
// load-balancing loss, dropout and padding) against central finite differences of the forward
// alone, for top-k and top-p routing and an E = 1 layer; the layer against the one-projection
// reference.
import assert from "node:assert/strict";
import { randomArray, relativeError } from "../gpu/test_utils.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { createHilo, hiloConfig, type HiloConfigOptions } from "../adapters/hilo.ts";
import { loraTensorName, routerTensorName } from "./adapter_types.ts";
import { readQwen3Config } from "./config.ts";
import type { ForwardInput } from "./forward_input.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { cpuBackward, type CpuBackwardOptions } from "./qwen3_cpu_backward.ts";
import { cpuBalanceLoss } from "./qwen3_cpu_layer.ts";
import { loadQwen3Weights } from "./weights.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { hiloProjectionRef } from "../adapters/hilo_projection_ref.ts";
import type { Lora } from "./adapter_types.ts";

// Step and tolerance as in qwen3_cpu_backward_test.ts: the quotient divides by the float32 step
// actually taken; measured errors are reported by each test (~1e-9), 1e-7 is the bound there.
const H = 1e-5;
const FD_TOL = 1e-7;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
const V = config.vocabSize;

// Row 1 is right-padded: padding must not enter the balance loss.
const input: ForwardInput = {
  inputIds: [[5, 17, 300, 42, 9, 77], [250, 3, 3, 128, 1, 0]],
  attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]],
};

/** The loss cpuBackward differentiates, from the forward alone. */
function lossOf(model: CpuQwen3, opts: CpuBackwardOptions): number {
  const t = model.trace(input, { dropoutSeed: opts.dropoutSeed });
  const lp = logprobRef(t.logits, t.batch.targets, V).logprobs;
  const T = t.batch.seqLen;
  let loss = 0;
  for (let b = 0; b < t.batch.batch; b++) {
    for (let s = 0; s + 1 < T; s++) loss += lp[b * T + s] * opts.dLogprobs![b * (T - 1) + s];
  }
  for (const layer of t.layers) {
    loss += opts.balanceCoef! * cpuBalanceLoss(layer, t.batch.mask).loss;
  }
  return loss;
}

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

/** Random HILO adapters with non-zero B (so every path carries gradient). */
function randomHilo(options: HiloConfigOptions, seed: number): Lora {
  const lora = createHilo(hiloConfig(config, options), config, { seed });
  let s = seed * 1000;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.3, 0.3));
    // Sharper routers than the init, so the gates differ clearly between tokens.
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

function check(lora: Lora, label: string, probes: [string, Float32Array, number[]][]): void {
  const model = new CpuQwen3(config, weights);
  model.setAdapters(lora);
  const opts: CpuBackwardOptions = {
    mode: "adapters",
    dLogprobs: randomArray(2 * 5, 31),
    dropoutSeed: 5,
    balanceCoef: 0.7,
  };
  const r = cpuBackward(model, input, opts);
  assert.ok(r.balanceLoss > 0, `${label}: no balance loss`);
  const ref = lossOf(model, opts);
  assert.ok(Math.abs(r.loss - ref) <= 1e-12 * Math.abs(ref), `${label}: loss ${r.loss} vs ${ref}`);
  const got: number[] = [];
  const want: number[] = [];
  for (const [name, array, indices] of probes) {
    const g = r.grads.get(name);
    assert.ok(g, `${label}: missing gradient ${name}`);
    assert.equal(g.length, array.length, `${label}: gradient ${name} has the weight's size`);
    for (const i of indices) {
      got.push(g[i]);
      want.push(finiteDifference(model, array, i, opts));
    }
  }
  assert.ok(want.every((x) => Math.abs(x) > 1e-7), `${label}: a probed derivative is ~0: ${want}`);
  const err = relativeError(got, want);
  console.log(`${label}: rel err vs finite differences ${err.toExponential(2)}`);
  assert.ok(err <= FD_TOL, `${label}: relative error ${err.toExponential(2)} exceeds ${FD_TOL}`);
}

function probesOf(lora: Lora): [string, Float32Array, number[]][] {
  const out: [string, Float32Array, number[]][] = [];
  for (
    const name of [
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.o_proj",
      "model.layers.1.mlp.down_proj",
    ]
  ) {
    const m = lora.modules.find((x) => x.name === name)!;
    if (m.router) {
      out.push([routerTensorName(m), m.router.weight, [0, 37, m.router.weight.length - 1]]);
    }
    const last = m.experts.length - 1;
    out.push([loraTensorName(m, { matrix: "A", expert: last }), m.experts[last].a, [3]]);
    out.push([loraTensorName(m, { matrix: "B", expert: 0 }), m.experts[0].b, [1]]);
  }
  return out;
}

Deno.test("cpuBackward() gives HILO router and expert gradients equal to finite differences (top-k)", () => {
  // Layer 0: 2 experts, top-1; layer 1: 4 experts of rank 2, top-2.
  const lora = randomHilo({ experts: "2-4", rank: "4-2", topK: [1, 2], loraDropout: 0.2 }, 1);
  check(lora, "top-k", probesOf(lora));
});

Deno.test("cpuBackward() gives HILO router and expert gradients equal to finite differences (top-p)", () => {
  const lora = randomHilo({ experts: "3-5", rank: "2-3", activation: "top-p", topP: 0.6 }, 2);
  check(lora, "top-p", probesOf(lora));
});

Deno.test("cpuBackward() with an E = 1 layer (plain LoRA, no router) equals finite differences", () => {
  const lora = randomHilo({ experts: "1-3", rank: "4-2" }, 3);
  const m0 = lora.modules.filter((m) => m.layer === 0);
  assert.ok(m0.every((m) => m.router === undefined && m.experts.length === 1));
  check(lora, "E = 1 then 3", probesOf(lora));
});

Deno.test("cpuDecoderLayer() computes a HILO projection as the one-projection reference", () => {
  const lora = randomHilo({ experts: "1-4", rank: "3-2", topK: [1, 3] }, 4);
  const model = new CpuQwen3(config, weights);
  model.setAdapters(lora);
  const t = model.trace(input);
  // Layer 0 q_proj (E = 1, plain LoRA) and layer 1 gate_proj (4 experts, top-3).
  const cases = [
    { layer: 0, name: "model.layers.0.self_attn.q_proj", x: t.layers[0].x1, y: t.layers[0].qRaw },
    { layer: 1, name: "model.layers.1.mlp.gate_proj", x: t.layers[1].x2, y: t.layers[1].gate },
  ];
  for (const c of cases) {
    const m = lora.modules.find((x) => x.name === c.name)!;
    const w0 = c.layer === 0 ? weights.layers[0].qProj : weights.layers[1].gateProj;
    const ref = hiloProjectionRef(c.x, { ...m, w0 });
    // Two float64 evaluations of the same sums in different orders: 1e-12 relative.
    const err = relativeError(c.y, ref.y);
    assert.ok(err < 1e-12, `${c.name}: relative error ${err.toExponential(2)}`);
  }
});

Deno.test("cpuBackward() adds the balance loss's router gradient only with a coefficient", () => {
  const lora = randomHilo({ experts: "4-4", rank: "2-2" }, 5);
  const model = new CpuQwen3(config, weights);
  model.setAdapters(lora);
  const base = { mode: "adapters" as const, dLogprobs: randomArray(10, 32) };
  const name = routerTensorName(lora.modules[0]);
  const g0 = cpuBackward(model, input, { ...base, balanceCoef: 0 });
  const g1 = cpuBackward(model, input, { ...base, balanceCoef: 1 });
  assert.equal(g1.loss - g0.loss, g1.balanceLoss);
  // E·Σ_e f_e·P_e is 1 for uniform routing; random routers stay near 1 per layer.
  assert.ok(g0.balanceLoss > 1 && g0.balanceLoss < 2 * config.numHiddenLayers);
  const diff = relativeError(g1.grads.get(name)!, g0.grads.get(name)!);
  assert.ok(diff > 1e-3, `the balance gradient changes the router's by ${diff.toExponential(2)}`);
});
