// HILO adapters on WebGPU: the routed LoRA branch (router logits, moe_route gates, gated expert
// sum) against the float64 one-projection reference on odd shapes; the fixture model with random
// HILO adapters, WebGPU forward = CPU forward; generate() with them = the CPU backend's
// step-by-step recomputation; the GPU backward (router through the gates) against the float64
// reference and the CPU backward, with and without the load-balancing loss.
import { deepStrictEqual, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  relativeError,
  testContext,
} from "../gpu/test_utils.ts";
import { createHilo, hiloConfig, type HiloConfigOptions } from "../adapters/hilo.ts";
import { hiloProjectionBackwardRef, hiloProjectionRef } from "../adapters/hilo_projection_ref.ts";
import { assertArrayEqual, fixtureDir, withTempDir } from "../internal/test_utils.ts";
import { saveHiloAdapter } from "../adapters/hilo_io.ts";
import { type Lora, loraTensorName, routerTensorName } from "./adapter_types.ts";
import { randomRoutedModule } from "./_hilo_test_utils.ts";
import { generate, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateCpu } from "./generate_cpu.ts";
import { releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import { encodeLoraBackward, encodeLoraForward, GpuLora } from "./lora_webgpu.ts";
import { cpuBackward } from "./qwen3_cpu_backward.ts";
import type { CpuQwen3 } from "./qwen3_cpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { WebGpuQwen3Backward } from "./qwen3_webgpu_backward.ts";

// f32 matmuls of width ≤ 64 and f32 gates against float64: measured ~1e-7; 1e-5 as the plain
// LoRA branch's test (lora_webgpu_test.ts).
const BRANCH_TOL = 1e-5;
// Whole-model f32 vs f64 logits, the golden tests' bound (measured ~1e-6 on the tiny model).
const STATE_TOL = 1e-4;

const dir = fixtureDir();

Deno.test({
  name: "encodeLoraForward() with a router equals the float64 HILO reference (odd shapes, matvec)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [inF, outF] = [19, 23];
    let seed = 1;
    const cases = [
      { m: 1, ranks: [3, 3, 3], activation: "top-k", topK: 2, matvec: true },
      { m: 5, ranks: [2, 5, 1, 4, 3], activation: "top-k", topK: 3, matvec: false },
      { m: 67, ranks: [4, 4, 4, 4], activation: "top-p", topK: 2, matvec: false },
      { m: 3, ranks: [1, 2], activation: "top-p", topK: 1, matvec: true },
    ] as const;
    for (const c of cases) {
      const E = c.ranks.length;
      const built = randomRoutedModule(c, { inF, outF, seed });
      const module = built.module;
      seed = built.seed;
      const lora: Lora = { config: {} as Lora["config"], modules: [module] };
      const gpu = new GpuLora(ctx, lora);
      const x = randomArray(c.m * inF, seed++, -1, 1);
      const y0 = randomArray(c.m * outF, seed++, -1, 1);
      const xb = ctx.upload(x, "x");
      const yb = ctx.upload(y0, "y");
      const scratch = ctx.createBuffer(4 * c.m * gpu.maxRank, "scratch");
      const enc = recordPass(ctx, (pass) =>
        encodeLoraForward(ctx, pass, {
          module: gpu.modules[0],
          x: xb,
          y: yb,
          m: c.m,
          scratch,
          matvec: c.matvec,
        }));
      const got = await readFloats(ctx, yb, c.m * outF, enc);
      // Reference with identity-free base: W0 = 0, plus the y0 the kernel accumulated onto.
      const ref = hiloProjectionRef(x, { ...module, w0: new Float32Array(outF * inF) });
      const want = ref.y.map((v, i) => v + y0[i]);
      const err = assertClose(got, want, BRANCH_TOL, `m=${c.m} E=${E} ${c.activation}`);
      console.log(`HILO branch m=${c.m} E=${E} ${c.activation}: rel err ${err.toExponential(2)}`);
      for (const b of [xb, yb, scratch]) ctx.release(b);
      gpu.dispose();
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

async function models(): Promise<{ gpu: WebGpuQwen3; cpu: CpuQwen3 }> {
  const gpu = await loadModel(dir, {
    backend: "webgpu",
    gpu: (await testContext())!,
    warn: false,
  }) as WebGpuQwen3;
  const cpu = await loadModel(dir, { backend: "cpu", warn: false }) as CpuQwen3;
  return { gpu, cpu };
}

Deno.test({
  name: "WebGpuQwen3 with random HILO adapters: forward equals the CPU backend's (top-k and top-p)",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu } = await models();
    try {
      const input = {
        inputIds: [[5, 17, 300, 42, 9, 77, 3], [250, 3, 3, 128, 1, 0, 0]],
        attentionMask: [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]],
      };
      const base = await cpu.forward(input);
      for (
        const options of [
          { experts: "2-4", rank: "4-2", topK: [1, 2] },
          { experts: "1-3", rank: "2-5", activation: "top-p", topP: 0.7 },
        ] as HiloConfigOptions[]
      ) {
        const lora = randomHilo(gpu.config, options, 7);
        gpu.setAdapters(lora);
        cpu.setAdapters(lora);
        const a = await gpu.forward(input);
        const b = await cpu.forward(input);
        const err = assertClose(a.logits, b.logits, STATE_TOL, `logits ${JSON.stringify(options)}`);
        // The adapters matter: the logits move far more than the tolerance.
        const shift = Math.sqrt(
          b.logits.reduce((s, v, i) => s + (v - base.logits[i]) ** 2, 0) /
            b.logits.reduce((s, v) => s + v * v, 0),
        );
        ok(shift > 100 * STATE_TOL, `HILO shifts the logits by only ${shift}`);
        console.log(
          `${JSON.stringify(options)}: WebGPU vs CPU logits rel err ${err.toExponential(2)}, ` +
            `shift from base ${shift.toExponential(2)}`,
        );
      }
    } finally {
      gpu.dispose();
    }
  },
});

const tokensOf = (r: GenerateResult) => r.sequences.map((s) => s.tokens);

Deno.test({
  name:
    "generate() with HILO adapters on WebGPU equals the CPU backend and step-by-step recomputation",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu } = await models();
    try {
      const prompts = [[11, 200, 37], [5, 99, 143, 250, 7], [42]];
      const options = { prompts, maxNewTokens: 8, temperature: 0, eosTokenIds: [] };
      const base = await generate(gpu, options);
      const lora = randomHilo(gpu.config, { experts: "2-3", rank: "3-2" }, 11);
      gpu.setAdapters(lora);
      cpu.setAdapters(lora);
      const onGpu = await generate(gpu, options);
      const onCpu = await generate(cpu, options);
      deepStrictEqual(tokensOf(onGpu), tokensOf(onCpu));
      // Step-by-step recomputation: the WebGPU forward over each whole prefix, no KV cache.
      const recomputed = await generateCpu(gpu, resolveGenerateOptions(gpu.config, options));
      deepStrictEqual(tokensOf(onGpu), tokensOf(recomputed));
      notDeepStrictEqual(tokensOf(onGpu), tokensOf(base));
      const err = assertClose(
        onGpu.sequences.flatMap((s) => [...s.modelLogprobs]),
        onCpu.sequences.flatMap((s) => [...s.modelLogprobs]),
        STATE_TOL,
        "model log-probs vs the CPU backend",
      );
      console.log(`HILO generation: tokens equal; model log-probs rel err ${err.toExponential(2)}`);
    } finally {
      releaseGenerateWorkspace(gpu);
      gpu.dispose();
    }
  },
});

