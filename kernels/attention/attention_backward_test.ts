import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { encodeAttentionBackward } from "./attention_backward.ts";
import { attentionBackwardRef } from "./attention_backward_ref.ts";
import type { AttentionShape } from "./attention_ref.ts";

// f32 online softmax, sums of up to a few hundred terms and the cancellation in dP − Σ P·dP:
// 1e-5 relative, as the forward.
const TOL = 1e-5;

async function check(shape: AttentionShape, mask: Uint32Array, what: string): Promise<void> {
  const ctx = (await testContext())!;
  const { b, tq, s, hq, hkv, d } = shape;
  const q = randomArray(b * tq * hq * d, 1, -2, 2);
  const k = randomArray(b * s * hkv * d, 2, -2, 2);
  const v = randomArray(b * s * hkv * d, 3);
  const dO = randomArray(q.length, 4);
  const dq = poisoned(ctx, q.length, "dq");
  const dk = poisoned(ctx, k.length, "dk");
  const dv = poisoned(ctx, v.length, "dv");
  const enc = recordPass(ctx, (pass) =>
    encodeAttentionBackward(ctx, pass, {
      ...shape,
      q: ctx.upload(q, "q"),
      k: ctx.upload(k, "k"),
      v: ctx.upload(v, "v"),
      mask: ctx.upload(mask, "mask"),
      dO: ctx.upload(dO, "dO"),
      dq,
      dk,
      dv,
      stats: poisoned(ctx, b * tq * hq * 2, "stats"),
    }));
  const [gq, gk, gv] = await readback(ctx, [
    { buffer: dq, offset: 0, size: q.length * 4 },
    { buffer: dk, offset: 0, size: k.length * 4 },
    { buffer: dv, offset: 0, size: v.length * 4 },
  ], enc);
  const want = attentionBackwardRef(dO, q, k, v, { ...shape, mask });
  const eq = assertClose(new Float32Array(gq), want.dq, TOL, `${what} dq`);
  const ek = assertClose(new Float32Array(gk), want.dk, TOL, `${what} dk`);
  const ev = assertClose(new Float32Array(gv), want.dv, TOL, `${what} dv`);
  console.log(
    `${what}: dq ${eq.toExponential(2)}, dk ${ek.toExponential(2)}, dv ${ev.toExponential(2)}`,
  );
}

Deno.test({
  name: "encodeAttentionBackward() matches the reference for causal GQA with right padding",
  ignore: noGpu,
  async fn() {
    for (
      const [b, t, hq, hkv, d] of [[1, 1, 1, 1, 1], [2, 16, 4, 2, 16], [2, 70, 6, 2, 24], [
        1,
        67,
        2,
        1,
        80,
      ]]
    ) {
      const mask = new Uint32Array(b * t).fill(1);
      if (b > 1) mask.fill(0, 2 * t - Math.floor(t / 3)); // pad the end of row 1
      await check(
        { b, tq: t, s: t, hq, hkv, d },
        mask,
        `attention backward b${b} t${t} ${hq}/${hkv}x${d}`,
      );
    }
  },
});

Deno.test({
  name: "encodeAttentionBackward() handles a query block over a partly filled, left-padded cache",
  ignore: noGpu,
  async fn() {
    // 3 queries at positions 40..42 of a 100-slot cache whose first 3 slots are padding: slots
    // 43.. and the padding get zero gradients, and row 1's query 0 sees no key at all.
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    mask.fill(0, s, s + 41);
    await check(
      { b, tq: 3, s, kvLen: 43, qStart: 40, hq: 4, hkv: 2, d: 32, scale: 0.3 },
      mask,
      "attention backward cache",
    );
  },
});
