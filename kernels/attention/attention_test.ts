import { throws } from "node:assert/strict";
import { checkAttention, inPass } from "./_attention_test_utils.ts";
import { noGpu, randomArray } from "../../gpu/test_utils.ts";
import { encodeAttention } from "./attention.ts";
import type { AttentionShape } from "./attention_ref.ts";

// f32 online softmax and sums of up to a few hundred terms: 1e-5 relative.
const TOL = 1e-5;

async function check(shape: AttentionShape, mask: Uint32Array, what: string): Promise<void> {
  const err = await checkAttention(shape, mask, what, TOL, { seeds: [1, 2, 3] });
  console.log(`${what}: rel err ${err.toExponential(2)}`);
}

Deno.test({
  name: "encodeAttention() matches the reference for causal GQA with right padding",
  ignore: noGpu,
  async fn() {
    // d 200: a head past the flash kernel's 128 (this kernel is the fallback up to 256), whose
    // outputs d >= 128 are each thread's third and fourth accumulators.
    const shapes = [[1, 1, 1, 1, 1], [2, 16, 4, 2, 16], [2, 70, 6, 2, 24], [1, 130, 2, 1, 128], [
      1,
      9,
      2,
      1,
      200,
    ]];
    for (const [b, t, hq, hkv, d] of shapes) {
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
    // 3 new queries at positions 40..42 of a 100-slot cache whose first 3 slots (5 in the
    // second sequence: the mask's batch stride is s, not kvLen) are padding; then kvLen 41, short
    // of the last queries' causal window (they see slots 0..40 only).
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    mask.fill(0, s, s + 5);
    for (const kvLen of [43, 41]) {
      await check(
        { b, tq: 3, s, kvLen, qStart: 40, hq: 4, hkv: 4, d: 32 },
        mask,
        `attention cache kvLen ${kvLen}`,
      );
    }
  },
});

Deno.test({
  name: "encodeAttention() rows reads a packed-f16 KV cache as the f16 values (kvF16)",
  ignore: noGpu,
  async fn() {
    // The reference runs over the same f16 values (widened exactly): 1e-5 as f32.
    const shapes: [AttentionShape, string][] = [
      [{ b: 2, tq: 1, s: 70, kvLen: 64, qStart: 63, hq: 6, hkv: 2, d: 2 }, "decode d2"],
      [{ b: 3, tq: 1, s: 37, kvLen: 37, qStart: 36, hq: 4, hkv: 4, d: 30 }, "decode d30"],
      [{ b: 2, tq: 3, s: 100, kvLen: 43, qStart: 40, hq: 4, hkv: 2, d: 128 }, "block d128"],
    ];
    for (const [shape, name] of shapes) {
      const mask = new Uint32Array(shape.b * shape.s).fill(1);
      mask.fill(0, 0, 3); // left padding of row 0
      const what = `rows f16 cache ${name}`;
      const err = await checkAttention(shape, mask, what, TOL, { kernel: "rows", kvF16: true });
      console.log(`${what}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeAttention() rows takes each block's max over all 64 scores (scores far apart)",
  ignore: noGpu,
  async fn() {
    // The max only shifts the exponentials, so scores within a few units never tell a partial
    // max from the true one. One decode query over 48 slots (one block), d 4 (scale 0.5), two
    // heads on one kv head. Head 0 scores key 40 (thread 40, the block's second half) at least 109
    // above every other key (|score| <= 10.25): exp(110) overflows f32 unless the shift is that
    // score. Head 1 scores every key in -1000 - 0.48828125·j, exactly in f32 (exp(score)
    // underflows f32 without the shift), so the weights spread over several keys.
    const [s, d] = [48, 4];
    const k = randomArray(s * d, 21);
    for (let j = 0; j < s; j++) k[j * d + 1] = 32 + j / 64;
    k[40 * d] = 12;
    const q = Float32Array.from([20, 0, 0.25, -0.25, 0, -62.5, 0, 0]);
    const data = { q, k, v: randomArray(s * d, 22) };
    const shape = { b: 1, tq: 1, s, qStart: s - 1, hq: 2, hkv: 1, d };
    const what = "rows far scores";
    const err = await checkAttention(shape, new Uint32Array(s).fill(1), what, TOL, {
      kernel: "rows",
      data,
    });
    console.log(`${what}: rel err ${err.toExponential(2)}`);
  },
});

Deno.test({
  name: "encodeAttention() refuses kvF16 with an odd head size or a cache of too few words",
  ignore: noGpu,
  async fn() {
    await inPass(4 * 2 * 64 * 4, (ctx, pass, buf) => {
      const [q, mask, o] = Array<GPUBuffer>(3).fill(buf);
      const shape = { b: 1, tq: 1, s: 64, hq: 2, hkv: 1, kvF16: true } as const;
      const kv = (words: number) => ctx.createBuffer(4 * words, "kv");
      const [k, small] = [kv(64 * 4 / 2), kv(64 * 4 / 2 - 1)];
      try {
        encodeAttention(ctx, pass, { ...shape, q, k, v: k, mask, o, d: 4 }); // fits
        throws(
          () => encodeAttention(ctx, pass, { ...shape, q, k, v: k, mask, o, d: 3 }),
          /f16 KV cache: head size d must be even .* current value is 3/,
        );
        throws(
          () => encodeAttention(ctx, pass, { ...shape, q, k, v: small, mask, o, d: 4 }),
          /"v" must hold at least 128 elements/,
        );
      } finally {
        ctx.release(k);
        ctx.release(small);
      }
    });
  },
});
