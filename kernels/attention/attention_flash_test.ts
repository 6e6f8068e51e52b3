// The tiled (flash) attention kernel, forced through `kernel: "flash"`, against the float64
// reference on lengths off its blocks (16 rows, 8 keys), GQA groups of 1, 2, 3 and 5 query heads
// per kv head, padding, a partly filled cache and a row that sees no key; outputs poisoned. Also
// the "rows" kernel on the same shapes, so both paths of encodeAttention are covered. Tolerance:
// f32 online softmax and sums of up to a few hundred terms, 1e-5 relative (as attention_test.ts).
import { checkAttention, inPass, wideHead } from "./_attention_test_utils.ts";
import assert from "node:assert/strict";
import { noGpu } from "../../gpu/test_utils.ts";
import { type AttentionKernel, encodeAttention, pickAttentionKernel } from "./attention.ts";
import type { AttentionShape } from "./attention_ref.ts";

const TOL = 1e-5;

async function check(
  shape: AttentionShape,
  mask: Uint32Array,
  kernel: AttentionKernel,
  what: string,
): Promise<void> {
  const err = await checkAttention(shape, mask, what, TOL, { kernel });
  console.log(`${what}: rel err ${err.toExponential(2)}`);
}

Deno.test("pickAttentionKernel() takes the tiled kernel for prefill-sized query blocks", () => {
  assert.equal(pickAttentionKernel({ tq: 64, hq: 16, hkv: 8, d: 128 }), "flash");
  assert.equal(pickAttentionKernel({ tq: 8, hq: 16, hkv: 8, d: 128 }), "flash");
  assert.equal(pickAttentionKernel({ tq: 7, hq: 16, hkv: 8, d: 128 }), "rows");
  assert.equal(pickAttentionKernel({ tq: 1, hq: 16, hkv: 8, d: 128 }), "rows");
  assert.equal(pickAttentionKernel({ tq: 64, hq: 2, hkv: 2, d: 256 }), "rows");
  assert.equal(pickAttentionKernel({ tq: 64, hq: 2, hkv: 2, d: 18 }), "rows");
});

Deno.test({
  name: "encodeAttention() flash and rows match the reference for causal GQA with padding",
  ignore: noGpu,
  async fn() {
    // [b, t, hq, hkv, d]: one token; a group of 3 (rows across query boundaries); group of 5
    // (Qwen3-14B's 40/8); lengths 17, 37, 70 off the 8-key and 16-row blocks; d 4 .. 128 (the
    // flash kernel's DJ, the vec4 slices a thread uses, 1, 3 and 8).
    for (
      const [b, t, hq, hkv, d] of [
        [1, 1, 1, 1, 4],
        [2, 17, 6, 2, 8],
        [1, 37, 5, 1, 12],
        [2, 70, 4, 2, 16],
        [1, 21, 2, 1, 36],
        [1, 33, 2, 1, 128],
      ]
    ) {
      const mask = new Uint32Array(b * t).fill(1);
      mask[0] = t > 1 ? 0 : 1; // row 0 of sequence 0 sees no key: o = 0 there
      if (b > 1) mask.fill(0, 2 * t - Math.floor(t / 3)); // pad the end of sequence 1
      for (const kernel of ["flash", "rows"] as const) {
        await check(
          { b, tq: t, s: t, hq, hkv, d },
          mask,
          kernel,
          `${kernel} b${b} t${t} ${hq}/${hkv}x${d}`,
        );
      }
    }
  },
});

Deno.test({
  name: "encodeAttention() flash attends a query block to a partly filled cache",
  ignore: noGpu,
  async fn() {
    // 19 new queries at positions 40..58 of a 100-slot cache whose first 3 slots (5 in the
    // second sequence: the mask's batch stride is s, not kvLen) are padding; then kvLen 50, short
    // of the last queries' causal window (they see slots 0..49 only).
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    mask.fill(0, s, s + 5);
    for (const kvLen of [59, 50]) {
      await check(
        { b, tq: 19, s, kvLen, qStart: 40, hq: 4, hkv: 2, d: 32 },
        mask,
        "flash",
        `flash cache kvLen ${kvLen}`,
      );
    }
  },
});

Deno.test({
  name: "encodeAttention() refuses flash for a head size it cannot hold",
  ignore: noGpu,
  async fn() {
    await inPass(4 * 16 * 132, (ctx, pass, buf) => {
      const [q, k, v, mask, o] = Array<GPUBuffer>(5).fill(buf);
      assert.throws(
        () => encodeAttention(ctx, pass, { q, k, v, mask, o, ...wideHead(132), kernel: "flash" }),
        /need a head size <= 128 and a multiple of 4: current value is d=132/,
      );
    });
  },
});

Deno.test({
  name: "encodeAttention() flash reads a packed-f16 KV cache as the f16 values (kvF16)",
  ignore: noGpu,
  async fn() {
    // The reference over the same f16 values (widened exactly): 1e-5 as f32.
    for (const [b, t, hq, hkv, d] of [[2, 17, 6, 2, 8], [1, 37, 5, 1, 12], [1, 33, 2, 1, 128]]) {
      const mask = new Uint32Array(b * t).fill(1);
      mask[0] = 0;
      const what = `flash f16 cache b${b} t${t} ${hq}/${hkv}x${d}`;
      const err = await checkAttention({ b, tq: t, s: t, hq, hkv, d }, mask, what, TOL, {
        kernel: "flash",
        kvF16: true,
      });
      console.log(`${what}: rel err ${err.toExponential(2)}`);
    }
  },
});
