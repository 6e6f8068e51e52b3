// The tempered policy π_T = softmax(logits / T) of RL at `rl.temperature` (the distribution the
// rollouts are sampled from) through the train backends: token log-probs, entropies and the
// gradient of an objective given as data with `temperature` (`ObjectiveRequest.temperature`,
// `ForwardOptions.temperature`, `LossAndGradsOptions.temperature`, `withTemperature`).
//
// 1. Log-probs and entropies at T ∈ {0.7, 1.6} equal a float64 reference computed here from the
//    CPU model's logits (log-softmax of z / T written out, not the kernels' reference): the CPU
//    backend (in this thread and on 2 worker threads) within 1e-12 relative (float64 rounding);
//    the WebGPU forward within 1e-5 relative to max(1, |value|) (float32 logits).
// 2. At T = 0.7 the WebGPU step (loss kernels inside the training step; and the host-term path
//    `lossAndGrads`) gives the CPU backend's loss, metrics and gradients: GPU vs CPU 2e-4 relative
//    to each tensor's largest gradient, as `tests/webgpu_objective_test.ts` at T = 1.
// 3. The CPU gradient at T = 0.7 equals central finite differences of the loss through the whole
//    float64 model (1e-5 relative, ε = 1e-5), in adapters and full mode (the LM head's gradient,
//    tied to the embedding, carries the chain rule's 1 / T).
//    With the LM head in 64-token blocks (`WebGpuQwen3.backward`, `tokenLogprobs`) the same
//    against `cpuBackward` at T = 0.7.
// 4. At T = 1 the option changes nothing: the same bits as without it.
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward } from "../model/qwen3_cpu_backward.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type TrainBackend, withTemperature } from "../trainer/backend.ts";
import {
  type ObjectiveInputs,
  type ObjectiveRequest,
  objectiveTerm,
} from "../trainer/losses/objective_request.ts";
import type { LossSpec } from "../trainer/losses/registry.ts";
import type { ParamTree } from "../trainer/types.ts";

const CPU_TOL = 1e-12;
const GPU_LP_TOL = 1e-5;
const GRAD_TOL = 2e-4;
const VALUE_TOL = 1e-4;
const FD_TOL = 1e-5;
const EPS = 1e-5;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const V = config.vocabSize;
// Three right-padded rows of 7 tokens.
const ids = [
  [3, 17, 250, 99, 4, 311, 8],
  [12, 7, 30, 64, 5, 0, 0],
  [3, 17, 250, 61, 2, 9, 0],
];
const lengths = [7, 5, 6];
const [B, T] = [ids.length, 7];
const input: ForwardInput = {
  inputIds: ids,
  attentionMask: ids.map((_, b) => ids[b].map((_, t) => (t < lengths[b] ? 1 : 0))),
};

async function cpuModel(mode: "adapters" | "full"): Promise<CpuQwen3> {
  const cpu = new CpuQwen3(config, await loadQwen3Weights(dir, config));
  if (mode === "adapters") cpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
  return cpu;
}

async function gpuBackendLike(cpuBackend: TrainBackend): Promise<TrainBackend> {
  const gpu = new WebGpuQwen3((await testContext())!, config, await loadQwen3Weights(dir, config));
  if (cpuBackend.mode === "adapters") {
    gpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
  }
  const { tree, shapes } = cpuBackend.params;
  const copies = Object.fromEntries(
    Object.entries(tree).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  return createTrainBackend(gpu, { mode: cpuBackend.mode, params: { tree: copies, shapes } });
}

/** log softmax(z / T)[target] and the entropy of softmax(z / T), `[B, T − 1]`, in float64. */
function reference(cpu: CpuQwen3, temperature: number): { lp: Float64Array; ent: Float64Array } {
  const t = cpu.trace(input);
  const lp = new Float64Array(B * (T - 1));
  const ent = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) {
    for (let s = 0; s + 1 < lengths[b]; s++) {
      const z = t.logits.subarray((b * T + s) * V, (b * T + s + 1) * V);
      let max = -Infinity;
      for (const v of z) max = Math.max(max, v / temperature);
      let sum = 0;
      for (const v of z) sum += Math.exp(v / temperature - max);
      const lse = max + Math.log(sum);
      let h = 0;
      for (const v of z) {
        const l = v / temperature - lse;
        h -= Math.exp(l) * l;
      }
      lp[b * (T - 1) + s] = z[ids[b][s + 1]] / temperature - lse;
      ent[b * (T - 1) + s] = h;
    }
  }
  return { lp, ent };
}

