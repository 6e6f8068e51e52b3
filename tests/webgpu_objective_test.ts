// The RL objective (clipped policy loss + 0.1 · Hidden-Align) through a whole training step of
// the fixture model, given as data (`TrainBackend.objectiveAndGrads`):
//
// 1. WebGPU (loss kernels recorded inside the step: no log-prob or hidden-state readback) equals
//    the float64 CPU backend: gradients of every trainable tensor, the loss value and every
//    metric, for the final-norm anchor and for decoder layers' outputs, all four align types,
//    dual clip and three aggregations (one at its default token budget), a clipped_pg weight of
//    0.5, a group split across micro-batches (supplied centroids), a group with one taking-part
//    row, incorrect rows and rows without an anchor.
// 2. The CPU gradient equals central finite differences of the loss through the whole float64
//    model, along one random direction per tensor (stop-gradient targets held at their values,
//    as the optimiser sees them: `centroids` supplied for every contributing group).
//
// Tolerances: GPU vs CPU, relative to each tensor's largest CPU gradient, 2e-4 (float32 forward
// and backward of a 2-layer model, as the SFT gradient golden tests: 1e-4, doubled for the
// normalisations in the align term); loss and metrics 1e-4 relative (+1e-6 absolute). Finite
// differences: 1e-5 relative (ε = 1e-5 in float32-stored steps; truncation O(ε²)).
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type TrainBackend } from "../trainer/backend.ts";
import { alignCentroids } from "../trainer/losses/align_centroids.ts";
import type { AlignType } from "../trainer/losses/hidden_align_loss.ts";
import {
  type ObjectiveInputs,
  type ObjectiveRequest,
  objectiveTerm,
} from "../trainer/losses/objective_request.ts";
import type { LossSpec } from "../trainer/losses/registry.ts";
import type { ParamTree } from "../trainer/types.ts";

const GRAD_TOL = 2e-4;
const VALUE_TOL = 1e-4;
const FD_TOL = 1e-5;
const EPS = 1e-5;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const H = config.hiddenSize;
// Five rollouts of two prompts (groups 7 and 9), right-padded to 9 tokens; the prompt is the
// first 3 tokens of each.
const ids = [
  [3, 17, 250, 99, 4, 311, 8, 42, 5],
  [3, 17, 250, 12, 7, 300, 64, 0, 0],
  [3, 17, 250, 61, 2, 9, 0, 0, 0],
  [12, 7, 30, 64, 5, 200, 201, 202, 0],
  [12, 7, 30, 8, 8, 8, 0, 0, 0],
];
const lengths = [9, 7, 6, 8, 6];
const [B, T] = [ids.length, 9];
const input: ForwardInput = {
  inputIds: ids,
  attentionMask: ids.map((_, b) => ids[b].map((_, t) => (t < lengths[b] ? 1 : 0))),
};
const groups = [7, 7, 7, 9, 9];
const correct = [1, 1, 0, 1, 1];
// Row 2 is incorrect (anchored: must not take part), row 4 has no anchor: group 9 has one
// taking-part row, so it contributes only when its centroid is supplied.
const anchors = [6, 4, 3, 5, -1];

function lossMask(): Float64Array {
  const m = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let t = 2; t + 1 < lengths[b]; t++) m[b * (T - 1) + t] = 1; // scores tokens 3..len−1
  }
  return m;
}

