// The decoder layer's decode step with the RMSNorms and the SwiGLU folded into the following
// matvecs (`fusePrologues: true`, the default on hardware adapters) gives the same layer output, activations and KV cache as with them as
// their own dispatches (`fusePrologues: false`), bit for bit (tolerance 0: the prologues repeat
// rms_norm.wgsl's and swiglu.wgsl's arithmetic), without adapters, with LoRA on every projection
// and with HILO (routers read the written x1 / x2 / act), for 1, 3 and 9 rows (two row blocks of
// the matvec), with weights split into row blocks (only the first block's dispatch writes x), and
// with f16 weights; and records 3 dispatches fewer. In a prefill, the tiles route (training's)
// records the same ops as without the option, the matvec route (≤ 32 rows) fuses them.
import { deepStrictEqual, notDeepStrictEqual } from "node:assert/strict";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, randomArray, recordPass, testContext } from "../gpu/test_utils.ts";
import type { Lora } from "./adapter_types.ts";
import type { Qwen3Config } from "./config.ts";
import { encodeDecoderLayer } from "./decoder_layer_webgpu.ts";
import { initQwen3Weights } from "./init.ts";
import { WebGpuQwen3, type WebGpuQwen3Options } from "./qwen3_webgpu.ts";

const CONFIG: Qwen3Config = {
  vocabSize: 32,
  hiddenSize: 48,
  intermediateSize: 80,
  numHiddenLayers: 1,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 12,
  rmsNormEps: 1e-6,
  ropeTheta: 1e4,
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: true,
  eosTokenIds: [0],
  bosTokenId: null,
  padTokenId: null,
};

