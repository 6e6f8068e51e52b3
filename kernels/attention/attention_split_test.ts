// The split-KV (flash-decoding) attention kernel, forced through `kernel: "split"`, against the
// float64 reference: decode steps (one query at the last filled slot) over short and long caches,
// chunk counts 1 .. 8, GQA groups 1, 2 and 4, head sizes 1 .. 200 (the grouped partial sums for
// d a multiple of 4, one workgroup per query head otherwise), left padding, a masked slot
// in each chunk, a row whose keys are all masked and a query block over a partly filled cache;
// outputs and scratch poisoned. Tolerance: f32 online softmax and sums of up to a thousand terms,
// 1e-5 relative (as attention_test.ts).
import { checkAttention, inPass } from "./_attention_test_utils.ts";
import assert from "node:assert/strict";
import { noGpu } from "../../gpu/test_utils.ts";
import {
  attentionScratchSize,
  attentionSplit,
  encodeAttention,
  pickAttentionKernel,
} from "./attention.ts";
import type { AttentionShape } from "./attention_ref.ts";

const TOL = 1e-5;

async function check(shape: AttentionShape, mask: Uint32Array, what: string): Promise<void> {
  const err = await checkAttention(shape, mask, what, TOL, { kernel: "split", scratch: true });
  const { chunks } = attentionSplit(shape);
  console.log(`${what} (${chunks} chunks): rel err ${err.toExponential(2)}`);
}

Deno.test("pickAttentionKernel() splits the keys of a decode step over a long cache", () => {
  const heads = { tq: 1, hq: 16, hkv: 8, d: 128 };
  assert.equal(pickAttentionKernel({ ...heads, b: 1, kvLen: 1024 }), "split");
  assert.equal(pickAttentionKernel({ ...heads, b: 8, kvLen: 512 }), "split");
  assert.equal(pickAttentionKernel({ ...heads, b: 1, s: 256 }), "split");
  assert.equal(pickAttentionKernel({ ...heads, b: 1, kvLen: 128 }), "rows");
  assert.equal(pickAttentionKernel({ ...heads, b: 32, kvLen: 4096 }), "rows");
  assert.equal(pickAttentionKernel({ ...heads, b: 16, d: 130, kvLen: 4096 }), "rows");
  assert.equal(pickAttentionKernel({ ...heads, b: 32, kvLen: 4097 }), "split"); // > 4096 keys
  assert.equal(pickAttentionKernel({ ...heads, kvLen: 4096 }), "rows"); // no batch: no split
  assert.equal(pickAttentionKernel({ ...heads, tq: 2, b: 1, kvLen: 4096 }), "rows");
  // Grouped (a workgroup per kv head): 8 a row; per query head (d 130): 16 a row.
  assert.deepEqual(attentionSplit({ ...heads, b: 1, kvLen: 1000 }), { chunk: 128, chunks: 8 });
  assert.deepEqual(attentionSplit({ ...heads, b: 8, kvLen: 1024 }), { chunk: 256, chunks: 4 });
  assert.deepEqual(attentionSplit({ ...heads, b: 32, kvLen: 1024 }), { chunk: 1024, chunks: 1 });
  assert.deepEqual(attentionSplit({ ...heads, b: 64, kvLen: 10000 }), { chunk: 3392, chunks: 3 });
  assert.deepEqual(attentionSplit({ ...heads, d: 130, b: 8, kvLen: 1024 }), {
    chunk: 512,
    chunks: 2,
  });
  // The scratch for up to 8 rows covers each smaller batch (fewer rows, more chunks).
  const most = attentionScratchSize({ ...heads, b: 8, kvLen: 1024 });
  for (let b = 1; b <= 8; b++) {
    for (const kvLen of [64, 300, 1024]) {
      const { chunks } = attentionSplit({ ...heads, b, kvLen });
      assert.ok(b * 16 * chunks * 130 <= most, `b ${b}, kvLen ${kvLen}`);
    }
  }
});

