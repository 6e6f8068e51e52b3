// The decoder layer's decode step gives the same output and KV cache whether the KV-cache append
// is folded into the q/k norm + RoPE dispatch (devices that bind 12 storage buffers) or runs as
// its own kv_write dispatch (a device limited to WebGPU's default of 8, simulated here).
import { deepStrictEqual } from "node:assert/strict";
import type { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, randomArray, recordPass, testContext } from "../gpu/test_utils.ts";
import { qkNormRopeKvFits } from "../kernels/qk_norm_rope/qk_norm_rope_kv.ts";
import { initQwen3Weights } from "./init.ts";
import type { Qwen3Config } from "./config.ts";
import { encodeDecoderLayer, type GpuModelWeights } from "./decoder_layer_webgpu.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";

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

/** `ctx` as seen by code asking the device for `maxStorageBuffersPerShaderStage`: `limit`. */
function limitedContext(ctx: GpuContext, limit: number): GpuContext {
  const bind = <T extends object>(target: T, over: Record<string | symbol, unknown>) =>
    new Proxy(target, {
      get(t, prop) {
        if (prop in over) return over[prop];
        const v = Reflect.get(t, prop, t);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
  const limits = bind(ctx.device.limits, { maxStorageBuffersPerShaderStage: limit });
  return bind(ctx, { device: bind(ctx.device, { limits }) });
}

async function decodeStep(model: GpuModelWeights): Promise<ArrayBuffer[]> {
  const { ctx, config: c } = model;
  const [rows, slots, cursor] = [2, 16, 5];
  const [qd, kvd, h, inter] = [
    c.numAttentionHeads * c.headDim,
    c.numKeyValueHeads * c.headDim,
    c.hiddenSize,
    c.intermediateSize,
  ];
  const f = (n: number, label: string) => ctx.createBuffer(4 * n, label);
  const x1 = f(rows * h, "x1");
  const acts = {
    ...{ x1, x2: x1, qRaw: f(rows * qd, "qRaw"), kRaw: f(rows * kvd, "kRaw") },
    ...{ q: f(rows * qd, "q"), k: f(rows * kvd, "k"), v: f(rows * kvd, "v") },
    ...{ att: f(rows * qd, "att"), gate: f(rows * inter, "gate"), up: f(rows * inter, "up") },
    act: f(rows * inter, "act"),
  };
  // The slots before the cursor hold earlier keys and values; the rest is empty.
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
  const h0 = ctx.upload(randomArray(rows * h, 3), "h");
  const enc = recordPass(ctx, (pass) =>
    encodeDecoderLayer(pass, model, {
      layer: 0,
      hIn: h0,
      acts,
      rows,
      tokens: 1,
      positions: ctx.upload(Uint32Array.of(cursor, cursor + 3), "positions"),
      kvCache,
      matvec: true,
    }));
  return await readback(
    ctx,
    [h0, kvCache.k, kvCache.v, kvCache.mask].map((buffer) => ({
      buffer,
      offset: 0,
      size: buffer.size,
    })),
    enc,
  );
}

Deno.test({
  name: "encodeDecoderLayer() decodes identically with and without the KV append folded in",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, CONFIG, initQwen3Weights(CONFIG, { seed: 1, std: 0.2 }));
    try {
      const limited = limitedContext(ctx, 8);
      if (qkNormRopeKvFits(limited)) throw new Error("the limited context should not fit");
      const unfused: GpuModelWeights = {
        ctx: limited,
        config: model.config,
        embedTokens: model.embedTokens,
        lmHead: model.lmHead,
        norm: model.norm,
        layers: model.layers,
        ropeTable: model.ropeTable,
        adapters: model.adapters,
      };
      const want = await decodeStep(unfused);
      const got = await decodeStep(model);
      // Not vacuous: the step wrote slot 5 of both rows (and the values there are the new ones).
      deepStrictEqual([...new Uint32Array(got[3])].filter((m) => m === 1).length, 2 * 6, "mask");
      const v0 = randomArray(2 * 16 * 24, 2);
      if (new Float32Array(got[2])[5 * 24] === v0[5 * 24]) throw new Error("v not appended");
      const names = ["layer output", "k cache", "v cache", "mask"];
      names.forEach((name, i) => {
        deepStrictEqual(new Uint32Array(got[i]), new Uint32Array(want[i]), name);
      });
      console.log(
        `decode step: fused KV append ${
          qkNormRopeKvFits(ctx) ? "taken" : "not available"
        }; output, caches and mask bit-identical`,
      );
    } finally {
      model.dispose();
    }
  },
});