/** Largest |a − b| / max(1, |b|). */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return worst;
}

/** Largest |a − b| relative to b's largest magnitude. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

function lossMask(): Float64Array {
  const m = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) for (let t = 2; t + 1 < lengths[b]; t++) m[b * (T - 1) + t] = 1;
  return m;
}

/** Old log-probs near the tempered ones (some ratios clipped), advantages ±, the mask. */
async function inputsAt(backend: TrainBackend, temperature: number): Promise<ObjectiveInputs> {
  const out = await backend.forward(input, { temperature });
  const noise = randomArray(B * (T - 1), 11, -0.4, 0.4);
  const advantages = new Float64Array(B * (T - 1));
  const perRow = [1.2, -1.1, 0.9];
  for (let b = 0; b < B; b++) advantages.fill(perRow[b], b * (T - 1), (b + 1) * (T - 1));
  return {
    lossMask: lossMask(),
    oldLogprobs: Float64Array.from(out.logprobs, (v, i) => v + noise[i]),
    advantages,
    normalizers: { clipped_pg: 12 },
  };
}

const TERMS: LossSpec[] = [{ name: "clipped_pg", options: { dualClip: 3 } }];

Deno.test("forward() with a temperature: the CPU backend's log-probs and entropies are log softmax(z / T)'s", async () => {
  const cpu = await cpuModel("adapters");
  const backend = createTrainBackend(cpu, { mode: "adapters" });
  const pooled = createTrainBackend(cpu, { mode: "adapters", workers: 2 });
  try {
    for (const temperature of [0.7, 1.6]) {
      const want = reference(cpu, temperature);
      const got = await backend.forward(input, { temperature });
      const lpErr = maxRel(got.logprobs, want.lp);
      const entErr = maxRel(got.entropy!, want.ent);
      assert.ok(lpErr <= CPU_TOL, `T = ${temperature}: log-prob error ${lpErr}`);
      assert.ok(entErr <= CPU_TOL, `T = ${temperature}: entropy error ${entErr}`);
      // The view, and the rows spread over worker threads, give the same bits.
      const view = await withTemperature(backend, temperature).forward(input);
      assert.deepEqual(view.logprobs, got.logprobs);
      const workers = await pooled.forward(input, { temperature });
      assert.deepEqual(workers.logprobs, got.logprobs);
      assert.deepEqual(workers.entropy, got.entropy);
      // A left-padded batch takes the batched path.
      const left: ForwardInput = {
        inputIds: [[0, 3, 17, 250]],
        attentionMask: [[0, 1, 1, 1]],
      };
      const batched = await backend.forward(left, { temperature });
      const raw = await backend.forward(left);
      assert.notDeepEqual(batched.logprobs, raw.logprobs);
      console.log(
        `CPU T = ${temperature}: log-prob ${lpErr.toExponential(2)}, entropy ` +
          `${entErr.toExponential(2)}`,
      );
    }
    // Sensitivity: T = 0.7 is not T = 1.
    assert.ok(maxRel(reference(cpu, 0.7).lp, reference(cpu, 1).lp) > 1e-2);
    // T = 1 is the untempered forward, bit for bit.
    assert.deepEqual(
      await backend.forward(input, { temperature: 1 }),
      await backend.forward(input),
    );
    assert.strictEqual(withTemperature(backend, 1), backend);
    await assert.rejects(backend.forward(input, { temperature: 0 }), /"temperature"/);
    assert.throws(() => withTemperature(backend, -1), /"temperature"/);
  } finally {
    pooled.dispose();
  }
});

