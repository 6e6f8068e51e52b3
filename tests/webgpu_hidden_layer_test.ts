// The layer depth of the hidden state a loss sees on WebGPU (`LossAndGradsOptions.hiddenLayer`):
// the loss term receives the output of decoder layer l (HF's hidden_states[l + 1]) and its
// cotangent is injected into the backward at that layer's output (the `layerOutput` hook of
// `encodeDecoderLayerBackward`). Reference: central finite differences of the float64 CPU forward
// (`CpuQwen3.trace`) of the same loss, along one direction per trainable tensor.
//
// Direction: d = ε·sign(g_gpu)·u with u uniform in [0.5, 1], ε = 1e-5, stored in float32 (the
// finite difference uses the stored w⁺ − w⁻, so the float32 rounding of the step is exact). Error:
// |(L(w⁺) − L(w⁻)) − g_gpu·(w⁺ − w⁻)| / |g_gpu·(w⁺ − w⁻)|, with no cancellation in the dot
// product. The float64 forward's rounding is ~1e-8 of the difference; truncation is O(ε²).
//
// hiddenLayer = numHiddenLayers − 1 is the last layer's own output, before the final norm (HF's
// hidden_states[-1] is the final-norm output: hiddenLayer undefined).
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { createTrainBackend, type PolicyOutputs, type TrainBackend } from "../trainer/backend.ts";
import type { LossOutput, LossTerm, ParamTree } from "../trainer/types.ts";

// Measured worst 5.2e-7 (full fine-tuning, hiddenLayer 0, layer 1's q_proj); truncation still
// dominates at this step (it falls as ε²: 3.7e-5 at ε = 1e-4, 3.8e-6 at 3e-5).
const TOL = 1e-5;
// The hidden state handed to the loss vs the CPU's float64 layer output.
const HIDDEN_TOL = 1e-5;
const EPS = 1e-5;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const adapter = await loadPeftAdapter(`${dir}/adapter`, config);
// Two sequences, the second right-padded.
const input: ForwardInput = {
  inputIds: [[3, 17, 250, 99, 4, 311, 8, 42], [12, 7, 300, 64, 5, 0, 0, 0]],
  attentionMask: [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]],
};
const [B, T, H] = [2, 8, config.hiddenSize];

/**
 * A loss non-linear in the hidden state, `Σ c·h + ½·α·Σ h²`, plus `Σ m·logprobs` when `lpMask`
 * is given.
 */
function hiddenLoss(lpMask?: Float64Array): LossTerm<PolicyOutputs> {
  const coef = Float64Array.from(randomArray(B * T * H, 7));
  const alpha = 0.05;
  return ({ lastHidden, logprobs }): LossOutput => {
    const h = lastHidden!;
    let value = 0;
    const dLastHidden = new Float64Array(h.length);
    for (let i = 0; i < h.length; i++) {
      value += coef[i] * h[i] + 0.5 * alpha * h[i] * h[i];
      dLastHidden[i] = coef[i] + alpha * h[i];
    }
    if (!lpMask) return { value, grad: { dLastHidden }, metrics: {} };
    for (let i = 0; i < logprobs.length; i++) value += lpMask[i] * logprobs[i];
    return { value, grad: { dLastHidden, dLogprobs: lpMask }, metrics: {} };
  };
}

/** The loss on the CPU in float64: layer `layer`'s output and the token log-probs. */
function cpuLoss(cpu: CpuQwen3, loss: LossTerm<PolicyOutputs>, layer: number): number {
  const t = cpu.trace(input);
  const lp = logprobRef(t.logits, t.batch.targets, config.vocabSize).logprobs;
  const logprobs = new Float64Array(B * (T - 1));
  for (let b = 0; b < B; b++) logprobs.set(lp.subarray(b * T, b * T + T - 1), b * (T - 1));
  // t.hidden is HF's hidden_states: its last entry is the final-norm output, so the last layer's
  // own output is t.hFinal.
  const lastHidden = layer + 1 < config.numHiddenLayers ? t.hidden[layer + 1] : t.hFinal;
  return loss({ logprobs, lastHidden, batch: B, seqLen: T }).value;
}

/**
 * Checks every GPU gradient against a central difference of the CPU loss along ε·sign(g)·u
 * (perturbing the CPU model's own arrays); tensors named in `zero` must have a zero gradient on
 * the GPU and an exactly zero difference on the CPU. Returns the worst relative error.
 */
function checkByFiniteDifferences(
  tag: string,
  o: {
    tree: ParamTree;
    grads: ParamTree;
    loss: () => number;
    zero: (name: string) => boolean;
  },
): number {
  let worst = 0;
  let seed = 100;
  const { grads, zero, loss: f } = o;
  for (const [name, w] of Object.entries(o.tree)) {
    const g = grads[name];
    assert.equal(g.length, w.length, `${tag} ${name}: gradient length`);
    const u = randomArray(w.length, seed++, 0.5, 1);
    const saved = Float32Array.from(w);
    const isZero = zero(name);
    const plus = Float32Array.from(
      saved,
      (v, i) => v + EPS * (isZero ? u[i] : Math.sign(g[i]) * u[i]),
    );
    const minus = Float32Array.from(
      saved,
      (v, i) => v - EPS * (isZero ? u[i] : Math.sign(g[i]) * u[i]),
    );
    w.set(plus);
    const lPlus = f();
    w.set(minus);
    const lMinus = f();
    w.set(saved);
    if (isZero) {
      assert.ok(g.every((v) => v === 0), `${tag} ${name}: GPU gradient must be 0 above the layer`);
      assert.equal(lPlus - lMinus, 0, `${tag} ${name}: the CPU loss must not depend on it`);
      continue;
    }
    let want = 0;
    for (let i = 0; i < w.length; i++) want += g[i] * (plus[i] - minus[i]);
    const err = Math.abs(lPlus - lMinus - want) / Math.abs(want);
    assert.ok(err <= TOL, `${tag} ${name}: rel err ${err.toExponential(2)} > ${TOL}`);
    worst = Math.max(worst, err);
  }
  return worst;
}