Deno.test({
  name: "encodeAttention() split matches the reference for decode steps over a cache",
  ignore: noGpu,
  async fn() {
    // [b, s, kvLen, hq, hkv, d]: short (one chunk) and long caches, ragged last chunks.
    const shapes = [
      [1, 64, 64, 2, 1, 8],
      [2, 300, 257, 4, 2, 12],
      [1, 1000, 999, 4, 1, 64],
      [3, 512, 448, 2, 2, 128],
      [1, 200, 200, 3, 1, 1],
      [2, 160, 150, 2, 1, 200],
      [16, 4200, 4200, 16, 16, 4], // 256 workgroups: 2 chunks for the 4096-key cap
    ];
    for (const [b, s, kvLen, hq, hkv, d] of shapes) {
      const mask = new Uint32Array(b * s).fill(1);
      mask.fill(0, 0, 5); // left padding of row 0
      for (let j = 70; j < s; j += 128) mask[j] = 0; // a masked slot in each chunk
      // Row 1's first 130 slots are padding: its first chunk (128 keys where the cache has more
      // than one chunk) sees no key, so the merge must take its max over all the chunks.
      if (b > 1) mask.fill(0, s, s + 130);
      if (b > 2) mask.fill(0, 2 * s, 3 * s); // row 2 sees no key: o = 0
      await check(
        { b, tq: 1, s, kvLen, qStart: kvLen - 1, hq, hkv, d },
        mask,
        `split b${b} s${s} kv${kvLen} ${hq}/${hkv}x${d}`,
      );
    }
    // Blocks of 3 queries over a 300-slot cache: at positions 40..42 (causality leaves the
    // later chunks empty) and at 297..299.
    const mask = new Uint32Array(2 * 300).fill(1);
    mask.fill(0, 0, 3);
    for (const qStart of [40, 297]) {
      await check(
        { b: 2, tq: 3, s: 300, kvLen: 300, qStart, hq: 4, hkv: 2, d: 32 },
        mask,
        `split tq3 at ${qStart}`,
      );
    }
  },
});

Deno.test({
  name: "encodeAttention() refuses split without a large enough scratch",
  ignore: noGpu,
  async fn() {
    await inPass(4 * 2 * 256 * 16, (ctx, pass, buf) => {
      const [q, k, v, mask, o] = Array<GPUBuffer>(5).fill(buf);
      const args = { q, k, v, mask, o, b: 1, tq: 1, s: 256, hq: 2, hkv: 1, d: 16 } as const;
      const small = ctx.createBuffer(64, "small");
      try {
        assert.throws(
          () => encodeAttention(ctx, pass, { ...args, kernel: "split" }),
          /need "scratch" of at least 72 floats .* current value is undefined/,
        );
        assert.throws(
          () => encodeAttention(ctx, pass, { ...args, kernel: "split", scratch: small }),
          /"scratch" must hold at least 72 elements/,
        );
      } finally {
        ctx.release(small);
      }
    });
  },
});

Deno.test({
  name: "encodeAttention() split reads a packed-f16 KV cache as the f16 values (kvF16)",
  ignore: noGpu,
  async fn() {
    // [b, s, kvLen, hq, hkv, d]: grouped partial sums (d % 4 == 0) and one workgroup per query
    // head (d 10, 6); the reference over the same f16 values: 1e-5 as f32.
    const shapes = [
      [2, 300, 257, 4, 2, 12],
      [3, 512, 448, 2, 2, 128],
      [2, 160, 150, 2, 1, 10],
      [1, 200, 199, 3, 1, 6],
    ];
    for (const [b, s, kvLen, hq, hkv, d] of shapes) {
      const mask = new Uint32Array(b * s).fill(1);
      mask.fill(0, 0, 5);
      for (let j = 70; j < s; j += 128) mask[j] = 0;
      if (b > 2) mask.fill(0, 2 * s, 3 * s);
      const shape = { b, tq: 1, s, kvLen, qStart: kvLen - 1, hq, hkv, d };
      const what = `split f16 cache b${b} s${s} kv${kvLen} ${hq}/${hkv}x${d}`;
      const err = await checkAttention(shape, mask, what, TOL, {
        kernel: "split",
        scratch: true,
        kvF16: true,
      });
      console.log(
        `${what} (${attentionSplit(shape).chunks} chunks): rel err ${err.toExponential(2)}`,
      );
    }
  },
});