async function models(mode: "adapters" | "full"): Promise<{
  cpu: CpuQwen3;
  cpuBackend: TrainBackend;
  gpuBackend: TrainBackend;
}> {
  const gpu = new WebGpuQwen3((await testContext())!, config, await loadQwen3Weights(dir, config));
  const cpu = new CpuQwen3(config, await loadQwen3Weights(dir, config));
  if (mode === "adapters") {
    gpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
    cpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
  }
  const cpuBackend = createTrainBackend(cpu, { mode });
  const { tree, shapes } = cpuBackend.params;
  const copies = Object.fromEntries(
    Object.entries(tree).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  return {
    cpu,
    cpuBackend,
    gpuBackend: createTrainBackend(gpu, { mode, params: { tree: copies, shapes } }),
  };
}

interface Case {
  name: string;
  mode: "adapters" | "full";
  type: AlignType;
  hiddenLayer?: number;
  pg: Extract<LossSpec, { name: "clipped_pg" }>["options"];
  /** Supply group 9's target (the group is split: its other rows are in another micro-batch). */
  splitGroup?: boolean;
  /** Weight of the clipped_pg term; default none (1). */
  pgWeight?: number;
}

/** Old log-probs near the current ones (some ratios clipped), advantages ±, the mask. */
async function inputsFor(backend: TrainBackend, c: Case): Promise<ObjectiveInputs> {
  const out = await backend.forward(input);
  const noise = randomArray(B * (T - 1), 11, -0.4, 0.4);
  const oldLogprobs = Float64Array.from(out.logprobs, (v, i) => v + noise[i]);
  const advantages = new Float64Array(B * (T - 1));
  const perRow = [1.2, 0.7, -1.1, 0.9, -0.8];
  for (let b = 0; b < B; b++) advantages.fill(perRow[b], b * (T - 1), (b + 1) * (T - 1));
  const centroids = new Map<number, Float64Array>();
  if (c.splitGroup) centroids.set(9, Float64Array.from(randomArray(H, 5, -1, 1)));
  return {
    lossMask: lossMask(),
    oldLogprobs,
    advantages,
    anchors,
    groups,
    correct,
    centroids: c.type === "cos-pairwise" ? undefined : centroids,
    // As a micro-batch of a larger mini-batch: the mini-batch's token count and align rows.
    normalizers: { clipped_pg: 40, hidden_align: 5 },
  };
}

function terms(c: Case): LossSpec[] {
  return [
    {
      name: "clipped_pg",
      options: c.pg,
      ...(c.pgWeight === undefined ? {} : { weight: c.pgWeight }),
    },
    { name: "hidden_align", weight: 0.1, options: { type: c.type } },
  ];
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

const CASES: Case[] = [
  { name: "final norm, cos-centroid, full", mode: "full", type: "cos-centroid", pg: {} },
  {
    // The token budget of seq-mean-token-sum-norm left at its default (seqLen − 1 on both
    // backends), and a clipped_pg weight other than 1.
    name: "layer 0, cos-pairwise, adapters, dual clip, seq-mean-token-sum-norm, pg weight 0.5",
    mode: "adapters",
    type: "cos-pairwise",
    hiddenLayer: 0,
    pg: { dualClip: 3, aggregation: "seq-mean-token-sum-norm" },
    pgWeight: 0.5,
  },
  {
    name: "final norm, mse-normalized, adapters, split group, seq-mean-token-mean",
    mode: "adapters",
    type: "mse-normalized",
    splitGroup: true,
    pg: { aggregation: "seq-mean-token-mean" },
  },
  {
    name: "last layer's own output, mse-raw, full, split group, seq-mean-token-sum-norm",
    mode: "full",
    type: "mse-raw",
    hiddenLayer: 1,
    splitGroup: true,
    pg: { aggregation: "seq-mean-token-sum-norm", maxResponseLength: 6 },
  },
];

for (const c of CASES) {
  Deno.test({
    name: `objectiveAndGrads(): WebGPU loss kernels in the step equal the float64 CPU (${c.name})`,
    ignore: noGpu,
    async fn() {
      const { cpuBackend, gpuBackend } = await models(c.mode);
      const inputs = await inputsFor(cpuBackend, c);
      const request: ObjectiveRequest = { terms: terms(c), inputs };
      const options = { hiddenLayer: c.hiddenLayer };
      const want = await cpuBackend.objectiveAndGrads(input, request, options);
      const got = await gpuBackend.objectiveAndGrads(input, request, options);
      // The case exercises what it says: both terms count, some ratios are clipped.
      assert.ok(want.loss.metrics["align/rows"] >= 2, "no align rows");
      assert.ok(want.loss.metrics["loss/pg_clipfrac"] > 0, "no clipped token");
      assert.ok(want.loss.metrics["policy/entropy"] > 0, "no entropy");
      assert.deepEqual(Object.keys(got.loss.metrics).sort(), Object.keys(want.loss.metrics).sort());
      const close = (a: number, b: number) => Math.abs(a - b) <= VALUE_TOL * Math.abs(b) + 1e-6;
      assert.ok(
        close(got.loss.value, want.loss.value),
        `value ${got.loss.value} vs ${want.loss.value}`,
      );
      for (const [key, v] of Object.entries(want.loss.metrics)) {
        assert.ok(close(got.loss.metrics[key], v), `${key}: ${got.loss.metrics[key]} vs ${v}`);
      }
      let worst = 0;
      for (const [name, g] of Object.entries(want.grads)) {
        const err = relErr(got.grads[name], g);
        assert.ok(err <= GRAD_TOL, `${name}: relative error ${err.toExponential(2)} > ${GRAD_TOL}`);
        worst = Math.max(worst, err);
      }
      console.log(`${c.name}: worst gradient error ${worst.toExponential(2)}`);
      gpuBackend.dispose();
    },
  });
}

/** The objective's value on the CPU model's current weights (float64 forward). */
async function cpuValue(
  backend: TrainBackend,
  request: ObjectiveRequest,
  hiddenLayer: number | undefined,
): Promise<number> {
  const cpu = backend.model as CpuQwen3;
  const t = cpu.trace(input);
  const out = await backend.forward(input);
  const lastHidden = hiddenLayer === undefined ? out.lastHidden! : t.layers[hiddenLayer].hOut;
  return objectiveTerm(request)({ ...out, lastHidden }).value;
}

for (const c of [CASES[0], CASES[1]]) {
  Deno.test(`objectiveAndGrads() on the CPU equals finite differences through the model (${c.name})`, async () => {
    const { cpuBackend } = await models(c.mode);
    const inputs = await inputsFor(cpuBackend, c);
    if (c.type !== "cos-pairwise") {
      // Hold every stop-gradient target at its value: the loss is then differentiable as is.
      const hidden = c.hiddenLayer === undefined
        ? (await cpuBackend.forward(input)).lastHidden!
        : (cpuBackend.model as CpuQwen3).trace(input).layers[c.hiddenLayer].hOut;
      inputs.centroids = alignCentroids({
        hidden,
        batch: B,
        seqLen: T,
        hiddenSize: H,
        anchors,
        groups,
        correct,
        type: c.type,
      });
    }
    const request: ObjectiveRequest = { terms: terms(c), inputs };
    const { grads } = await cpuBackend.objectiveAndGrads(input, request, {
      hiddenLayer: c.hiddenLayer,
    });
    const tree: ParamTree = cpuBackend.params.tree;
    let worst = 0;
    let seed = 300;
    // A few tensors: the first two and the last two of the mode's list.
    const names = Object.keys(tree);
    for (const name of [...names.slice(0, 2), ...names.slice(-2)]) {
      const w = tree[name];
      const g = grads[name];
      const u = randomArray(w.length, seed++, 0.5, 1);
      const saved = Float32Array.from(w);
      const plus = Float32Array.from(saved, (v, i) => v + EPS * Math.sign(g[i]) * u[i]);
      const minus = Float32Array.from(saved, (v, i) => v - EPS * Math.sign(g[i]) * u[i]);
      w.set(plus);
      const lPlus = await cpuValue(cpuBackend, request, c.hiddenLayer);
      w.set(minus);
      const lMinus = await cpuValue(cpuBackend, request, c.hiddenLayer);
      w.set(saved);
      let want = 0;
      for (let i = 0; i < w.length; i++) want += g[i] * (plus[i] - minus[i]);
      const err = Math.abs(lPlus - lMinus - want) / Math.abs(want);
      assert.ok(err <= FD_TOL, `${name}: rel err ${err.toExponential(2)} > ${FD_TOL}`);
      worst = Math.max(worst, err);
    }
    console.log(`${c.name}: worst finite-difference error ${worst.toExponential(2)}`);
  });
}

Deno.test({
  name: "objectiveAndGrads() on WebGPU names a bad input before recording anything",
  ignore: noGpu,
  async fn() {
    const { cpuBackend, gpuBackend } = await models("adapters");
    const c = CASES[0];
    const inputs = await inputsFor(cpuBackend, c);
    const bad = (patch: Partial<ObjectiveInputs>) =>
      gpuBackend.objectiveAndGrads(input, { terms: terms(c), inputs: { ...inputs, ...patch } });
    const mask = lossMask();
    mask[3] = 2;
    await assert.rejects(bad({ lossMask: mask }), /"lossMask\[3\]" must be 0 or 1/);
    await assert.rejects(
      bad({ anchors: [6, 4, 3, 9, -1] }),
      /"anchors\[3\]" must be −1 or a position/,
    );
    await assert.rejects(bad({ advantages: [1, 2] }), /"advantages" must have 40 values/);
    const nan = Float64Array.from(inputs.oldLogprobs!);
    nan[5] = NaN;
    await assert.rejects(bad({ oldLogprobs: nan }), /"oldLogprobs\[5\]" must be a finite number/);
    gpuBackend.dispose();
  },
});

Deno.test({
  name: "objectiveAndGrads(): the sft term on WebGPU (in the step) equals the float64 CPU",
  ignore: noGpu,
  async fn() {
    for (const mode of ["full", "adapters"] as const) {
      const { cpuBackend, gpuBackend } = await models(mode);
      const request: ObjectiveRequest = {
        terms: [{ name: "sft", weight: 0.5 }],
        inputs: { lossMask: lossMask(), normalizers: { sft: 55 } },
      };
      const want = await cpuBackend.objectiveAndGrads(input, request);
      const got = await gpuBackend.objectiveAndGrads(input, request);
      assert.ok(
        Math.abs(got.loss.value - want.loss.value) <= VALUE_TOL * Math.abs(want.loss.value),
      );
      assert.equal(got.loss.metrics["loss/tokens"], want.loss.metrics["loss/tokens"]);
      for (const [name, g] of Object.entries(want.grads)) {
        const err = relErr(got.grads[name], g);
        assert.ok(err <= GRAD_TOL, `${mode} ${name}: relative error ${err.toExponential(2)}`);
      }
      gpuBackend.dispose();
    }
  },
});

Deno.test({
  name: "objectiveAndGrads(): per-token TIS weights in the WebGPU step equal the float64 CPU",
  ignore: noGpu,
  async fn() {
    // Token weights min(ρ, 2) of ratios ρ in [e^−1, e^1] (some capped at 2), as truncated
    // importance sampling gives them; same tolerances as above. The weights must change the
    // CPU's loss and gradients by more than the tolerance, so that a backend ignoring them fails.
    const c = CASES[2];
    const { cpuBackend, gpuBackend } = await models(c.mode);
    const plain = await inputsFor(cpuBackend, c);
    const rho = randomArray(B * (T - 1), 23, -1, 1);
    const tokenWeights = Float64Array.from(rho, (x) => Math.min(Math.exp(x), 2));
    assert.ok(tokenWeights.some((w) => w === 2) && tokenWeights.some((w) => w < 0.5));
    const request: ObjectiveRequest = { terms: terms(c), inputs: { ...plain, tokenWeights } };
    const want = await cpuBackend.objectiveAndGrads(input, request);
    const unweighted = await cpuBackend.objectiveAndGrads(input, {
      terms: terms(c),
      inputs: plain,
    });
    const got = await gpuBackend.objectiveAndGrads(input, request);
    const close = (a: number, b: number) => Math.abs(a - b) <= VALUE_TOL * Math.abs(b) + 1e-6;
    assert.ok(!close(unweighted.loss.value, want.loss.value), "the weights change nothing");
    assert.ok(
      close(got.loss.value, want.loss.value),
      `value ${got.loss.value} vs ${want.loss.value}`,
    );
    for (const [key, v] of Object.entries(want.loss.metrics)) {
      assert.ok(close(got.loss.metrics[key], v), `${key}: ${got.loss.metrics[key]} vs ${v}`);
    }
    let worst = 0;
    let moved = 0;
    for (const [name, g] of Object.entries(want.grads)) {
      const err = relErr(got.grads[name], g);
      assert.ok(err <= GRAD_TOL, `${name}: relative error ${err.toExponential(2)} > ${GRAD_TOL}`);
      worst = Math.max(worst, err);
      moved = Math.max(moved, relErr(unweighted.grads[name], g));
    }
    assert.ok(moved > 10 * GRAD_TOL, `the weights move the gradients by only ${moved}`);
    console.log(
      `TIS weights: worst gradient error ${worst.toExponential(2)} (weights change them by ` +
        `${moved.toExponential(2)})`,
    );
    gpuBackend.dispose();
  },
});
