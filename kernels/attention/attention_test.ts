import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeAttention } from "./attention.ts";
import { attentionRef, type AttentionShape } from "./attention_ref.ts";

// f32 online softmax and sums of up to a few hundred terms: 1e-5 relative.
const TOL = 1e-5;

async function check(shape: AttentionShape, mask: Uint32Array, what: string): Promise<void> {
  const ctx = (await testContext())!;
  const { b, tq, s, hq, hkv, d } = shape;
  const q = randomArray(b * tq * hq * d, 1, -2, 2);
  const k = randomArray(b * s * hkv * d, 2, -2, 2);
  const v = randomArray(b * s * hkv * d, 3);
  const o = poisoned(ctx, q.length, "o");
  const enc = recordPass(ctx, (pass) =>
    encodeAttention(ctx, pass, {
      ...shape,
      q: ctx.upload(q, "q"),
      k: ctx.upload(k, "k"),
      v: ctx.upload(v, "v"),
      mask: ctx.upload(mask, "mask"),
      o,
    }));
  const got = await readFloats(ctx, o, q.length, enc);
  const err = assertClose(got, attentionRef(q, k, v, { ...shape, mask }), TOL, what);
  console.log(`${what}: rel err ${err.toExponential(2)}`);
}

Deno.test({
  name: "encodeAttention() matches the reference for causal GQA with right padding",
  ignore: noGpu,
  async fn() {
    for (
      const [b, t, hq, hkv, d] of [[1, 1, 1, 1, 1], [2, 16, 4, 2, 16], [2, 70, 6, 2, 24], [
        1,
        130,
        2,
        1,
        128,
      ]]
    ) {
      const mask = new Uint32Array(b * t).fill(1);
      if (b > 1) mask.fill(0, 2 * t - Math.floor(t / 3)); // pad the end of row 1
      await check({ b, tq: t, s: t, hq, hkv, d }, mask, `attention b${b} t${t} ${hq}/${hkv}x${d}`);
    }
  },
});

Deno.test({
  name: "encodeAttention() attends a query block to a partly filled cache",
  ignore: noGpu,
  async fn() {
    // 3 new queries at positions 40..42 of a 100-slot cache whose first 3 slots are padding.
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    await check(
      { b, tq: 3, s, kvLen: 43, qStart: 40, hq: 4, hkv: 4, d: 32 },
      mask,
      "attention cache",
    );
  },
});