Deno.test({
  name: "forward() with a temperature: the WebGPU log-probs and entropies are log softmax(z / T)'s",
  ignore: noGpu,
  async fn() {
    const cpu = await cpuModel("adapters");
    const cpuBackend = createTrainBackend(cpu, { mode: "adapters" });
    const gpuBackend = await gpuBackendLike(cpuBackend);
    try {
      for (const temperature of [0.7, 1.6]) {
        const want = reference(cpu, temperature);
        const got = await gpuBackend.forward(input, { temperature });
        const lpErr = maxRel(got.logprobs, want.lp);
        const entErr = maxRel(got.entropy!, want.ent);
        assert.ok(lpErr <= GPU_LP_TOL, `T = ${temperature}: log-prob error ${lpErr}`);
        assert.ok(entErr <= GPU_LP_TOL, `T = ${temperature}: entropy error ${entErr}`);
        console.log(
          `WebGPU T = ${temperature}: log-prob ${lpErr.toExponential(2)}, entropy ` +
            `${entErr.toExponential(2)}`,
        );
      }
      assert.deepEqual(
        await gpuBackend.forward(input, { temperature: 1 }),
        await gpuBackend.forward(input),
      );
    } finally {
      gpuBackend.dispose();
      gpuBackend.model.dispose();
    }
  },
});

for (const mode of ["adapters", "full"] as const) {
  Deno.test({
    name:
      `objectiveAndGrads() at temperature 0.7: the WebGPU step equals the float64 CPU (${mode})`,
    ignore: noGpu,
    async fn() {
      const cpuBackend = createTrainBackend(await cpuModel(mode), { mode });
      const gpuBackend = await gpuBackendLike(cpuBackend);
      try {
        const inputs = await inputsAt(cpuBackend, 0.7);
        const request: ObjectiveRequest = { terms: TERMS, inputs, temperature: 0.7 };
        const want = await cpuBackend.objectiveAndGrads(input, request);
        // The request's temperature counts: at T = 1 the loss differs.
        const untempered = await cpuBackend.objectiveAndGrads(input, { terms: TERMS, inputs });
        assert.ok(Math.abs(untempered.loss.value - want.loss.value) > 1e-3);
        assert.ok(want.loss.metrics["loss/pg_clipfrac"] > 0, "no clipped token");
        const close = (a: number, b: number) => Math.abs(a - b) <= VALUE_TOL * Math.abs(b) + 1e-6;
        // The GPU step (kernels in the step), through a view too; and the host-term path.
        const hostTerm = objectiveTerm(request);
        const runs = {
          step: await gpuBackend.objectiveAndGrads(input, request),
          view: await withTemperature(gpuBackend, 0.7).objectiveAndGrads(input, {
            terms: TERMS,
            inputs,
          }),
          host: await gpuBackend.lossAndGrads(input, hostTerm, { temperature: 0.7 }),
        };
        for (const [path, got] of Object.entries(runs)) {
          assert.ok(close(got.loss.value, want.loss.value), `${path}: ${got.loss.value}`);
          for (const key of ["loss/pg", "loss/ppo_kl", "policy/entropy"]) {
            const v = want.loss.metrics[key];
            assert.ok(
              close(got.loss.metrics[key], v),
              `${path} ${key}: ${got.loss.metrics[key]} vs ${v}`,
            );
          }
          let worst = 0;
          for (const [name, g] of Object.entries(want.grads)) {
            const err = relErr(got.grads[name], g);
            assert.ok(err <= GRAD_TOL, `${path} ${name}: relative error ${err.toExponential(2)}`);
            worst = Math.max(worst, err);
          }
          console.log(`${mode}, ${path}: worst gradient error ${worst.toExponential(2)}`);
        }
      } finally {
        gpuBackend.dispose();
        gpuBackend.model.dispose();
      }
    },
  });
}

