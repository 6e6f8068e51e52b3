// Test helpers shared by the decoder layer's WebGPU tests (decoder_layer_qk_test.ts,
// decoder_layer_fusion_test.ts): a tiny config and one recorded decode step.
import { readback } from "../gpu/readback.ts";
import { randomArray, recordPass } from "../gpu/test_utils.ts";
import type { Qwen3Config } from "./config.ts";
import { encodeDecoderLayer, type GpuModelWeights } from "./decoder_layer_webgpu.ts";

/** A one-layer Qwen3 small enough for llvmpipe: 4 query heads, 2 KV heads of 12. */
export const TINY_CONFIG: Qwen3Config = {
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
export function counting(
  pass: GPUComputePassEncoder,
  onDispatch: () => void,
): GPUComputePassEncoder {
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

/** What {@linkcode decodeStep} reads back, in this order. */
export const DECODE_OUTPUTS = ["layer output", "x1", "x2", "act", "k cache", "v cache", "mask"];

/** Slots of the decode step's KV cache, and the cursor (slots before it hold earlier tokens). */
export const [DECODE_SLOTS, DECODE_CURSOR] = [16, 5];

/**
 * One decode step of layer 0 for `rows` sequences (`h` = randomArray(rows · hidden, 3, -2, 2),
 * token i at position cursor + i, caches of random earlier keys (seed 1) and values (seed 2)):
 * the bytes of {@linkcode DECODE_OUTPUTS} and the dispatches recorded.
 */
export async function decodeStep(
  model: GpuModelWeights,
  rows: number,
  fusePrologues?: boolean,
): Promise<{ outputs: Uint32Array[]; dispatches: number }> {
  const { ctx, config: c } = model;
  const [slots, cursor] = [DECODE_SLOTS, DECODE_CURSOR];
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
  const read = [h0, acts.x1, acts.x2, acts.act, kvCache.k, kvCache.v, kvCache.mask];
  const bytes = await readback(
    ctx,
    read.map((buffer) => ({ buffer, offset: 0, size: buffer.size })),
    enc,
  );
  for (const b of [...Object.values(acts), ...read, kvCache.ctrl]) {
    if (b instanceof GPUBuffer) ctx.release(b);
  }
  return { outputs: bytes.map((b) => new Uint32Array(b)), dispatches };
}
