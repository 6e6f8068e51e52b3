// The forward check shared by attention_test.ts, attention_flash_test.ts and
// attention_split_test.ts: random q, k, v, a NaN-poisoned output (and scratch), one encodeAttention
// dispatch compared with the float64 reference.
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

/** Options of {@linkcode checkAttention}. */
export interface CheckAttentionOptions {
  /** Forced kernel; default the launcher's choice. */
  kernel?: AttentionKernel;
  /** Pass a poisoned scratch of `attentionScratchSize(shape)` floats; default false. */
  scratch?: boolean;
  /** Seeds of q, k and v; default `[tq + d, s + 2, s + 3]`. */
  seeds?: readonly [number, number, number];
}

/**
 * Runs encodeAttention on `shape` and `mask` and asserts the output within `tol` (relative) of
 * attentionRef under the label `what`; returns the relative error. q and k are uniform in
 * [-2, 2), v in the default range of randomArray.
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
  const q = randomArray(b * tq * hq * d, sq, -2, 2);
  const k = randomArray(b * s * hkv * d, sk, -2, 2);
  const v = randomArray(b * s * hkv * d, sv);
  const o = poisoned(ctx, q.length, "o");
  const scratch = options.scratch
    ? poisoned(ctx, attentionScratchSize(shape), "scratch")
    : undefined;
  const bufs = [ctx.upload(q, "q"), ctx.upload(k, "k"), ctx.upload(v, "v"), ctx.upload(mask, "m")];
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
    }));
  const got = await readFloats(ctx, o, q.length, enc);
  const err = assertClose(got, attentionRef(q, k, v, { ...shape, mask }), tol, what);
  for (const buf of [...bufs, o, ...(scratch ? [scratch] : [])]) ctx.release(buf);
  return err;
}
