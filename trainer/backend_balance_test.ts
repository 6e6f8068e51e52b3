// HILO's load-balancing term through the train backends: its statistics are those of the whole
// call (a micro-batch), however the CPU splits it into rows, so identical rows repeated B times
// give the B = 1 gradient on both backends; rows without any other gradient still get it; the
// CPU's row-split gradient is the finite-difference gradient of the batch's balance loss; the
// `balanceWeight` option scales it; the value is the metric "loss/balance"; CPU and WebGPU agree
// on one micro-batch, also with only a hidden cotangent below a routed layer.
import { ok, strictEqual } from "node:assert/strict";
import { noGpu, randomArray, relativeError, testContext } from "../gpu/test_utils.ts";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { type Lora, routerTensorName } from "../model/adapter_types.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import { loadModel } from "../model/load_model.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBalanceLoss } from "../model/qwen3_cpu_layer.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { createTrainBackend, type PolicyOutputs, type TrainBackend } from "./backend.ts";
import { loraParams } from "./params.ts";
import type { LossOutput } from "./types.ts";

const dir = fixtureDir();
// Float64 row sums rounded once to float32: identical rows agree to float32 rounding.
const CPU_TOL = 1e-6;
// Float32 GPU sums over 4× the tokens in another order: measured ~1e-7; 1e-5.
const GPU_TOL = 1e-5;
// Whole-model f32 vs f64, the golden tests' bound (as hilo_webgpu_test.ts).
const STATE_TOL = 1e-4;
// Central differences over float32 weight steps (as hilo_cpu_backward_test.ts), against a
// float32-rounded gradient: 1e-6.
const FD_TOL = 1e-6;
const H = 1e-3;

/** HILO adapters with sharp routers, so routing differs between tokens. */
function randomHilo(config: CpuQwen3["config"], balanceCoef: number): Lora {
  const lora = createHilo(
    hiloConfig(config, { experts: "3-4", rank: "2-2", topK: [1, 2], balanceCoef }),
    config,
    { seed: 7 },
  );
  let s = 7000;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.2, 0.2));
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

/** A loss term whose cotangent is exactly zero: only the balance term trains. */
const zeroLoss = (o: PolicyOutputs): LossOutput => ({
  value: 0,
  grad: { dLogprobs: new Float64Array(o.logprobs.length) },
  metrics: {},
});

const ROW = [5, 17, 300, 42, 9, 77, 3];

async function cpuBackend(coef: number, workers = 1): Promise<TrainBackend> {
  const model = await loadModel(dir, { backend: "cpu", warn: false }) as CpuQwen3;
  model.setAdapters(randomHilo(model.config, coef));
  return createTrainBackend(model, { mode: "adapters", workers });
}

/** The router gradients of B copies of ROW (zero policy cotangent). */
async function copies(backend: TrainBackend, B: number): Promise<Record<string, Float32Array>> {
  const input = { inputIds: Array.from({ length: B }, () => [...ROW]) };
  const { grads, loss } = await backend.lossAndGrads(input, zeroLoss);
  ok(loss.metrics["loss/balance"] > 0, `B=${B}: no "loss/balance" metric`);
  return Object.fromEntries(Object.entries(grads).filter(([k]) => k.endsWith("router.weight")));
}

function worstGap(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  let worst = 0;
  for (const [name, g] of Object.entries(b)) worst = Math.max(worst, relativeError(a[name], g));
  return worst;
}

Deno.test("CPU backend: identical rows repeated B = 1, 2, 4 give the same balance gradient", async () => {
  const backend = await cpuBackend(1);
  const pooled = await cpuBackend(1, 2);
  try {
    const one = await copies(backend, 1);
    // Rows without any other gradient still get the balance gradient.
    const norm = Math.hypot(...Object.values(one).flatMap((g) => Array.from(g)));
    ok(norm > 1e-3, `B=1 router gradient norm ${norm}`);
    for (const [B, b] of [[2, backend], [4, backend], [4, pooled]] as const) {
      const gap = worstGap(await copies(b, B), one);
      console.log(`CPU B=${B} (${b === pooled ? "2 workers" : "1 thread"}): rel gap ${gap}`);
      ok(gap <= CPU_TOL, `B=${B}: router gradient differs from B=1 by ${gap}`);
    }
  } finally {
    backend.dispose();
    pooled.dispose();
  }
});

