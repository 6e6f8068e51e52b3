// LoRA adapters merged into f16 base weights (`weightDtype: "f16"`,
// model/merge_adapters_webgpu.ts): the merged copies are f16 (half the f32 copies' bytes), q|k|v and gate|up fused as for f32,
// each merged element an f16 rounding of f32(W16) + scale·B·A in float64; merged generation
// picks the unmerged run's greedy tokens, its model log-probs within MERGED_F16_LOGPROB_TOL, with
// 14 + 3 dispatches fewer per layer and decode step (hardware and software paths); a module of
// several unrouted experts keeps the unmerged path on f16; a merged value beyond the f16 range is
// an error naming the module, and the next call runs.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { loraMergeF16Ref } from "../kernels/lora_merge_f16/lora_merge_f16_ref.ts";
import type { Lora } from "./adapter_types.ts";
import { type GenerateOptions, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import { MergedAdapterWeights, mergeTargets, unmergeableReason } from "./merge_adapters_webgpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { PROJECTION_FIELD, PROJECTIONS } from "./tensor_table.ts";
import { counted, maxAbsDiff } from "./_generate_test_utils.ts";

// Model log-probs of the same greedy tokens, merged f16 weights vs the unmerged f16 path, largest
// absolute difference: the merged weight is rounded to f16 once more (2^-11 relative of each
// W + scale·B·A), the unmerged path adds scale·B(A·x) in f32. Measured on the fixture (lavapipe,
// 2026-12-04): see the test's log; the f32 merge's bound (model/merge_adapters_webgpu_test.ts)
// is 1e-5.
const MERGED_F16_LOGPROB_TOL = 2e-3;

const dir = fixtureDir();
const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64], [42], [8, 8, 9]];

/** The f16 values of packed words. */
const unpackF16 = (b: ArrayBuffer) => Float32Array.from(new Float16Array(b));

/** The spacing of f16 values at |x| (2^-24 in the subnormals). */
const f16Ulp = (x: number) => 2 ** (Math.max(-14, Math.floor(Math.log2(Math.abs(x)))) - 10);

/**
 * Throws unless every `got[i]` is within `slack[i]` and one f16 spacing of `want[i]` (an f16
 * rounding, either way, of a value within `slack[i]` of it); returns how many equal the nearest
 * f16 of `want[i]`.
 */
function checkF16Rounded(
  got: Float32Array,
  want: Float64Array,
  slack: Float64Array,
  what: string,
): number {
  let nearest = 0;
  for (let i = 0; i < want.length; i++) {
    const bound = slack[i] + f16Ulp(Math.abs(want[i]) + slack[i]);
    if (!(Math.abs(got[i] - want[i]) <= bound)) {
      throw new Error(
        `${what}: element ${i} is ${got[i]}, not an f16 rounding of ${want[i]} ± ${slack[i]}`,
      );
    }
    if (got[i] === Math.f16round(want[i])) nearest++;
  }
  return nearest;
}

async function gpuModel(
  weightDtype: "f32" | "f16",
  isFallbackAdapter?: boolean,
): Promise<WebGpuQwen3> {
  const base = (await testContext())!;
  const gpu = new GpuContext({
    ...base.gpu,
    isFallbackAdapter: isFallbackAdapter ?? base.gpu.isFallbackAdapter,
  });
  // A separate base layout: its unmerged decode records q, k, v, gate and up apart, so that the
  // counts below are what merging saves (merging over a fused base: qwen3_webgpu_fused_test.ts).
  return await loadModel(dir, {
    backend: "webgpu",
    gpu,
    warn: false,
    weightDtype,
    fuseProjections: false,
  }) as WebGpuQwen3;
}

function randomLora(config: WebGpuQwen3["config"], seed: number, oProjExperts = 1): Lora {
  return createLora(
    loraConfig({ r: 8, loraAlpha: 16, targetModules: "all-linear", initLoraWeights: false }),
    config,
    { seed, expertRanks: (m) => m.target === "o_proj" && oProjExperts > 1 ? [8, 4] : [m.r] },
  );
}

/** Dispatches of one decode step: the difference of runs of 7 and 3 new tokens, over 4. */
async function perStep(model: WebGpuQwen3, mergeAdapters: boolean): Promise<number> {
  const run = (maxNewTokens: number) =>
    counted(model, {
      prompts: PROMPTS,
      maxNewTokens,
      temperature: 0,
      eosTokenIds: [],
      readbackEvery: 16,
      mergeAdapters,
    });
  const [short, long] = [await run(3), await run(7)];
  strictEqual(long.result.stats.steps, 7, "a row stopped early");
  return (long.dispatches - short.dispatches) / 4;
}

