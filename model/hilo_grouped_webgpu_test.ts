// The grouped dispatch of HILO's routed experts (per-expert token lists built on the GPU, each
// expert run on its own tokens) against the dense dispatch and the float64 one-projection
// reference, on odd shapes (E = 1, 3, 8, 16; top-1, top-2, top-p; tied router logits) with a
// poisoned scratch, forward and backward; the fixture model with a random HILO adapter gives the
// same logits, generated tokens and adapter gradients (with the balance loss too) with either
// dispatch.
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../gpu/test_utils.ts";
import { createHilo, hiloConfig, type HiloConfigOptions } from "../adapters/hilo.ts";
import { hiloProjectionBackwardRef, hiloProjectionRef } from "../adapters/hilo_projection_ref.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { type Lora, type LoraModule, loraTensorName, routerTensorName } from "./adapter_types.ts";
import { randomRoutedModule, type RoutedModuleSpec } from "./_hilo_test_utils.ts";
import { generate } from "./generate.ts";
import { releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import {
  encodeLoraBackward,
  encodeLoraForward,
  GpuLora,
  HILO_GROUPED_MIN_EXPERTS,
  type HiloDispatch,
} from "./lora_webgpu.ts";
import type { CpuQwen3 } from "./qwen3_cpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { WebGpuQwen3Backward } from "./qwen3_webgpu_backward.ts";

// One projection, f32 vs float64 at widths ≤ 64: 1e-5 as the dense branch's test
// (hilo_webgpu_test.ts); grouped vs dense differ only in f32 summation order: 1e-6.
const BRANCH_TOL = 1e-5;
const PATHS_TOL = 1e-6;
// Backward, grouped vs dense: 1e-5 (measured 0 at these widths: both sum in the same order, and
// the dense path's extra terms are exact zeros; a wrong scale of 1.001 fails the test).
const BACKWARD_PATHS_TOL = 1e-5;
// Whole-model f32 logits and gradients, grouped vs dense and vs the CPU backend: the golden bound.
const STATE_TOL = 1e-4;

Deno.test({
  name:
    "encodeLoraForward() grouped equals dense and the float64 HILO reference (odd shapes, ties)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [inF, outF] = [19, 23];
    let seed = 500;
    const cases = [
      { m: 5, E: 1, r: 3, activation: "top-k", topK: 1, matvec: false, ties: false },
      { m: 37, E: 3, r: 4, activation: "top-k", topK: 2, matvec: false, ties: false },
      { m: 3, E: 3, r: 2, activation: "top-k", topK: 1, matvec: true, ties: true },
      { m: 33, E: 8, r: 5, activation: "top-k", topK: 1, matvec: false, ties: false },
      { m: 67, E: 16, r: 3, activation: "top-k", topK: 2, matvec: false, ties: true },
      { m: 29, E: 8, r: 4, activation: "top-p", topK: 2, matvec: false, ties: false },
      { m: 2, E: 16, r: 2, activation: "top-p", topK: 2, matvec: true, ties: true },
    ] as const;
    for (const c of cases) {
      const built = randomRoutedModule(spec(c), { inF, outF, seed });
      const module = built.module;
      seed = built.seed;
      const lora: Lora = { config: {} as Lora["config"], modules: [module] };
      const x = randomArray(c.m * inF, seed++, -1, 1);
      const y0 = randomArray(c.m * outF, seed++, -1, 1);
      const ref = hiloProjectionRef(x, { ...module, w0: new Float32Array(outF * inF) });
      const want = ref.y.map((v, i) => v + y0[i]);
      const what = `m=${c.m} E=${c.E} ${c.activation} k=${c.topK}${c.ties ? " ties" : ""}`;
      const got: Record<string, Float32Array> = {};
      for (const dispatch of ["dense", "grouped"] as const) {
        const gpu = new GpuLora(ctx, lora, { dispatch });
        equal(gpu.modules[0].grouped, dispatch === "grouped");
        const xb = ctx.upload(x, "x");
        const yb = ctx.upload(y0, "y");
        const scratch = poisoned(ctx, c.m * gpu.maxRank, "scratch");
        const enc = recordPass(ctx, (pass) =>
          encodeLoraForward(ctx, pass, {
            module: gpu.modules[0],
            x: xb,
            y: yb,
            m: c.m,
            scratch,
            matvec: c.matvec,
          }));
        got[dispatch] = await readFloats(ctx, yb, c.m * outF, enc);
        for (const b of [xb, yb, scratch]) ctx.release(b);
        gpu.dispose();
        assertClose(got[dispatch], want, BRANCH_TOL, `${what} ${dispatch} vs f64`);
      }
      const err = assertClose(got.grouped, got.dense, PATHS_TOL, `${what} grouped vs dense`);
      console.log(`HILO grouped ${what}: rel err vs dense ${err.toExponential(2)}`);
    }
  },
});