Deno.test("CPU backend: the row-split balance gradient is the finite-difference gradient of the batch's loss", async () => {
  const coef = 0.8;
  const weight = 0.5;
  const backend = await cpuBackend(coef);
  try {
    const model = backend.model as CpuQwen3;
    // Three different rows, right-padded: the backend runs them one at a time.
    const input: ForwardInput = {
      inputIds: [[5, 17, 300, 42, 9, 77], [250, 3, 3, 128, 0, 0], [11, 12, 13, 0, 0, 0]],
      attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]],
    };
    const balanceOf = (): number => {
      const t = model.trace(input);
      return t.layers.reduce((s, layer) => s + cpuBalanceLoss(layer, t.batch.mask).loss, 0);
    };
    const { grads, loss } = await backend.lossAndGrads(input, zeroLoss, {
      linear: true,
      balanceWeight: weight,
    });
    const want = balanceOf();
    ok(
      Math.abs(loss.metrics["loss/balance"] - want) <= 1e-12 * want,
      `metric ${loss.metrics["loss/balance"]} vs the batch's balance loss ${want}`,
    );
    const lora = model.adapters!;
    const got: number[] = [];
    const fd: number[] = [];
    for (
      const m of lora.modules.filter((x) => x.router).slice(0, 14).filter((_, i) => i % 3 === 0)
    ) {
      const w = m.router!.weight;
      const g = grads[routerTensorName(m)];
      for (const i of [0, 11, w.length - 1]) {
        const w0 = w[i];
        w[i] = w0 + H;
        const up = w[i] - w0;
        const lp = balanceOf();
        w[i] = w0 - H;
        const down = w0 - w[i];
        const lm = balanceOf();
        w[i] = w0;
        got.push(g[i]);
        fd.push((weight * coef * (lp - lm)) / (up + down));
      }
    }
    ok(fd.some((x) => Math.abs(x) > 1e-4), `all probed derivatives are ~0: ${fd}`);
    const err = relativeError(got, fd);
    console.log(
      `row-split balance gradient vs finite differences: rel err ${err.toExponential(2)}`,
    );
    ok(err <= FD_TOL, `relative error ${err} exceeds ${FD_TOL}`);
    // Weight 0: no balance term, no metric, and a zero cotangent leaves nothing.
    const off = await backend.lossAndGrads(input, zeroLoss, { balanceWeight: 0 });
    strictEqual(off.loss.metrics["loss/balance"], undefined);
    ok(Object.values(off.grads).every((g) => g.every((x) => x === 0)));
  } finally {
    backend.dispose();
  }
});

Deno.test({
  name: "WebGPU backend: identical rows repeated B = 1, 2, 4 give the same balance gradient, and " +
    "CPU and WebGPU agree on one micro-batch",
  ignore: noGpu,
  async fn() {
    const gpuModel = await loadModel(dir, {
      backend: "webgpu",
      gpu: (await testContext())!,
      warn: false,
    }) as WebGpuQwen3;
    const lora = randomHilo(gpuModel.config, 1);
    gpuModel.setAdapters(lora);
    const gpu = createTrainBackend(gpuModel, { mode: "adapters", params: loraParams(lora) });
    const cpu = await cpuBackend(1);
    try {
      const one = await copies(gpu, 1);
      for (const B of [2, 4]) {
        const gap = worstGap(await copies(gpu, B), one);
        console.log(`WebGPU B=${B}: rel gap ${gap}`);
        ok(gap <= GPU_TOL, `B=${B}: router gradient differs from B=1 by ${gap}`);
      }
      // One right-padded micro-batch: the GPU runs it whole, the CPU row by row.
      const input: ForwardInput = {
        inputIds: [[5, 17, 300, 42, 9, 77], [250, 3, 3, 128, 0, 0]],
        attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]],
      };
      const dLogprobs = randomArray(10, 41);
      const term = (o: PolicyOutputs): LossOutput => ({
        value: 0,
        grad: { dLogprobs: Float64Array.from(dLogprobs, (x, i) => (o.logprobs[i] === 0 ? 0 : x)) },
        metrics: {},
      });
      const opts = { balanceWeight: 0.5 };
      const g = await gpu.lossAndGrads(input, term, opts);
      const c = await cpu.lossAndGrads(input, term, opts);
      const mg = g.loss.metrics["loss/balance"];
      const mc = c.loss.metrics["loss/balance"];
      ok(Math.abs(mg - mc) <= 1e-5 * mc, `balance metric WebGPU ${mg} vs CPU ${mc}`);
      let worst = 0;
      for (const [name, w] of Object.entries(c.grads)) {
        const err = relativeError(g.grads[name], w);
        ok(err <= STATE_TOL, `${name}: WebGPU vs CPU relative error ${err}`);
        worst = Math.max(worst, err);
      }
      console.log(`CPU vs WebGPU, one micro-batch: metric ${mc}, worst rel err ${worst}`);
      // Only a hidden cotangent at layer 0: layer 1's routers still get the balance gradient on
      // both backends (the GPU backward then starts at the last layer).
      const H = gpuModel.config.hiddenSize;
      const dHidden = randomArray(2 * 6 * H, 43);
      // Zero at padding: the GPU runs padded tokens, the CPU only real ones.
      const real = (i: number) =>
        input.attentionMask![Math.floor(i / (6 * H))][Math.floor(i / H) % 6];
      const hiddenTerm = (): LossOutput => ({
        value: 0,
        grad: { dLastHidden: Float64Array.from(dHidden, (x, i) => (real(i) ? x : 0)) },
        metrics: {},
      });
      const hg = await gpu.lossAndGrads(input, hiddenTerm, { hiddenLayer: 0 });
      const hc = await cpu.lossAndGrads(input, hiddenTerm, { hiddenLayer: 0 });
      const upper = Object.keys(hc.grads).filter((k) => k.startsWith("model.layers.1."));
      ok(upper.some((k) => k.endsWith("router.weight") && hc.grads[k].some((x) => x !== 0)));
      for (const name of Object.keys(hc.grads)) {
        const err = relativeError(hg.grads[name], hc.grads[name]);
        ok(err <= STATE_TOL, `hidden layer 0, ${name}: WebGPU vs CPU relative error ${err}`);
      }
    } finally {
      gpu.dispose();
      gpuModel.dispose();
      cpu.dispose();
    }
  },
});
