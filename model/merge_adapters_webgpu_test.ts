// Generation with the LoRA adapters merged into copies of the base weights (`mergeAdapters`,
// model/merge_adapters_webgpu.ts): the merged matrices equal W + Σ scale·B·A in float64, q|k|v
// and gate|up each in one buffer (no more bytes than the per-projection copies), and merged
// generation gives the unmerged run's tokens and model log-probs (and the CPU backend's) with 2
// dispatches fewer per adapted projection and decode step, and 2 (q|k|v) + 1 (gate|up on the
// software path) fewer per fused layer; LoRA on a subset of projections fuses with the others'
// base weights copied in; routed (HILO) modules keep the unmerged path; adapter values changed
// between calls are merged again; every buffer is freed.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import type { Lora } from "./adapter_types.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { type GenerateOptions, type GenerateResult, resolveGenerateOptions } from "./generate.ts";
import { generateCpu } from "./generate_cpu.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { loadModel } from "./load_model.ts";
import { MergedAdapterWeights, mergeTargets, unfusableReason } from "./merge_adapters_webgpu.ts";
import type { CpuQwen3 } from "./qwen3_cpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { FUSED_GROUPS, PROJECTION_FIELD, PROJECTIONS } from "./tensor_table.ts";
import { counted } from "./_generate_test_utils.ts";

// Merged W' = W + s·B·A against float64, each element's error over |W| + s·Σ_j |B_oj·A_ji|: f32
// roundings of a rank-8 sum (measured 1.7e-7).
const MERGE_TOL = 1e-6;
// Model log-probs, merged vs unmerged (the same f32 math with each projection's sum regrouped),
// largest absolute difference.
const MERGED_LOGPROB_TOL = 1e-5;
// Model log-probs vs the float64 CPU backend, largest absolute difference (measured 1.4e-6;
// model/generate_webgpu_test.ts bounds the unmerged path by 1e-4).
const CPU_LOGPROB_TOL = 1e-5;

const dir = fixtureDir();
const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64], [42], [8, 8, 9]];

/** The same generation with the adapters merged, then unmerged. */
async function mergedAndUnmerged(
  model: WebGpuQwen3,
  options: GenerateOptions,
): Promise<[GenerateResult, GenerateResult]> {
  const run = (mergeAdapters: boolean) =>
    generateWebGpu(model, resolveGenerateOptions(model.config, { ...options, mergeAdapters }));
  return [await run(true), await run(false)];
}

function randomLora(config: WebGpuQwen3["config"], seed: number): Lora {
  return createLora(
    loraConfig({ r: 8, loraAlpha: 16, targetModules: "all-linear", initLoraWeights: false }),
    config,
    { seed },
  );
}

async function gpuModel(isFallbackAdapter?: boolean): Promise<WebGpuQwen3> {
  const base = (await testContext())!;
  const gpu = new GpuContext({
    ...base.gpu,
    isFallbackAdapter: isFallbackAdapter ?? base.gpu.isFallbackAdapter,
  });
  // The base weights stored apart: the counts below are what merging saves over that layout
  // (over a fused base, the default, unmerged decode fuses q|k|v and gate|up too:
  // model/qwen3_webgpu_fused_test.ts, which also checks merging over a fused base).
  return await loadModel(dir, {
    backend: "webgpu",
    gpu,
    warn: false,
    fuseProjections: false,
  }) as WebGpuQwen3;
}

/** Dispatches of one decode step: the difference of runs of 7 and 3 new tokens, over 4. */
async function perStep(model: WebGpuQwen3, options: Partial<GenerateOptions>): Promise<number> {
  const run = (maxNewTokens: number) =>
    counted(model, {
      prompts: PROMPTS,
      maxNewTokens,
      temperature: 0,
      eosTokenIds: [],
      readbackEvery: 16,
      ...options,
    });
  const [short, long] = [await run(3), await run(7)];
  strictEqual(long.result.stats.steps, 7, "a row stopped early");
  return (long.dispatches - short.dispatches) / 4;
}

