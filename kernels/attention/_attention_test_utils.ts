// Shared by the attention tests: the forward check of attention_test.ts, attention_flash_test.ts
// and attention_split_test.ts (random q, k, v — f32 or a packed-f16 cache —, a NaN-poisoned output
// and scratch, one encodeAttention dispatch compared with the float64 reference), and the open pass of the tests of
// what the launchers refuse (with attention_backward_test.ts).
import type { GpuContext } from "../../gpu/context.ts";
import {
  assertClose,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { type AttentionKernel, attentionScratchSize, encodeAttention } from "./attention.ts";
import { attentionRef, type AttentionShape } from "./attention_ref.ts";
import { packF16, roundF16 } from "../_kv_f16_test_utils.ts";

/** Options of {@linkcode checkAttention}. */
export interface CheckAttentionOptions {
  /** Forced kernel; default the launcher's choice. */
  kernel?: AttentionKernel;
  /** Pass a poisoned scratch of `attentionScratchSize(shape)` floats; default false. */
  scratch?: boolean;
  /** Seeds of q, k and v; default `[tq + d, s + 2, s + 3]`. */
  seeds?: readonly [number, number, number];
  /**
   * k and v as a packed-f16 KV cache (`kvF16`): rounded to f16 on the host, and the reference
   * computed from those f16 values; default f32.
   */
  kvF16?: boolean;
  /** q, k and v themselves (f32), in place of the random ones of `seeds`. */
  data?: { q: Float32Array; k: Float32Array; v: Float32Array };
}

/**
 * Runs encodeAttention on `shape` and `mask` and asserts the output within `tol` (relative) of
 * attentionRef under the label `what`; returns the relative error. q and k are uniform in
 * [-2, 2), v in the default range of randomArray, unless `options.data` gives them.
 */
export async function checkAttention(
  shape: AttentionShape,
  mask: Uint32Array,
  what: string,
  tol: number,
  options: CheckAttentionOptions = {},
): Promise<number> {
  const ctx = (await testContext())!;
  const { b, tq, s, hq, hkv, d } = shape;
  const [sq, sk, sv] = options.seeds ?? [tq + d, s + 2, s + 3];
  const q = options.data?.q ?? randomArray(b * tq * hq * d, sq, -2, 2);
  let k = options.data?.k ?? randomArray(b * s * hkv * d, sk, -2, 2);
  let v = options.data?.v ?? randomArray(b * s * hkv * d, sv);
  if (options.kvF16) [k, v] = [roundF16(k), roundF16(v)];
  const kv = (x: Float32Array) => options.kvF16 ? packF16(x) : x;
  const o = poisoned(ctx, q.length, "o");
  const scratch = options.scratch
    ? poisoned(ctx, attentionScratchSize(shape), "scratch")
    : undefined;
  const bufs = [
    ctx.upload(q, "q"),
    ctx.upload(kv(k), "k"),
    ctx.upload(kv(v), "v"),
    ctx.upload(mask, "m"),
  ];
  const enc = recordPass(ctx, (pass) =>
    encodeAttention(ctx, pass, {
      ...shape,
      q: bufs[0],
      k: bufs[1],
      v: bufs[2],
      mask: bufs[3],
      o,
      ...(scratch ? { scratch } : {}),
      ...(options.kernel ? { kernel: options.kernel } : {}),
      kvF16: options.kvF16,
    }));
  const got = await readFloats(ctx, o, q.length, enc);
  const err = assertClose(got, attentionRef(q, k, v, { ...shape, mask }), tol, what);
  for (const buf of [...bufs, o, ...(scratch ? [scratch] : [])]) ctx.release(buf);
  return err;
}

/** The shape of the refusal tests: one 16 × 16 head of size `d` (one the flash kernels refuse). */
export const wideHead = (d: number) => ({ b: 1, tq: 16, s: 16, hq: 1, hkv: 1, d });

/**
 * Runs `record` in an open compute pass with a buffer of `bytes` bound to every operand (`buf`)
 * — for the tests of what the launchers refuse — then ends the pass and releases the buffer.
 */
export async function inPass(
  bytes: number,
  record: (ctx: GpuContext, pass: GPUComputePassEncoder, buf: GPUBuffer) => void,
): Promise<void> {
  const ctx = (await testContext())!;
  const buf = ctx.createBuffer(bytes, "any");
  const pass = ctx.device.createCommandEncoder().beginComputePass();
  try {
    record(ctx, pass, buf);
  } finally {
    pass.end();
    ctx.release(buf);
  }
}