/** The routed module of a case: `E` experts of rank `r`. */
function spec(
  c: { E: number; r: number; activation: "top-k" | "top-p"; topK: number; ties: boolean },
): RoutedModuleSpec {
  return { ...c, ranks: Array(c.E).fill(c.r) };
}

Deno.test({
  name:
    "encodeLoraBackward() grouped equals dense and the float64 HILO backward reference (odd shapes, ties)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [inF, outF] = [19, 23];
    const cases = [
      { m: 5, E: 1, r: 3, activation: "top-k", topK: 1, ties: false },
      { m: 37, E: 3, r: 4, activation: "top-k", topK: 2, ties: true },
      { m: 33, E: 8, r: 5, activation: "top-k", topK: 1, ties: false },
      { m: 67, E: 16, r: 3, activation: "top-k", topK: 2, ties: true },
      { m: 29, E: 8, r: 4, activation: "top-p", topK: 2, ties: false },
    ] as const;
    let seed = 900;
    for (const c of cases) {
      const { module } = randomRoutedModule(spec(c), { inF, outF, seed });
      seed += 100;
      const lora: Lora = { config: {} as Lora["config"], modules: [module] };
      const x = randomArray(c.m * inF, seed++, -1, 1);
      const dy = randomArray(c.m * outF, seed++, -1, 1);
      const ref = hiloProjectionBackwardRef(dy, x, { ...module, w0: new Float32Array(outF * inF) });
      const what = `m=${c.m} E=${c.E} ${c.activation} k=${c.topK}${c.ties ? " ties" : ""}`;
      const names = [
        ...module.experts.flatMap((_, i) =>
          (["A", "B"] as const).map((matrix) => loraTensorName(module, { matrix, expert: i }))
        ),
        routerTensorName(module),
      ];
      const got: Record<string, Float32Array[]> = {};
      for (const dispatch of ["dense", "grouped"] as const) {
        const gpu = new GpuLora(ctx, lora, { dispatch });
        equal(gpu.modules[0].grouped, dispatch === "grouped");
        gpu.ensureGrads();
        const xb = ctx.upload(x, "x");
        const dyb = ctx.upload(dy, "dy");
        const dxb = ctx.upload(new Float32Array(c.m * inF), "dx");
        const u = poisoned(ctx, c.m * gpu.maxRank, "u");
        const du = poisoned(ctx, c.m * gpu.maxRank, "du");
        const enc = recordPass(ctx, (pass) =>
          encodeLoraBackward(ctx, pass, {
            module: gpu.modules[0],
            x: xb,
            dy: dyb,
            dx: dxb,
            m: c.m,
            u,
            du,
          }));
        const dx = await readFloats(ctx, dxb, c.m * inF, enc);
        const grads = await gpu.readGrads();
        for (const b of [xb, dyb, dxb, u, du]) ctx.release(b);
        gpu.dispose();
        got[dispatch] = [dx, ...names.map((n) => grads.get(n)!)];
        const want = [
          ref.dx,
          ...ref.dA.flatMap((dA, i) => [dA, ref.dB[i]]),
          ref.dRouter,
        ];
        want.forEach((w, i) =>
          assertClose(got[dispatch][i], w, BRANCH_TOL, `${what} ${dispatch} ${["dx", ...names][i]}`)
        );
      }
      const errs = got.grouped.map((g, i) =>
        assertClose(g, got.dense[i], BACKWARD_PATHS_TOL, `${what} grouped vs dense ${i}`)
      );
      console.log(
        `HILO grouped backward ${what}: worst rel err vs dense ${
          Math.max(...errs).toExponential(2)
        }`,
      );
    }
  },
});

