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
import { matmulRef } from "../kernels/matmul/matmul_ref.ts";
import { moeBalanceLossRef, moeBalanceStatsRef } from "../kernels/moe_route/moe_balance_ref.ts";
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
      // Not v_proj: with these seeds its layer-0 router sends 5 and 5 tokens to its 2 experts,
      // so its balance gradient is exactly 0 (per projection), as is the top-1 gates'.
      "model.layers.0.self_attn.k_proj",
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

/** The balance loss of a trace recomputed from scratch: router logits → stats → loss. */
function independentBalance(model: CpuQwen3, lora: Lora): number {
  const t = model.trace(input);
  let loss = 0;
  for (const m of lora.modules) {
    if (!m.router) continue;
    const route = t.layers[m.layer].lora[m.target]!.route!;
    const E = m.experts.length;
    const n = route.x.length / m.inFeatures;
    const logits = matmulRef(route.x, m.router.weight, [n, E, m.inFeatures]);
    const { activation, topK, topP } = m.router;
    const stats = moeBalanceStatsRef(logits, t.batch.mask, { experts: E, activation, topK, topP });
    loss += moeBalanceLossRef(stats, E);
  }
  return loss;
}

Deno.test("cpuBackward() adds the balance loss (one term per routed projection) only with a coefficient", () => {
  const lora = randomHilo({ experts: "4-4", rank: "2-2" }, 5);
  const model = new CpuQwen3(config, weights);
  model.setAdapters(lora);
  const base = { mode: "adapters" as const, dLogprobs: randomArray(10, 32) };
  const name = routerTensorName(lora.modules[0]);
  const g0 = cpuBackward(model, input, { ...base, balanceCoef: 0 });
  const g1 = cpuBackward(model, input, { ...base, balanceCoef: 1 });
  assert.equal(g1.loss - g0.loss, g1.balanceLoss);
  // The sum over the 14 routed projections of E·Σ_e f_e·P_e, f = counts / real tokens.
  const want = independentBalance(model, lora);
  assert.ok(
    Math.abs(g0.balanceLoss - want) <= 1e-12 * want,
    `balance loss ${g0.balanceLoss} vs independent ${want}`,
  );
  // Top-2 of 4: 2 per projection when perfectly balanced; random routers stay near it.
  const routed = lora.modules.filter((m) => m.router).length;
  assert.ok(g0.balanceLoss > routed && g0.balanceLoss < 2 * 2 * routed, `${g0.balanceLoss}`);
  const diff = relativeError(g1.grads.get(name)!, g0.grads.get(name)!);
  assert.ok(diff > 1e-3, `the balance gradient changes the router's by ${diff.toExponential(2)}`);
});

Deno.test("cpuBalanceLoss() scores each projection's router on its own (no pooling across projections)", () => {
  // Layer traces made by hand: 4 tokens, 2 experts, top-1; q sends every token to expert 0 and
  // v every token to expert 1, each with probability 0.9.
  const E = 2;
  const n = 4;
  const route = (expert: number) => {
    const probs = new Float64Array(n * E);
    const selected = new Float64Array(n * E);
    for (let t = 0; t < n; t++) {
      probs[t * E + expert] = 0.9;
      probs[t * E + 1 - expert] = 0.1;
      selected[t * E + expert] = 1;
    }
    return { probs, selected };
  };
  const mod = (name: string) => ({ name, experts: [{}, {}] });
  const trace = {
    lora: {
      q_proj: { module: mod("q"), route: route(0) },
      v_proj: { module: mod("v"), route: route(1) },
    },
  } as unknown as Parameters<typeof cpuBalanceLoss>[0];
  const { loss, dProbs } = cpuBalanceLoss(trace);
  // Each projection: E·Σ f·P = 2·(1·0.9 + 0·0.1) = 1.8, so 3.6 for the two. Pooled over the
  // layer (the old form) the counts 4 + 4 and probabilities would score the balanced minimum 1.
  assert.ok(Math.abs(loss - 3.6) < 1e-12, `per-projection loss ${loss}, want 3.6`);
  // A balanced projection (2 and 2 tokens, p = 0.5) scores 1 (= k): the skewed pair is worse.
  const balanced = {
    lora: {
      q_proj: {
        module: mod("q"),
        route: {
          probs: new Float64Array(n * E).fill(0.5),
          selected: Float64Array.from([1, 0, 0, 1, 1, 0, 0, 1]),
        },
      },
    },
  } as unknown as Parameters<typeof cpuBalanceLoss>[0];
  assert.ok(Math.abs(cpuBalanceLoss(balanced).loss - 1) < 1e-12);
  // dloss/dp = E·count/N² = 2·4/16 = 0.5 on the chosen expert, 0 on the other.
  assert.deepEqual(Array.from(dProbs.q_proj!.subarray(0, 2)), [0.5, 0]);
  assert.deepEqual(Array.from(dProbs.v_proj!.subarray(0, 2)), [0, 0.5]);
});