/**
 * Dispatches per layer and decode step the fused groups save beyond merging: q|k|v 3 → 1, and
 * gate|up 2 → 1 (SwiGLU reads the fused output: its own dispatch on the software path, down_proj's
 * prologue on the hardware one; the fixture's 4·intermediate bytes is a storage offset).
 */
function fusedSaving(model: WebGpuQwen3): number {
  const merged = new MergedAdapterWeights(model.ctx, model);
  const fused = merged.fused;
  merged.dispose();
  return fused.reduce((n, f) => n + (f.group === "qkv" ? 2 : 1), 0);
}

/** Bytes of `model`'s base weights of `targets` in every layer. */
function baseBytes(model: WebGpuQwen3, targets: readonly string[]): number {
  let n = 0;
  for (const lw of model.layers) {
    for (const t of PROJECTIONS) {
      if (!targets.includes(t)) continue;
      const w = lw[PROJECTION_FIELD[t]] as GpuMatrix;
      n += 4 * w.rows * w.cols;
    }
  }
  return n;
}

function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    strictEqual(x.length, b[i].length);
    x.forEach((v, j) => worst = Math.max(worst, Math.abs(v - b[i][j])));
  });
  return worst;
}

Deno.test({
  name: "MergedAdapterWeights holds W + scale·B·A of every plain LoRA projection",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    const lora = randomLora(model.config, 5);
    model.setAdapters(lora);
    const atRest = model.ctx.allocatedBytes;
    const merged = new MergedAdapterWeights(model.ctx, model);
    try {
      const L = model.config.numHiddenLayers;
      strictEqual(merged.size, 7 * L);
      // Every layer's q|k|v and gate|up in one buffer each, in the per-projection copies' bytes.
      deepStrictEqual(
        merged.fused,
        Array.from({ length: L }, (_, layer) => [
          { layer, group: "qkv" },
          { layer, group: "gate_up" },
        ]).flat(),
      );
      strictEqual(merged.bytes, baseBytes(model, PROJECTIONS));
      const unfused = new MergedAdapterWeights(model.ctx, model, { fuse: false });
      strictEqual(unfused.bytes, merged.bytes);
      deepStrictEqual(unfused.fused, []);
      unfused.dispose();
      const enc = model.ctx.device.createCommandEncoder();
      merged.encode(enc, model);
      model.ctx.device.queue.submit([enc.finish()]);
      const view = merged.view(model);
      strictEqual(view.adapters, null, "every projection merged: no adapters left");
      for (const [layer, lw] of view.layers.entries()) {
        // The fused weight is the group's views, row block after row block, in one buffer.
        for (const [group, field] of [["qkv", "qkvProj"], ["gate_up", "gateUpProj"]] as const) {
          const fused = lw[field]!;
          let row = 0;
          for (const t of FUSED_GROUPS[group]) {
            const part = lw[PROJECTION_FIELD[t]] as GpuMatrix;
            strictEqual(part.chunks[0].buffer, fused.chunks[0].buffer, `${layer}.${t}`);
            strictEqual(part.chunks[0].offset ?? 0, 4 * row * fused.cols, `${layer}.${t}`);
            row += part.rows;
          }
          strictEqual(fused.rows, row);
        }
      }
      let worst = 0;
      for (const m of lora.modules) {
        const field = PROJECTION_FIELD[m.target];
        const base = model.layers[m.layer][field] as GpuMatrix;
        const got = view.layers[m.layer][field] as GpuMatrix;
        ok(got.chunks[0].buffer !== base.chunks[0].buffer);
        const n = base.rows * base.cols;
        const at = got.chunks[0].offset ?? 0;
        const [w, w2] = (await readback(model.ctx, [
          { buffer: base.chunks[0].buffer, offset: base.chunks[0].offset ?? 0, size: 4 * n },
          { buffer: got.chunks[0].buffer, offset: at, size: 4 * n },
        ])).map((b) => new Float32Array(b));
        const { a, b, r, scale } = m.experts[0];
        const [out, inF] = [m.outFeatures, m.inFeatures];
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inF; i++) {
            let [s, size] = [0, 0];
            for (let j = 0; j < r; j++) {
              s += b[o * r + j] * a[j * inF + i];
              size += Math.abs(b[o * r + j] * a[j * inF + i]);
            }
            const want = w[o * inF + i] + scale * s;
            // Relative to the terms' magnitudes (f32 rounding of each), not to a cancelled sum.
            const err = Math.abs(w2[o * inF + i] - want) /
              (Math.abs(w[o * inF + i]) + scale * size);
            worst = Math.max(worst, err);
          }
        }
      }
      ok(worst <= MERGE_TOL, `merged weights: error ${worst} > ${MERGE_TOL}`);
      console.log(`merged weights vs float64: largest relative error ${worst.toExponential(2)}`);
    } finally {
      merged.dispose();
      strictEqual(model.ctx.allocatedBytes, atRest, "merged buffers not freed");
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters: the unmerged run's tokens and log-probs, and the " +
    "CPU's, with 14 + 3 (fused q|k|v, gate|up) dispatches fewer per layer and decode step",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    const cpu = await loadModel(dir, { backend: "cpu", warn: false }) as CpuQwen3;
    try {
      const lora = randomLora(model.config, 5);
      model.setAdapters(lora);
      cpu.setAdapters(lora);
      const L = model.config.numHiddenLayers;
      // Greedy, and sampled at temperature 1.2 with rows stopping at different steps.
      const cases: GenerateOptions[] = [
        { prompts: PROMPTS, maxNewTokens: 12, temperature: 0 },
        {
          prompts: [...PROMPTS, ...PROMPTS],
          maxNewTokens: 12,
          temperature: 1.2,
          seed: 3,
          eosTokenIds: [353],
          stopTokenIds: Array.from({ length: 40 }, (_, i) => 10 + i * 9),
          readbackEvery: 4,
        },
      ];
      for (const options of cases) {
        const [on, off] = await mergedAndUnmerged(model, options);
        const ref = await generateCpu(cpu, resolveGenerateOptions(cpu.config, options));
        deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
        deepStrictEqual(on.sequences.map((s) => s.tokens), ref.sequences.map((s) => s.tokens));
        const lp = (r: GenerateResult) => r.sequences.map((s) => s.modelLogprobs);
        const errOff = maxAbsDiff(lp(on), lp(off));
        const errCpu = maxAbsDiff(lp(on), lp(ref));
        const errBase = maxAbsDiff(lp(off), lp(ref));
        ok(errOff <= MERGED_LOGPROB_TOL, `merged vs unmerged log-probs: ${errOff}`);
        ok(errCpu <= CPU_LOGPROB_TOL, `merged vs CPU log-probs: ${errCpu}`);
        console.log(
          `T=${options.temperature}: ${on.stats.generatedTokens} tokens; model log-probs merged ` +
            `vs unmerged ${errOff.toExponential(2)}, vs CPU ${
              errCpu.toExponential(2)
            } (unmerged vs CPU ` +
            `${errBase.toExponential(2)}; max abs)`,
        );
      }
      const merged = await perStep(model, { mergeAdapters: true });
      const unmerged = await perStep(model, { mergeAdapters: false });
      const fused = fusedSaving(model);
      strictEqual(fused, 3 * L);
      console.log(
        `dispatches per decode step (software path): unmerged ${unmerged}, merged ${merged} ` +
          `(${fused / L} a layer fewer than merging alone)`,
      );
      strictEqual(unmerged - merged, 2 * 7 * L + fused);
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() merges by default on a hardware adapter, not on a software one",
  ignore: noGpu,
  async fn() {
    for (const isFallbackAdapter of [false, true]) {
      const model = await gpuModel(isFallbackAdapter);
      try {
        model.setAdapters(randomLora(model.config, 7));
        const auto = await perStep(model, {});
        const unmerged = await perStep(model, { mergeAdapters: false });
        const merged = await perStep(model, { mergeAdapters: true });
        strictEqual(auto, isFallbackAdapter ? unmerged : merged, `fallback ${isFallbackAdapter}`);
        const L = model.config.numHiddenLayers;
        // q|k|v saves 2 a layer, gate|up 1, on both paths.
        const fused = 3 * L;
        strictEqual(fusedSaving(model), fused);
        strictEqual(unmerged - merged, 2 * 7 * L + fused, `fallback ${isFallbackAdapter}`);
        console.log(
          `${isFallbackAdapter ? "software" : "hardware"} path: dispatches per decode step ` +
            `unmerged ${unmerged}, merged ${merged}`,
        );
      } finally {
        releaseGenerateWorkspace(model);
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters leaves routed (HILO) modules unmerged",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      // One expert (no router) in layer 0, three routed ones in layer 1; random B.
      const hilo = createHilo(
        hiloConfig(model.config, { experts: "1-3", rank: "4", topK: [1, 2] }),
        model.config,
        { seed: 11 },
      );
      let seed = 100;
      for (const m of hilo.modules) {
        for (const e of m.experts) e.b.set(randomArray(e.b.length, seed++));
      }
      ok(hilo.modules.some((m) => m.router) && hilo.modules.some((m) => !m.router));
      model.setAdapters(hilo);
      const targets = mergeTargets(model);
      strictEqual(targets.length, hilo.modules.filter((m) => !m.router).length);
      ok(targets.every((t) => t.layer === 0));
      const options = { prompts: PROMPTS, maxNewTokens: 10, temperature: 0 };
      const [on, off] = await mergedAndUnmerged(model, options);
      deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
      const err = maxAbsDiff(
        on.sequences.map((s) => s.modelLogprobs),
        off.sequences.map((s) => s.modelLogprobs),
      );
      ok(err <= MERGED_LOGPROB_TOL, `HILO merged vs unmerged log-probs: ${err}`);
      const merged = await perStep(model, { mergeAdapters: true });
      const unmerged = await perStep(model, { mergeAdapters: false });
      strictEqual(unmerged - merged, 2 * targets.length + fusedSaving(model));
      console.log(
        `HILO (${targets.length} of ${hilo.modules.length} modules merge): log-probs ` +
          `${err.toExponential(2)}; dispatches per decode step ${unmerged} → ${merged}`,
      );
    } finally {
      releaseGenerateWorkspace(model);
      model.dispose();
    }
  },
});

Deno.test({
  name: "generateWebGpu() with mergeAdapters merges each call's adapter values, and frees the " +
    "merged weights when the call returns",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    const ctx = model.ctx;
    model.setAdapters(randomLora(model.config, 5));
    const atRest = ctx.allocatedBytes;
    const options = { prompts: PROMPTS, maxNewTokens: 8, temperature: 0 };
    const gen = (mergeAdapters: boolean) =>
      generateWebGpu(model, resolveGenerateOptions(model.config, { ...options, mergeAdapters }));
    const logprobs = (r: GenerateResult) => r.sequences.map((s) => s.modelLogprobs);
    const bytes = new MergedAdapterWeights(ctx, model);
    const mergedBytes = bytes.bytes;
    bytes.dispose();
    ctx.resetPeak();
    const first = await gen(true);
    // The merged weights exist during the call (its peak) and are freed when it returns.
    const after = ctx.allocatedBytes;
    ok(ctx.peakBytes - after >= mergedBytes, "the merged weights were not allocated in the call");
    // New values in the same GpuLora (an RL step's update): the next call merges them.
    model.adapters!.write(randomLora(model.config, 9));
    const second = await gen(true);
    strictEqual(ctx.allocatedBytes, after, "the merged weights outlived the call");
    const plain = await gen(false);
    strictEqual(ctx.allocatedBytes, after, "an unmerged call changed the workspace");
    ok(maxAbsDiff(logprobs(second), logprobs(plain)) <= MERGED_LOGPROB_TOL);
    ok(maxAbsDiff(logprobs(first), logprobs(second)) > 1e-3, "the new values changed nothing");
    await gen(true);
    releaseGenerateWorkspace(model);
    strictEqual(ctx.allocatedBytes, atRest, "releaseGenerateWorkspace left buffers");
    await gen(true);
    model.dispose();
    strictEqual(ctx.allocatedBytes, 0, "bytes still allocated after dispose()");
  },
});