/**
 * The fixture (with its adapter in `"adapters"` mode) on both backends, and their train backends in `mode`. The CPU
 * model's parameter arrays (`cpuBackend.params.tree`) are its own: the finite differences
 * perturb them in place. The GPU backend gets host copies.
 */
async function backends(mode: "adapters" | "full"): Promise<{
  gpu: WebGpuQwen3;
  cpu: CpuQwen3;
  gpuBackend: TrainBackend;
  cpuBackend: TrainBackend;
}> {
  const gpu = new WebGpuQwen3((await testContext())!, config, await loadQwen3Weights(dir, config));
  const cpu = new CpuQwen3(config, await loadQwen3Weights(dir, config));
  if (mode === "adapters") {
    gpu.setAdapters(adapter);
    cpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
  }
  const cpuBackend = createTrainBackend(cpu, { mode });
  const { tree, shapes } = cpuBackend.params;
  const copies = Object.fromEntries(
    Object.entries(tree).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const gpuBackend = createTrainBackend(gpu, { mode, params: { tree: copies, shapes } });
  return { gpu, cpu, gpuBackend, cpuBackend };
}

Deno.test({
  name: "WebGpuTrainBackend.lossAndGrads() with hiddenLayer 0: LoRA gradients of a hidden-state " +
    "loss equal finite differences of the CPU loss, and layer 1 gets none",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu, gpuBackend, cpuBackend } = await backends("adapters");
    try {
      const loss = hiddenLoss();
      const seen: Float64Array[] = [];
      const term: LossTerm<PolicyOutputs> = (out) => {
        seen.push(out.lastHidden!);
        return loss(out);
      };
      const { loss: out, grads } = await gpuBackend.lossAndGrads(input, term, { hiddenLayer: 0 });
      // The term saw layer 0's output (not the final-norm output) in both calls.
      const want = cpu.trace(input).hidden[1];
      assert.equal(seen.length, 2);
      for (const h of seen) {
        let d = 0;
        let r = 0;
        for (let i = 0; i < h.length; i++) [d, r] = [d + (h[i] - want[i]) ** 2, r + want[i] ** 2];
        assert.ok(Math.sqrt(d / r) <= HIDDEN_TOL, `hidden state rel err ${Math.sqrt(d / r)}`);
      }
      const f = () => cpuLoss(cpu, loss, 0);
      assert.ok(Math.abs(out.value - f()) <= 1e-5 * Math.abs(f()), "loss value");
      const worst = checkByFiniteDifferences("adapters", {
        tree: cpuBackend.params.tree,
        grads,
        loss: f,
        zero: (name) => name.startsWith("model.layers.1."),
      });
      console.log(
        `hiddenLayer 0, LoRA: worst rel err vs finite differences ${worst.toExponential(2)}`,
      );
      await assert.rejects(
        () => gpuBackend.lossAndGrads(input, loss, { hiddenLayer: 2 }),
        (e: Error) => e instanceof RangeError && e.message.includes("[0, 2): current value is 2"),
      );
      await assert.rejects(
        () => gpuBackend.lossAndGrads(input, loss, { hiddenLayer: 0.5 }),
        RangeError,
      );
    } finally {
      gpuBackend.dispose();
      cpuBackend.dispose();
      gpu.dispose();
    }
  },
});

Deno.test({
  name: "WebGpuTrainBackend.lossAndGrads() with hiddenLayer 0 and 1 plus a log-prob term: every " +
    "full fine-tuning gradient equals finite differences of the CPU loss",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu, gpuBackend, cpuBackend } = await backends("full");
    try {
      const lpMask = new Float64Array(B * (T - 1));
      lpMask.fill(1, 2, T - 1);
      lpMask.fill(1, T - 1 + 1, T - 1 + 4);
      const loss = hiddenLoss(lpMask);
      for (const layer of [0, 1]) {
        const { grads } = await gpuBackend.lossAndGrads(input, loss, { hiddenLayer: layer });
        const worst = checkByFiniteDifferences(`full, hiddenLayer ${layer}`, {
          tree: cpuBackend.params.tree,
          grads,
          loss: () => cpuLoss(cpu, loss, layer),
          zero: () => false,
        });
        console.log(
          `hiddenLayer ${layer} + log-probs, full: ${Object.keys(grads).length} tensors, worst ` +
            `rel err vs finite differences ${worst.toExponential(2)}`,
        );
      }
    } finally {
      gpuBackend.dispose();
      cpuBackend.dispose();
      gpu.dispose();
    }
  },
});
