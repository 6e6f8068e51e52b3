// The base weights stored fused (`WebGpuQwen3Options.fuseProjections`, default on): each layer's
// q|k|v and gate|up in one buffer with the projections' matrices views into it, no more bytes
// than separate buffers, apart where a group does not fit one block; every reader honors the
// views: generation (greedy and sampled; f32 and f16 weights; a base model, unmerged LoRA whose
// branches add into the fused outputs' columns, HILO with routed modules) gives the separate
// layout's tokens and model log-probs bit for bit, with 3 dispatches fewer per layer and decode
// step (q|k|v 3 → 1, gate|up 2 → 1) but in a group with a routed member; merged generation over a
// fused base is unchanged; LoRA gradients (backward through the views, f32 and f16) are the
// separate layout's bit for bit; dispose frees every buffer. Full fine-tuning over the views
// (gradients, GPU AdamW, the trainer backend's setParams/syncParams): trainer/gpu_adamw_test.ts.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import type { GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { modelParams } from "../trainer/params.ts";
import type { ParamTree } from "../trainer/types.ts";
import type { Lora } from "./adapter_types.ts";
import { readQwen3Config } from "./config.ts";
import { type GenerateOptions, resolveGenerateOptions } from "./generate.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "./generate_webgpu.ts";
import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
import { WebGpuQwen3, type WebGpuQwen3Options } from "./qwen3_webgpu.ts";
import { loadQwen3Weights } from "./weights.ts";
import { counted, maxAbsDiff } from "./_generate_test_utils.ts";

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
const L = config.numHiddenLayers;
const H = config.hiddenSize;
const QD = config.numAttentionHeads * config.headDim;
const KVD = config.numKeyValueHeads * config.headDim;
const PROMPTS = [[11, 200, 37], [5, 99, 143, 250, 7, 301, 64], [42], [8, 8, 9]];
// Model log-probs of generation, fused vs separate layout: the same kernels over the same rows
// (a fused matvec computes each output row as the separate one does), largest absolute difference.
const LOGPROB_TOL = 0;

function model(ctx: GpuContext, options: WebGpuQwen3Options = {}): WebGpuQwen3 {
  return new WebGpuQwen3(ctx, config, weights, options);
}

/** Dispatches of one decode step: the difference of greedy runs of 4 and 2 new tokens, over 2. */
async function perStep(m: WebGpuQwen3, options: Partial<GenerateOptions> = {}): Promise<number> {
  const run = (maxNewTokens: number) =>
    counted(m, {
      prompts: PROMPTS,
      maxNewTokens,
      temperature: 0,
      eosTokenIds: [],
      readbackEvery: 16,
      ...options,
    });
  const [short, long] = [await run(2), await run(4)];
  strictEqual(long.result.stats.steps, 4, "a row stopped early");
  return (long.dispatches - short.dispatches) / 2;
}

/** Every full-mode parameter, read back through its `param` / `paramOffset`. */
async function readParams(m: WebGpuQwen3): Promise<ParamTree> {
  const list = m.gradients("full");
  const bytes = await readback(
    m.ctx,
    list.map((p) => ({ buffer: p.param, offset: p.paramOffset, size: 4 * p.n })),
  );
  const out: ParamTree = {};
  const size = new Map<string, number>();
  for (const p of list) size.set(p.name, Math.max(size.get(p.name) ?? 0, p.offset + p.n));
  list.forEach((p, i) => {
    out[p.name] ??= new Float32Array(size.get(p.name)!);
    out[p.name].set(new Float32Array(bytes[i]), p.offset);
  });
  return out;
}

/** Frees the models' generation workspaces and buffers. */
function disposeGenerated(...models: WebGpuQwen3[]): void {
  for (const m of models) {
    releaseGenerateWorkspace(m);
    m.dispose();
  }
}

/**
 * Sets the same LoRA (r 4, alpha 8, seed 4, on `targets`) on both models, then asserts that
 * merged greedy generation gives the same tokens and model log-probs (within `LOGPROB_TOL`).
 */