for (const mode of ["adapters", "full"] as const) {
  Deno.test(`objectiveAndGrads() at temperature 0.7 on the CPU equals finite differences (${mode})`, async () => {
    const backend = createTrainBackend(await cpuModel(mode), { mode });
    const temperature = 0.7;
    const inputs = await inputsAt(backend, temperature);
    const request: ObjectiveRequest = { terms: TERMS, inputs, temperature };
    const { grads, loss } = await backend.objectiveAndGrads(input, request);
    const value = async () =>
      objectiveTerm(request)(await backend.forward(input, { temperature })).value;
    // The step's value is the objective of the tempered forward's log-probs.
    assert.strictEqual(loss.value, await value());
    const tree: ParamTree = backend.params.tree;
    const names = Object.keys(tree);
    let worst = 0;
    let seed = 300;
    for (const name of [...names.slice(0, 2), ...names.slice(-2)]) {
      const w = tree[name];
      const g = grads[name];
      const u = randomArray(w.length, seed++, 0.5, 1);
      const saved = Float32Array.from(w);
      const plus = Float32Array.from(saved, (v, i) => v + EPS * Math.sign(g[i]) * u[i]);
      const minus = Float32Array.from(saved, (v, i) => v - EPS * Math.sign(g[i]) * u[i]);
      w.set(plus);
      const lPlus = await value();
      w.set(minus);
      const lMinus = await value();
      w.set(saved);
      let want = 0;
      for (let i = 0; i < w.length; i++) want += g[i] * (plus[i] - minus[i]);
      const err = Math.abs(lPlus - lMinus - want) / Math.abs(want);
      assert.ok(err <= FD_TOL, `${name}: rel err ${err.toExponential(2)} > ${FD_TOL}`);
      worst = Math.max(worst, err);
    }
    console.log(
      `${mode}: worst finite-difference error ${worst.toExponential(2)} (${names.slice(0, 2)}, ` +
        `${names.slice(-2)})`,
    );
  });
}

Deno.test({
  name: "WebGpuQwen3 at temperature 0.7 with the LM head in 64-token blocks equals cpuBackward",
  ignore: noGpu,
  async fn() {
    const adapter = await loadPeftAdapter(`${dir}/adapter`, config);
    const cpu = new CpuQwen3(config, await loadQwen3Weights(dir, config));
    cpu.setAdapters(adapter);
    const gpu = new WebGpuQwen3(
      (await testContext())!,
      config,
      await loadQwen3Weights(dir, config),
    );
    gpu.setAdapters(adapter);
    try {
      // 2 × 48 = 96 tokens: blocks of 64 and 32 (the backward recomputes each block's logits).
      const raw = randomArray(96, 21, 0, V);
      const blockIds = [0, 1].map((b) =>
        Array.from({ length: 48 }, (_, t) => Math.floor(raw[b * 48 + t]))
      );
      const options = {
        mode: "full" as const,
        dLogprobs: randomArray(2 * 47, 22),
        dLastHidden: randomArray(96 * config.hiddenSize, 23),
        temperature: 0.7,
      };
      const want = cpuBackward(cpu, { inputIds: blockIds }, options);
      const got = await gpu.backward({ inputIds: blockIds }, { ...options, headChunkTokens: 64 });
      const lpErr = maxRel(got.logprobs, want.logprobs);
      assert.ok(lpErr <= GPU_LP_TOL, `blocked log-probs: ${lpErr}`);
      const scored = await gpu.tokenLogprobs({ inputIds: blockIds }, {
        temperature: 0.7,
        headChunkTokens: 64,
      });
      assert.ok(maxRel(scored.logprobs, want.logprobs) <= GPU_LP_TOL);
      let worst = 0;
      for (const [name, g] of want.grads) {
        const err = relErr(got.grads.get(name)!, g);
        assert.ok(err <= GRAD_TOL, `${name}: relative error ${err.toExponential(2)}`);
        worst = Math.max(worst, err);
      }
      console.log(
        `blocked head: log-probs ${lpErr.toExponential(2)}, worst gradient error ` +
          `${worst.toExponential(2)}`,
      );
      // A raw-logits cotangent has no tempered meaning: refused.
      await assert.rejects(
        gpu.backward({ inputIds: blockIds }, {
          mode: "adapters",
          dLogits: new Float32Array(96 * V),
          temperature: 0.7,
        }),
        /logits cotangent.*temperature 1/,
      );
    } finally {
      gpu.dispose();
    }
  },
});