Deno.test({
  name: "generateWebGpu() with LoRA on q_proj, v_proj and gate_proj: q|k|v and gate|up fused " +
    "with the base k_proj and up_proj copied in, the unmerged run's tokens and log-probs",
  ignore: noGpu,
  async fn() {
    // The hardware path (q|k|v fused with the RMSNorm in its matvec) and the software one.
    for (const isFallbackAdapter of [false, true]) {
      const model = await gpuModel(isFallbackAdapter);
      try {
        const targets = ["q_proj", "v_proj", "gate_proj"];
        const lora = createLora(
          loraConfig({ r: 4, loraAlpha: 8, targetModules: targets, initLoraWeights: false }),
          model.config,
          { seed: 21 },
        );
        model.setAdapters(lora);
        const L = model.config.numHiddenLayers;
        const align = model.ctx.device.limits.minStorageBufferOffsetAlignment;
        strictEqual(unfusableReason(model, 0, "qkv", align), null);
        strictEqual(unfusableReason(model, 1, "gate_up", align), null);
        const merged = new MergedAdapterWeights(model.ctx, model);
        strictEqual(merged.size, 3 * L);
        strictEqual(merged.fused.length, 2 * L);
        // The unadapted k_proj and up_proj are copied into their groups: their bytes too.
        strictEqual(merged.bytes, baseBytes(model, [...targets, "k_proj", "up_proj"]));
        merged.dispose();
        const options = { prompts: PROMPTS, maxNewTokens: 10, temperature: 0 };
        const [on, off] = await mergedAndUnmerged(model, options);
        deepStrictEqual(on.sequences.map((s) => s.tokens), off.sequences.map((s) => s.tokens));
        const err = maxAbsDiff(
          on.sequences.map((s) => s.modelLogprobs),
          off.sequences.map((s) => s.modelLogprobs),
        );
        ok(err <= MERGED_LOGPROB_TOL, `subset merged vs unmerged log-probs: ${err}`);
        const [m, u] = [
          await perStep(model, { mergeAdapters: true }),
          await perStep(model, { mergeAdapters: false }),
        ];
        strictEqual(u - m, 2 * targets.length * L + fusedSaving(model));
        console.log(
          `LoRA on ${targets.join(", ")} (${isFallbackAdapter ? "software" : "hardware"} ` +
            `path): log-probs ${err.toExponential(2)}; dispatches per decode step ${u} → ${m}`,
        );
      } finally {
        releaseGenerateWorkspace(model);
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "unfusableReason() refuses groups without a merged member, with a routed module, or " +
    "with misaligned blocks, and those groups merge per projection",
  ignore: noGpu,
  async fn() {
    const model = await gpuModel();
    try {
      model.setAdapters(
        createLora(
          loraConfig({ r: 4, loraAlpha: 8, targetModules: ["k_proj", "o_proj"] }),
          model.config,
          { seed: 2 },
        ),
      );
      const align = model.ctx.device.limits.minStorageBufferOffsetAlignment;
      strictEqual(unfusableReason(model, 0, "qkv", align), null);
      strictEqual(unfusableReason(model, 0, "gate_up", align), "no adapter on gate_proj, up_proj");
      // q_proj's block is 64 rows of 64 floats (16384 bytes): k_proj's offset is not a multiple
      // of 2^15.
      ok(
        unfusableReason(model, 0, "qkv", 1 << 15)!.startsWith(
          "k_proj's block would start at byte 16384, not a multiple",
        ),
      );
      const merged = new MergedAdapterWeights(model.ctx, model);
      deepStrictEqual(merged.fused.map((f) => f.group), ["qkv", "qkv"]);
      merged.dispose();
      // HILO: a routed module keeps its group unfused.
      const hilo = createHilo(
        hiloConfig(model.config, { experts: "3", rank: "4", topK: [1, 1] }),
        model.config,
        { seed: 11 },
      );
      model.setAdapters(hilo);
      ok(unfusableReason(model, 0, "qkv", align)!.startsWith("q_proj: routed (HILO) adapter"));
      const routed = new MergedAdapterWeights(model.ctx, model);
      deepStrictEqual(routed.fused, []);
      routed.dispose();
    } finally {
      model.dispose();
    }
  },
});