async function sameMergedGeneration(
  fused: WebGpuQwen3,
  plain: WebGpuQwen3,
  targets: string | string[],
  label: string,
): Promise<void> {
  const lora = createLora(
    loraConfig({ r: 4, loraAlpha: 8, targetModules: targets, initLoraWeights: false }),
    config,
    { seed: 4 },
  );
  fused.setAdapters(lora);
  plain.setAdapters(lora);
  const g: GenerateOptions = {
    prompts: PROMPTS,
    maxNewTokens: 10,
    temperature: 0,
    mergeAdapters: true,
  };
  const [a, b] = [
    await generateWebGpu(fused, resolveGenerateOptions(config, g)),
    await generateWebGpu(plain, resolveGenerateOptions(config, g)),
  ];
  deepStrictEqual(a.sequences.map((s) => s.tokens), b.sequences.map((s) => s.tokens), label);
  const err = maxAbsDiff(a, b);
  ok(err <= LOGPROB_TOL, `${label}: log-probs differ by ${err}`);
}

const block = (w: GpuMatrix) => [w.chunks.length, w.chunks[0].offset ?? 0];

Deno.test({
  name: "WebGpuQwen3 stores q|k|v and gate|up fused as views (no extra bytes), apart where " +
    "they do not fit or fuseProjections is false, reads them back whole and frees them",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const rest = ctx.allocatedBytes;
    const fused = model(ctx);
    const fusedBytes = ctx.allocatedBytes - rest;
    const plain = model(ctx, { fuseProjections: false });
    const plainBytes = ctx.allocatedBytes - rest - fusedBytes;
    // q|k|v over a 96-row block limit: apart (gate and up are then split into row blocks).
    const small = model(ctx, { maxChunkBytes: 96 * H * 4 });
    try {
      strictEqual(fusedBytes, plainBytes, "bytes, fused vs separate");
      fused.layers.forEach((lw, l) => {
        const qkv = lw.qkvProj!;
        const gu = lw.gateUpProj!;
        ok(qkv && gu, `layer ${l}: fused`);
        deepStrictEqual([qkv.rows, qkv.cols, gu.rows, gu.cols], [
          QD + 2 * KVD,
          H,
          2 * config.intermediateSize,
          H,
        ]);
        for (
          const [w, whole, offset] of [
            [lw.qProj, qkv, 0],
            [lw.kProj, qkv, 4 * QD * H],
            [lw.vProj, qkv, 4 * (QD + KVD) * H],
            [lw.gateProj, gu, 0],
            [lw.upProj, gu, 4 * config.intermediateSize * H],
          ] as const
        ) {
          strictEqual(w.chunks[0].buffer, whole.chunks[0].buffer, `${w.name}: shares the buffer`);
          deepStrictEqual(block(w), [1, offset], w.name);
        }
        ok(lw.oProj.chunks[0].buffer !== qkv.chunks[0].buffer);
      });
      for (const m of [plain, small]) {
        for (const lw of m.layers) {
          strictEqual(lw.qkvProj, undefined);
          strictEqual(lw.gateUpProj, undefined);
          ok(lw.qProj.chunks[0].buffer !== lw.kProj.chunks[0].buffer);
          for (const w of [lw.qProj, lw.kProj, lw.gateProj]) {
            strictEqual(w.chunks[0].offset, undefined);
          }
        }
      }
      strictEqual(small.layers[0].gateProj.chunks.length, 2, "gate_proj in row blocks");
      // Every weight read back through the views equals the checkpoint's, bit for bit.
      const got = await readParams(fused);
      const want = modelParams(weights, config).tree;
      deepStrictEqual(Object.keys(got).sort(), Object.keys(want).sort());
      for (const [name, w] of Object.entries(want)) deepStrictEqual(got[name], w, name);
    } finally {
      small.dispose();
      plain.dispose();
      fused.dispose();
    }
    strictEqual(ctx.allocatedBytes, rest, "every buffer freed");
  },
});