Deno.test({
  name: "GpuLora.dispatch resolves auto by expert count and refuses grouped above rank 64",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const routed = (E: number, r: number): LoraModule => ({
      name: `model.layers.0.mlp.up_proj`,
      layer: 0,
      target: "up_proj",
      inFeatures: 4,
      outFeatures: 4,
      experts: Array.from({ length: E }, () => ({
        a: new Float32Array(r * 4),
        b: new Float32Array(4 * r),
        r,
        scale: 1,
      })),
      router: { weight: new Float32Array(E * 4), activation: "top-k", topK: 1, topP: 0.8 },
    });
    const of = (m: LoraModule): Lora => ({ config: {} as Lora["config"], modules: [m] });
    const N = HILO_GROUPED_MIN_EXPERTS;
    const small = new GpuLora(ctx, of(routed(N - 1, 2)));
    const big = new GpuLora(ctx, of(routed(N, 2)));
    // Auto with a rank the grouped kernels cannot take stays dense instead of failing.
    const wide = new GpuLora(ctx, of(routed(32, 65)));
    try {
      equal(small.dispatch, "auto");
      equal(small.modules[0].grouped, false);
      equal(big.modules[0].grouped, true);
      equal(wide.modules[0].grouped, false);
      big.dispatch = "dense";
      equal(big.modules[0].grouped, false);
      throws(() => {
        small.dispatch = "fast" as HiloDispatch;
      }, /"dispatch" must be "dense", "grouped" or "auto": current value is "fast"/);
      throws(
        () => new GpuLora(ctx, of(routed(2, 65)), { dispatch: "grouped" }),
        /"model.layers.0.mlp.up_proj" to "grouped": its experts' rank must be at most 64: current value is 65/,
      );
    } finally {
      for (const g of [small, big, wide]) g.dispose();
    }
  },
});

/** Random HILO adapters with non-zero B, so they change the model. */
function randomHilo(config: WebGpuQwen3["config"], options: HiloConfigOptions, seed: number): Lora {
  const lora = createHilo(hiloConfig(config, options), config, { seed });
  let s = seed * 1000;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.2, 0.2));
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

Deno.test({
  name:
    "WebGpuQwen3 with a random HILO adapter: grouped dispatch gives the dense logits, CPU logits, generated tokens and gradients",
  ignore: noGpu,
  async fn() {
    const dir = fixtureDir();
    const gpu = await loadModel(dir, {
      backend: "webgpu",
      gpu: (await testContext())!,
      warn: false,
    }) as WebGpuQwen3;
    const cpu = await loadModel(dir, { backend: "cpu", warn: false }) as CpuQwen3;
    const train = new WebGpuQwen3Backward(gpu);
    try {
      const input = {
        inputIds: [[5, 17, 300, 42, 9, 77, 3], [250, 3, 3, 128, 1, 0, 0]],
        attentionMask: [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]],
      };
      const dLogprobs = randomArray(12, 43);
      for (
        const options of [
          { experts: "3-16", rank: "2-3", topK: [1, 2] },
          { experts: "8-5", rank: "3-2", activation: "top-p", topP: 0.7 },
          // The load-balancing loss's router gradient goes through the grouped backward too.
          { experts: "4-9", rank: "2-2", balanceCoef: 0.5 },
        ] as HiloConfigOptions[]
      ) {
        const lora = randomHilo(gpu.config, options, 23);
        gpu.setAdapters(lora);
        cpu.setAdapters(lora);
        const what = JSON.stringify(options);
        const run = async (dispatch: HiloDispatch) => {
          gpu.adapters!.dispatch = dispatch;
          ok(gpu.adapters!.modules.some((m) => m.grouped) === (dispatch === "grouped"));
          const logits = (await gpu.forward(input)).logits;
          const tokens = (await generate(gpu, {
            prompts: [[11, 200, 37], [5, 99, 143, 250, 7]],
            maxNewTokens: 4,
            temperature: 0,
            eosTokenIds: [],
          })).sequences.map((s) => s.tokens);
          const grads = (await train.backward(input, { mode: "adapters", dLogprobs })).grads;
          return { logits, tokens, grads };
        };
        const dense = await run("dense");
        const grouped = await run("grouped");
        const cpuLogits = (await cpu.forward(input)).logits;
        const err = assertClose(grouped.logits, dense.logits, STATE_TOL, `${what} logits`);
        const errCpu = assertClose(grouped.logits, cpuLogits, STATE_TOL, `${what} vs CPU`);
        deepStrictEqual(grouped.tokens, dense.tokens);
        let worst = 0;
        for (const [name, g] of dense.grads) {
          worst = Math.max(worst, assertClose(grouped.grads.get(name)!, g, STATE_TOL, name));
        }
        console.log(
          `${what}: grouped vs dense logits rel err ${err.toExponential(2)}, vs CPU ` +
            `${errCpu.toExponential(2)}; tokens equal; worst gradient rel err ` +
            `${worst.toExponential(2)}`,
        );
      }
    } finally {
      releaseGenerateWorkspace(gpu);
      train.dispose();
      gpu.dispose();
    }
  },
});