async function mergedAndUnmerged(
  model: WebGpuQwen3,
  options: GenerateOptions,
): Promise<[GenerateResult, GenerateResult]> {
  const run = (mergeAdapters: boolean) =>
    generateWebGpu(model, resolveGenerateOptions(model.config, { ...options, mergeAdapters }));
  return [await run(true), await run(false)];
}

Deno.test({
  name: "MergedAdapterWeights merges plain LoRA into f16 copies of f16 weights, half the f32 " +
    "copies' bytes, each element an f16 rounding of the float64 merge",
  ignore: noGpu,
  async fn() {
    const [m16, m32] = [await gpuModel("f16"), await gpuModel("f32")];
    const ctx = m16.ctx;
    const lora = randomLora(m16.config, 5);
    m16.setAdapters(lora);
    m32.setAdapters(lora);
    const atRest = ctx.allocatedBytes;
    const merged = new MergedAdapterWeights(ctx, m16);
    try {
      const L = m16.config.numHiddenLayers;
      strictEqual(merged.size, 7 * L);
      deepStrictEqual(
        merged.fused,
        Array.from({ length: L }, (_, layer) => [
          { layer, group: "qkv" },
          { layer, group: "gate_up" },
        ]).flat(),
      );
      // Half the f32 merge's bytes: the f16 base weights' own.
      const f32 = new MergedAdapterWeights(m32.ctx, m32);
      const f32Bytes = f32.bytes;
      f32.dispose();
      strictEqual(2 * merged.bytes, f32Bytes);
      let base = 0;
      for (const lw of m16.layers) {
        for (const t of PROJECTIONS) {
          const w = lw[PROJECTION_FIELD[t]] as GpuMatrix;
          strictEqual(w.dtype, "f16");
          base += 2 * w.rows * w.cols;
        }
      }
      strictEqual(merged.bytes, base);
      // Plus the 8-byte overflow status.
      strictEqual(ctx.allocatedBytes - atRest, merged.bytes + 8);

      const enc = ctx.device.createCommandEncoder();
      merged.encode(enc, m16);
      const [st] = await readback(ctx, [{ buffer: merged.status!, offset: 0, size: 8 }], enc);
      deepStrictEqual(Array.from(new Uint32Array(st)), [0, 0]);
      merged.checkStatus(new Uint32Array(st));
      const view = merged.view(m16);
      strictEqual(view.adapters, null, "every projection merged: no adapters left");
      for (const lw of view.layers) {
        strictEqual(lw.qkvProj?.dtype, "f16");
        strictEqual(lw.gateUpProj?.dtype, "f16");
      }
      let [count, nearest] = [0, 0];
      for (const m of lora.modules) {
        const field = PROJECTION_FIELD[m.target];
        const w0 = m16.layers[m.layer][field] as GpuMatrix;
        const got = view.layers[m.layer][field] as GpuMatrix;
        strictEqual(got.dtype, "f16");
        ok(got.chunks[0].buffer !== w0.chunks[0].buffer);
        const n = w0.rows * w0.cols;
        const size = 4 * Math.ceil(n / 2);
        const [w, w2] = (await readback(ctx, [
          { buffer: w0.chunks[0].buffer, offset: 0, size },
          { buffer: got.chunks[0].buffer, offset: got.chunks[0].offset ?? 0, size },
        ])).map((b) => unpackF16(b).subarray(0, n));
        const { a, b, r, scale } = m.experts[0];
        const [out, k] = [m.outFeatures, m.inFeatures];
        const ref = loraMergeF16Ref(w, a, b, { n: out, k, r, alpha: scale });
        const slack = ref.magnitude.map((x) => (r + 2) * 2 ** -24 * x);
        nearest += checkF16Rounded(w2, ref.merged, slack, m.name);
        count += n;
      }
      console.log(
        `f16 merge of ${lora.modules.length} modules: ${count} weights, ` +
          `${(100 * nearest / count).toFixed(2)}% the nearest-even f16 of the float64 merge`,
      );
    } finally {
      merged.dispose();
      strictEqual(ctx.allocatedBytes, atRest, "merged buffers not freed");
      m16.dispose();
      m32.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters on f16 weights: the unmerged run's greedy tokens, " +
    "log-probs within the f16 rounding, 14 + 3 dispatches fewer per layer and decode step",
  ignore: noGpu,
  async fn() {
    // The hardware path (fused q|k|v matvec with the RMSNorm, SwiGLU in down_proj) and the
    // software one.
    for (const isFallbackAdapter of [false, true]) {
      const model = await gpuModel("f16", isFallbackAdapter);
      try {
        model.setAdapters(randomLora(model.config, 5));
        const L = model.config.numHiddenLayers;
        const path = isFallbackAdapter ? "software" : "hardware";
        const options = { prompts: PROMPTS, maxNewTokens: 12, temperature: 0, eosTokenIds: [] };
        const [on, off] = await mergedAndUnmerged(model, options);
        deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
        const err = maxAbsDiff(on, off);
        ok(err <= MERGED_F16_LOGPROB_TOL, `${path}: merged vs unmerged f16 log-probs: ${err}`);
        ok(err > 0, `${path}: merged f16 log-probs bit-equal to unmerged: was anything merged?`);
        const [merged, unmerged] = [await perStep(model, true), await perStep(model, false)];
        strictEqual(unmerged - merged, 2 * 7 * L + 3 * L, path);
        // For scale: the f16 weights' own difference from f32 weights (unmerged, same adapter).
        const m32 = await gpuModel("f32", isFallbackAdapter);
        m32.setAdapters(randomLora(model.config, 5));
        const f32 = await generateWebGpu(
          m32,
          resolveGenerateOptions(m32.config, { ...options, mergeAdapters: false }),
        );
        m32.dispose();
        console.log(
          `f16 weights, ${path} path: ${on.stats.generatedTokens} greedy tokens equal; model ` +
            `log-probs merged vs unmerged max abs ${err.toExponential(2)} (unmerged f16 vs f32 ` +
            `weights ${maxAbsDiff(off, f32).toExponential(2)}, merged f16 vs f32 ` +
            `${maxAbsDiff(on, f32).toExponential(2)}); dispatches per decode step ${unmerged} → ` +
            `${merged}`,
        );
      } finally {
        releaseGenerateWorkspace(model);
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters on f16 weights leaves a module of two unrouted " +
    "experts unmerged",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel("f16");
    try {
      const lora = randomLora(model.config, 7, 2);
      model.setAdapters(lora);
      const o = model.adapters!.module(0, "o_proj")!;
      strictEqual(
        unmergeableReason(o, model.layers[0].oProj),
        "f16 base weight with 2 experts (the f16 merge takes one)",
      );
      const targets = mergeTargets(model);
      strictEqual(targets.length, 6 * model.config.numHiddenLayers);
      ok(targets.every((t) => t.target !== "o_proj"));
      const options = { prompts: PROMPTS, maxNewTokens: 10, temperature: 0, eosTokenIds: [] };
      const [on, off] = await mergedAndUnmerged(model, options);
      deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
      const err = maxAbsDiff(on, off);
      ok(err <= MERGED_F16_LOGPROB_TOL, `merged vs unmerged f16 log-probs: ${err}`);
      console.log(`o_proj of 2 experts unmerged: log-probs max abs ${err.toExponential(2)}`);
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters on f16 weights refuses a merged value beyond the " +
    "f16 range, naming the module; the next call runs",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel("f16");
    const ctx = model.ctx;
    try {
      const lora = randomLora(model.config, 3);
      // down_proj of layer 1: scale 2 · Σ_8 1e4 · 1 = 1.6e5 on every weight.
      const big = lora.modules.find((m) => m.layer === 1 && m.target === "down_proj")!;
      big.experts[0].a.fill(1);
      big.experts[0].b.fill(1e4);
      model.setAdapters(lora);
      const options = { prompts: PROMPTS, maxNewTokens: 4, temperature: 0, mergeAdapters: true };
      await rejects(
        generateWebGpu(model, resolveGenerateOptions(model.config, options)),
        (e: Error) =>
          e instanceof RangeError &&
          e.message.includes(`beyond the f16 range`) &&
          e.message.includes(`"${big.name}"`) &&
          e.message.includes(`${big.outFeatures * big.inFeatures} merged value(s)`),
      );
      big.experts[0].b.fill(0);
      model.adapters!.write(lora);
      const before = ctx.allocatedBytes;
      const [on, off] = await mergedAndUnmerged(model, options);
      deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
      ok(ctx.allocatedBytes <= before, "the failed call's merged weights outlived the next call");
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() leaves f16 weights unmerged by default, even on a hardware adapter " +
    "(their f16 copy would round small adapter updates away)",
  ignore: noGpu,
  async fn() {
    for (const dtype of ["f16", "f32"] as const) {
      const model = await gpuModel(dtype, false);
      try {
        model.setAdapters(randomLora(model.config, 5));
        const options = { prompts: PROMPTS, maxNewTokens: 3, temperature: 0, eosTokenIds: [] };
        const byDefault = (await counted(model, options)).dispatches;
        const off = (await counted(model, { ...options, mergeAdapters: false })).dispatches;
        const on = (await counted(model, { ...options, mergeAdapters: true })).dispatches;
        ok(on < off, `${dtype}: merging saves dispatches (${on} vs ${off})`);
        strictEqual(byDefault, dtype === "f16" ? off : on, `${dtype}: the default`);
      } finally {
        releaseGenerateWorkspace(model);
        model.dispose();
      }
    }
  },
});