Deno.test({
  name: "generateWebGpu() over fused base weights: the separate layout's tokens and log-probs, " +
    "3 dispatches fewer per layer and decode step (f32, f16 weights; unmerged LoRA, HILO)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const f16 = ctx.gpu.features.has("shader-f16");
    if (!f16) console.log("the adapter has no shader-f16: f16 weights not run");
    const lora = (targets: string | string[]) => () =>
      createLora(
        loraConfig({ r: 4, loraAlpha: 8, targetModules: targets, initLoraWeights: false }),
        config,
        { seed: 9 },
      );
    const cases: { name: string; options: WebGpuQwen3Options; adapters?: () => Lora }[] = [
      { name: "f32", options: {} },
      // LoRA (unmerged) on o_proj and down_proj, outside the groups.
      { name: "f32, LoRA on o/down", options: {}, adapters: lora(["o_proj", "down_proj"]) },
      // LoRA (unmerged) on every projection: the branches add into the fused outputs' columns.
      { name: "f32, LoRA all-linear", options: {}, adapters: lora("all-linear") },
      // HILO with routed and plain modules: a group with a routed member decodes per projection.
      {
        name: "f32, HILO",
        options: {},
        adapters: () => {
          const hilo = createHilo(
            hiloConfig(config, { experts: "1-3", rank: "4", topK: [1, 2] }),
            config,
            { seed: 11 },
          );
          let seed = 100;
          for (const m of hilo.modules) {
            for (const e of m.experts) e.b.set(randomArray(e.b.length, seed++));
          }
          return hilo;
        },
      },
      ...(f16 ? [{ name: "f16", options: { weightDtype: "f16" as const } }] : []),
    ];
    const generations: GenerateOptions[] = [
      // 8 new tokens: two readback chunks of the sampled run.
      { prompts: PROMPTS, maxNewTokens: 8, temperature: 0 },
      {
        prompts: [...PROMPTS, ...PROMPTS],
        maxNewTokens: 8,
        temperature: 1.2,
        seed: 3,
        eosTokenIds: [353],
        stopTokenIds: Array.from({ length: 40 }, (_, i) => 10 + i * 9),
        readbackEvery: 4,
      },
    ];
    for (const c of cases) {
      const fused = model(ctx, c.options);
      const plain = model(ctx, { ...c.options, fuseProjections: false });
      try {
        const adapters = c.adapters?.() ?? null;
        fused.setAdapters(adapters);
        plain.setAdapters(adapters);
        // q|k|v saves 2 dispatches a layer, gate|up 1, where no member's adapter is routed.
        let saved = 0;
        for (let l = 0; l < L; l++) {
          const routed = (t: string) =>
            adapters?.modules.some((m) => m.layer === l && m.target === t && m.router) ?? false;
          if (!["q_proj", "k_proj", "v_proj"].some(routed)) saved += 2;
          if (!["gate_proj", "up_proj"].some(routed)) saved += 1;
        }
        if (c.name.includes("HILO")) ok(saved > 0 && saved < 3 * L, "HILO: some groups routed");
        const mergeAdapters = adapters ? false : undefined;
        for (const g of generations) {
          const run = (m: WebGpuQwen3) =>
            generateWebGpu(m, resolveGenerateOptions(config, { ...g, mergeAdapters }));
          const [a, b] = [await run(fused), await run(plain)];
          deepStrictEqual(a.sequences.map((s) => s.tokens), b.sequences.map((s) => s.tokens));
          deepStrictEqual(
            a.sequences.map((s) => s.stopReason),
            b.sequences.map((s) => s.stopReason),
          );
          const err = maxAbsDiff(a, b);
          console.log(
            `${c.name}, T=${g.temperature}: ${a.stats.generatedTokens} tokens; model log-probs ` +
              `fused vs separate: max abs diff ${err}`,
          );
          ok(err <= LOGPROB_TOL, `${c.name}: log-probs differ by ${err}`);
        }
        const [f, p] = [
          await perStep(fused, { mergeAdapters }),
          await perStep(plain, { mergeAdapters }),
        ];
        console.log(`${c.name}: dispatches per decode step, fused ${f}, separate ${p}`);
        strictEqual(p - f, saved, `${c.name}: dispatches saved`);
      } finally {
        disposeGenerated(fused, plain);
      }
    }
  },
});