Deno.test({
  name:
    "encodeLoraBackward() with a router equals the float64 HILO backward reference (odd shapes)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [inF, outF] = [19, 23];
    let seed = 100;
    const cases = [
      { m: 1, ranks: [3, 3, 3], activation: "top-k", topK: 2 },
      { m: 6, ranks: [2, 5, 1, 4, 3], activation: "top-k", topK: 3 },
      { m: 67, ranks: [4, 4, 4, 4], activation: "top-p", topK: 2 },
    ] as const;
    for (const c of cases) {
      const E = c.ranks.length;
      const built = randomRoutedModule({ ...c, target: "up_proj" }, { inF, outF, seed });
      const module = built.module;
      seed = built.seed;
      const lora: Lora = { config: {} as Lora["config"], modules: [module] };
      const gpu = new GpuLora(ctx, lora);
      gpu.ensureGrads();
      const x = randomArray(c.m * inF, seed++, -1, 1);
      const dy = randomArray(c.m * outF, seed++, -1, 1);
      const xb = ctx.upload(x, "x");
      const dyb = ctx.upload(dy, "dy");
      const dxb = ctx.upload(new Float32Array(c.m * inF), "dx");
      const u = ctx.createBuffer(4 * c.m * gpu.maxRank, "u");
      const du = ctx.createBuffer(4 * c.m * gpu.maxRank, "du");
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
      const ref = hiloProjectionBackwardRef(dy, x, { ...module, w0: new Float32Array(outF * inF) });
      const what = `m=${c.m} E=${E} ${c.activation}`;
      const errs = [assertClose(dx, ref.dx, BRANCH_TOL, `${what} dx`)];
      module.experts.forEach((_, i) => {
        const name = (mat: "A" | "B") => loraTensorName(module, { matrix: mat, expert: i });
        errs.push(assertClose(grads.get(name("A"))!, ref.dA[i], BRANCH_TOL, `${what} dA${i}`));
        errs.push(assertClose(grads.get(name("B"))!, ref.dB[i], BRANCH_TOL, `${what} dB${i}`));
      });
      errs.push(
        assertClose(grads.get(routerTensorName(module))!, ref.dRouter, BRANCH_TOL, `${what} dW_r`),
      );
      console.log(
        `HILO branch backward ${what}: worst rel err ${Math.max(...errs).toExponential(2)}`,
      );
      for (const b of [xb, dyb, dxb, u, du]) ctx.release(b);
      gpu.dispose();
    }
  },
});