/** `pass`, calling `onDispatch` at each dispatch it records. */
function counting(pass: GPUComputePassEncoder, onDispatch: () => void): GPUComputePassEncoder {
  return new Proxy(pass, {
    get(target, prop) {
      if (prop === "dispatchWorkgroups") {
        return (x: number, y?: number, z?: number) => {
          onDispatch();
          target.dispatchWorkgroups(x, y, z);
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** Layer output, x1, x2, act, k and v caches after one decode step of `rows` sequences. */
async function decodeStep(
  model: WebGpuQwen3,
  rows: number,
  fusePrologues: boolean,
): Promise<{ outputs: Uint32Array[]; dispatches: number }> {
  const { ctx, config: c } = model;
  const [slots, cursor] = [16, 5];
  const [qd, kvd, h, inter] = [
    c.numAttentionHeads * c.headDim,
    c.numKeyValueHeads * c.headDim,
    c.hiddenSize,
    c.intermediateSize,
  ];
  const f = (n: number, label: string) => ctx.createBuffer(4 * n, label);
  const acts = {
    ...{ x1: f(rows * h, "x1"), x2: f(rows * h, "x2"), qRaw: f(rows * qd, "qRaw") },
    ...{ kRaw: f(rows * kvd, "kRaw"), q: f(rows * qd, "q"), k: f(rows * kvd, "k") },
    ...{ v: f(rows * kvd, "v"), att: f(rows * qd, "att"), gate: f(rows * inter, "gate") },
    ...{ up: f(rows * inter, "up"), act: f(rows * inter, "act") },
    loraScratch: f(rows * (model.adapters?.maxRank ?? 1), "lora"),
  };
  const mask = Uint32Array.from({ length: rows * slots }, (_, i) => (i % slots < cursor ? 1 : 0));
  const kvCache = {
    k: ctx.upload(randomArray(rows * slots * kvd, 1), "k cache"),
    v: ctx.upload(randomArray(rows * slots * kvd, 2), "v cache"),
    mask: ctx.upload(mask, "mask"),
    ctrl: ctx.upload(Uint32Array.of(cursor, 0), "ctrl"),
    slots,
    width: kvd,
    row0: 0,
    kvLen: 8,
  };
  const h0 = ctx.upload(randomArray(rows * h, 3, -2, 2), "h");
  const positions = Uint32Array.from({ length: rows }, (_, i) => cursor + i);
  let dispatches = 0;
  const enc = recordPass(ctx, (pass) => {
    encodeDecoderLayer(counting(pass, () => dispatches++), model, {
      layer: 0,
      hIn: h0,
      acts,
      rows,
      tokens: 1,
      positions: ctx.upload(positions, "positions"),
      kvCache,
      matvec: true,
      fusePrologues,
    });
  });
  const read = [h0, acts.x1, acts.x2, acts.act, kvCache.k, kvCache.v];
  const bytes = await readback(
    ctx,
    read.map((buffer) => ({ buffer, offset: 0, size: buffer.size })),
    enc,
  );
  for (const b of [...Object.values(acts), ...read, kvCache.mask, kvCache.ctrl]) {
    if (b instanceof GPUBuffer) ctx.release(b);
  }
  return { outputs: bytes.map((b) => new Uint32Array(b)), dispatches };
}

/** Adapters on every projection with non-zero B (so they change the output). */
function adapters(kind: "lora" | "hilo"): Lora {
  const lora = kind === "lora"
    ? createLora(
      loraConfig({ r: 4, targetModules: "all-linear", initLoraWeights: false }),
      CONFIG,
      { seed: 3 },
    )
    : createHilo(hiloConfig(CONFIG, { experts: "uniform:3", rank: "uniform:4" }), CONFIG, {
      seed: 4,
    });
  let s = 100;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.2, 0.2));
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

Deno.test({
  name: "encodeDecoderLayer() decode step: fused RMSNorm / SwiGLU prologues equal the separate " +
    "dispatches bit for bit (no adapters, LoRA, HILO; row blocks; f16 weights)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const f16 = ctx.gpu.features.has("shader-f16");
    const variants: { name: string; options: WebGpuQwen3Options; lora?: "lora" | "hilo" }[] = [
      { name: "base", options: {} },
      { name: "LoRA", options: {}, lora: "lora" },
      { name: "HILO", options: {}, lora: "hilo" },
      // 16 rows of 48 floats a block: q_proj in 3 dispatches, gate_proj in 5.
      { name: "row blocks + HILO", options: { maxChunkBytes: 16 * 48 * 4 }, lora: "hilo" },
    ];
    if (f16) {
      variants.push({ name: "f16 weights + LoRA", options: { weightDtype: "f16" }, lora: "lora" });
    } else console.log("the adapter has no shader-f16: f16 weights not run");
    const weights = initQwen3Weights(CONFIG, { seed: 1, std: 0.2 });
    for (const v of variants) {
      const model = new WebGpuQwen3(ctx, CONFIG, weights, v.options);
      try {
        if (v.lora) model.setAdapters(adapters(v.lora));
        for (const rows of [1, 3, 9]) {
          const want = await decodeStep(model, rows, false);
          const got = await decodeStep(model, rows, true);
          const names = ["layer output", "x1", "x2", "act", "k cache", "v cache"];
          names.forEach((name, i) => {
            deepStrictEqual(got.outputs[i], want.outputs[i], `${v.name}, ${rows} rows: ${name}`);
          });
          // Not vacuous: the layer changed its input.
          const h0 = new Uint32Array(randomArray(rows * CONFIG.hiddenSize, 3, -2, 2).buffer);
          notDeepStrictEqual(got.outputs[0], h0, "the layer output is its input");
          deepStrictEqual(want.dispatches - got.dispatches, 3, `${v.name}: dispatches saved`);
          console.log(
            `${v.name}, ${rows} rows: bit-identical; dispatches ${want.dispatches} -> ` +
              `${got.dispatches}`,
          );
        }
      } finally {
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "encodeDecoderLayer() prefill with fusePrologues: the tiles route records the separate " +
    "ops (same output), the matvec route fuses them (same output)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, CONFIG, initQwen3Weights(CONFIG, { seed: 2, std: 0.2 }));
    try {
      model.setAdapters(adapters("lora"));
      const [rows, tokens, h, inter] = [2, 5, CONFIG.hiddenSize, CONFIG.intermediateSize];
      const n = rows * tokens;
      const [qd, kvd] = [48, 24];
      const run = async (matvec: boolean, fusePrologues: boolean) => {
        const f = (k: number, label: string) => ctx.createBuffer(4 * n * k, label);
        const acts = {
          ...{ x1: f(h, "x1"), x2: f(h, "x2"), qRaw: f(qd, "qRaw"), kRaw: f(kvd, "kRaw") },
          ...{ q: f(qd, "q"), k: f(kvd, "k"), v: f(kvd, "v"), att: f(qd, "att") },
          ...{ gate: f(inter, "gate"), up: f(inter, "up"), act: f(inter, "act") },
          loraScratch: f(model.adapters!.maxRank, "lora"),
        };
        const hIn = ctx.upload(randomArray(n * h, 7, -2, 2), "h");
        const positions = Uint32Array.from({ length: n }, (_, i) => i % tokens);
        let dispatches = 0;
        const enc = recordPass(ctx, (pass) => {
          encodeDecoderLayer(counting(pass, () => dispatches++), model, {
            layer: 0,
            hIn,
            acts,
            rows,
            tokens,
            positions: ctx.upload(positions, "positions"),
            mask: ctx.upload(new Uint32Array(n).fill(1), "mask"),
            matvec,
            fusePrologues,
          });
        });
        const read = [hIn, acts.x1, acts.x2, acts.act];
        const bytes = await readback(
          ctx,
          read.map((buffer) => ({ buffer, offset: 0, size: buffer.size })),
          enc,
        );
        return { outputs: bytes.map((b) => new Uint32Array(b)), dispatches };
      };
      for (const matvec of [false, true]) {
        const want = await run(matvec, false);
        const got = await run(matvec, true);
        ["layer output", "x1", "x2", "act"].forEach((name, i) => {
          deepStrictEqual(got.outputs[i], want.outputs[i], `matvec ${matvec}: ${name}`);
        });
        deepStrictEqual(want.dispatches - got.dispatches, matvec ? 3 : 0, `matvec ${matvec}`);
      }
    } finally {
      model.dispose();
    }
  },
});