Deno.test({
  name: "generateWebGpu() with merged LoRA over a fused base: the separate base's tokens and " +
    "log-probs (all-linear, f32 and f16; q_proj and gate_proj), and a view merged apart drops " +
    "the base's groups",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const fused = model(ctx);
    const plain = model(ctx, { fuseProjections: false });
    try {
      // f16 weights merged into f16 copies (asked for: mergeAdapters true) read each base view
      // from its offset in the fused buffer.
      if (ctx.gpu.features.has("shader-f16")) {
        const fused16 = model(ctx, { weightDtype: "f16" });
        const plain16 = model(ctx, { weightDtype: "f16", fuseProjections: false });
        try {
          await sameMergedGeneration(fused16, plain16, "all-linear", "f16 merged");
        } finally {
          disposeGenerated(fused16, plain16);
        }
      } else console.log("the adapter has no shader-f16: f16 weights not run");
      for (const targets of ["all-linear", ["q_proj", "gate_proj"]]) {
        await sameMergedGeneration(fused, plain, targets, String(targets));
      }
      // Merged apart (no fused groups): the view drops the base's fused weights, whose q and
      // gate rows are not the merged ones; the unadapted k and v stay views into the base.
      const merged = new MergedAdapterWeights(ctx, fused, { fuse: false });
      try {
        const view = merged.view(fused);
        for (const [l, lw] of view.layers.entries()) {
          strictEqual(lw.qkvProj, undefined, `layer ${l}: q|k|v`);
          strictEqual(lw.gateUpProj, undefined, `layer ${l}: gate|up`);
          strictEqual(lw.kProj, fused.layers[l].kProj);
          ok(lw.qProj.chunks[0].buffer !== fused.layers[l].qkvProj!.chunks[0].buffer);
        }
      } finally {
        merged.dispose();
      }
    } finally {
      disposeGenerated(fused, plain);
    }
  },
});

Deno.test({
  name: "WebGpuQwen3.backward() of LoRA adapters over fused base views (f32, f16 weights): the " +
    "separate layout's log-probs and gradients, bit for bit",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const dtypes = ctx.gpu.features.has("shader-f16") ? ["f32", "f16"] as const : ["f32"] as const;
    const input = { inputIds: [[3, 17, 250, 99, 4, 311, 8, 42], [12, 7, 300, 64, 5, 6, 7, 8]] };
    const dLogprobs = Array.from({ length: 14 }, (_, i) => ((i % 5) - 2) / 7);
    const lora = createLora(
      loraConfig({ r: 4, loraAlpha: 8, targetModules: "all-linear", initLoraWeights: false }),
      config,
      { seed: 21 },
    );
    for (const weightDtype of dtypes) {
      const fused = model(ctx, { weightDtype });
      const plain = model(ctx, { weightDtype, fuseProjections: false });
      try {
        ok(fused.layers[0].qkvProj && !plain.layers[0].qkvProj);
        const out: Awaited<ReturnType<WebGpuQwen3["backward"]>>[] = [];
        for (const m of [fused, plain]) {
          m.setAdapters(lora);
          out.push(await m.backward(input, { mode: "adapters", dLogprobs }));
        }
        deepStrictEqual(out[0].logprobs, out[1].logprobs, `${weightDtype}: log-probs`);
        strictEqual(out[0].grads.size, out[1].grads.size);
        ok(out[0].grads.size > 0);
        for (const [name, g] of out[1].grads) {
          deepStrictEqual(out[0].grads.get(name), g, `${weightDtype}: ${name}`);
        }
      } finally {
        fused.dispose();
        plain.dispose();
      }
    }
  },
});