Deno.test({
  name:
    "WebGpuQwen3Backward with HILO adapters gives the CPU backward's expert and router gradients, with and without the balance loss",
  ignore: noGpu,
  async fn() {
    const { gpu, cpu } = await models();
    const train = new WebGpuQwen3Backward(gpu);
    try {
      const input = {
        inputIds: [[5, 17, 300, 42, 9, 77], [250, 3, 3, 128, 1, 0]],
        attentionMask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]],
      };
      const dLogprobs = randomArray(10, 41);
      for (
        const options of [
          { experts: "2-4", rank: "4-2", topK: [1, 2] },
          { experts: "1-3", rank: "2-5", activation: "top-p", topP: 0.7 },
          // The load-balancing loss (over real tokens: row 1 is padded) adds a router gradient.
          { experts: "4-3", rank: "2-2", balanceCoef: 0.5 },
          { experts: "2-5", rank: "3-1", activation: "top-p", topP: 0.5, balanceCoef: 2 },
        ] as HiloConfigOptions[]
      ) {
        const lora = randomHilo(gpu.config, options, 17);
        gpu.setAdapters(lora);
        cpu.setAdapters(lora);
        const g = await train.backward(input, { mode: "adapters", dLogprobs });
        const want = cpuBackward(cpu, input, { mode: "adapters", dLogprobs }).grads;
        if (options.balanceCoef) {
          // The balance term matters: without it the router gradients differ far beyond the bound.
          const without = cpuBackward(cpu, input, { mode: "adapters", dLogprobs, balanceCoef: 0 });
          const name = routerTensorName(lora.modules[13]);
          const gap = relativeError(without.grads.get(name)!, want.get(name)!);
          ok(gap > 100 * STATE_TOL, `balance term changes ${name} by only ${gap}`);
        }
        ok(want.size > 0 && [...want.keys()].some((k) => k.endsWith("router.weight")));
        let worst = 0;
        for (const [name, w] of want) {
          const got = g.grads.get(name);
          ok(got, `missing GPU gradient ${name}`);
          if (Math.hypot(...w) < 1e-12) {
            // An exactly-zero reference (a router whose projection sends equally many tokens to
            // its 2 experts, top-1: no gate and no balance gradient): f32 noise only.
            const noise = Math.max(...Array.from(got, Math.abs));
            ok(noise < 1e-5, `${name}: ${noise} where the reference is 0`);
            continue;
          }
          worst = Math.max(
            worst,
            assertClose(got, w, STATE_TOL, `${name} ${JSON.stringify(options)}`),
          );
        }
        console.log(
          `${JSON.stringify(options)}: ${want.size} gradients, worst rel err ${
            worst.toExponential(2)
          }`,
        );
      }
    } finally {
      train.dispose();
      gpu.dispose();
    }
  },
});

Deno.test({
  name: "GpuLora reads HILO routers back and refuses more routed experts than the kernels handle",
  ignore: noGpu,
  async fn() {
    const { gpu } = await models();
    try {
      const lora = randomHilo(gpu.config, { experts: "1-2", rank: 2, balanceCoef: 0.01 }, 13);
      gpu.setAdapters(lora);
      const back = await gpu.readAdapters();
      deepStrictEqual(back.hilo, lora.hilo);
      deepStrictEqual(back.modules[7].router, lora.modules[7].router);
      const ctx = (await testContext())!;
      // More routed experts than the router kernel's 64 are refused at upload.
      const wide: Lora = {
        config: lora.config,
        modules: [{
          ...lora.modules[7],
          experts: Array.from({ length: 65 }, () => lora.modules[7].experts[0]),
          router: { ...lora.modules[7].router!, weight: new Float32Array(65 * 64) },
        }],
      };
      throws(() => new GpuLora(ctx, wide), /65 routed experts, more than the 64/);
    } finally {
      gpu.dispose();
    }
  },
});

Deno.test({
  name:
    'loadModel(dir, { backend: "webgpu", adapter }) runs a saved HILO directory as setAdapters does',
  ignore: noGpu,
  async fn() {
    await withTempDir(async (tmp) => {
      const { gpu } = await models();
      const lora = randomHilo(gpu.config, { experts: "3-2", rank: "2-3" }, 19);
      await saveHiloAdapter(`${tmp}/hilo`, lora);
      const loaded = await loadModel(dir, {
        backend: "webgpu",
        gpu: (await testContext())!,
        warn: false,
        adapter: `${tmp}/hilo`,
      });
      try {
        gpu.setAdapters(lora);
        const input = { inputIds: [[1, 2, 3, 4, 5, 6, 7]] };
        const a = await loaded.forward(input);
        const b = await gpu.forward(input);
        assertArrayEqual(a.logits, b.logits, "logits");
      } finally {
        loaded.dispose();
        gpu.dispose();
      }
    });
  },
});
