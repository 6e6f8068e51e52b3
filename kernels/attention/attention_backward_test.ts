// The attention backward, both kernels forced ("rows": one workgroup per query or key slot;
// "flash": the tiled pair), against the float64 reference on lengths off the tiled kernel's
// blocks (16 rows or slots, 8 keys or rows), GQA groups of 1, 2, 3 and 4, head sizes 1 .. 128,
// right padding, a partly filled left-padded cache and a query that sees no key; outputs poisoned.
import assert from "node:assert/strict";
import { inPass, wideHead } from "./_attention_test_utils.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import {
  type AttentionBackwardKernel,
  encodeAttentionBackward,
  pickAttentionBackwardKernel,
} from "./attention_backward.ts";
import { attentionBackwardRef } from "./attention_backward_ref.ts";
import type { AttentionShape } from "./attention_ref.ts";

// f32 online softmax, sums of up to a few hundred terms and the cancellation in dP − Σ P·dP:
// 1e-5 relative, as the forward.
const TOL = 1e-5;

/** Inputs of {@linkcode check}; random in [-2, 2) (q, k) and [0, 1) (v, dO) by default. */
interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dO: Float32Array;
}

async function check(
  shape: AttentionShape,
  mask: Uint32Array,
  kernel: AttentionBackwardKernel,
  what: string,
  inputs?: Inputs,
): Promise<Float32Array[]> {
  const ctx = (await testContext())!;
  const { b, tq, s, hq, hkv, d } = shape;
  const q = inputs?.q ?? randomArray(b * tq * hq * d, 1, -2, 2);
  const k = inputs?.k ?? randomArray(b * s * hkv * d, 2, -2, 2);
  const v = inputs?.v ?? randomArray(b * s * hkv * d, 3);
  const dO = inputs?.dO ?? randomArray(q.length, 4);
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
      kernel,
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
  for (const buf of [dq, dk, dv]) ctx.release(buf);
  return [gq, gk, gv].map((x) => new Float32Array(x));
}

Deno.test("pickAttentionBackwardKernel() takes the tiled kernels when the head size fits", () => {
  for (const d of [4, 12, 64, 128]) assert.equal(pickAttentionBackwardKernel({ d }), "flash");
  for (const d of [1, 18, 132, 256]) assert.equal(pickAttentionBackwardKernel({ d }), "rows");
});

Deno.test({
  name: "encodeAttentionBackward() rows and flash match the reference for causal GQA with padding",
  ignore: noGpu,
  async fn() {
    // [b, t, hq, hkv, d]: one token; lengths 17, 37, 67, 70 off the blocks; groups 1 .. 4.
    const shapes = [
      [1, 1, 1, 1, 4],
      [2, 17, 4, 1, 8],
      [2, 16, 4, 2, 16],
      [1, 37, 6, 2, 12],
      [2, 70, 6, 2, 24],
      [1, 67, 2, 1, 80],
      [1, 19, 4, 4, 64],
      [1, 21, 2, 1, 128],
    ];
    for (const [b, t, hq, hkv, d] of shapes) {
      const mask = new Uint32Array(b * t).fill(1);
      mask[0] = t > 1 ? 0 : 1; // row 0 of sequence 0 sees no key
      if (t > 4) mask[Math.floor(t / 2)] = 0; // a masked slot mid-sequence
      if (b > 1) mask.fill(0, 2 * t - Math.floor(t / 3)); // pad the end of row 1
      for (const kernel of ["rows", "flash"] as const) {
        await check(
          { b, tq: t, s: t, hq, hkv, d },
          mask,
          kernel,
          `attention backward ${kernel} b${b} t${t} ${hq}/${hkv}x${d}`,
        );
      }
    }
    // The rows kernel alone for head sizes the tiled one cannot hold (200: each thread's four
    // accumulators, d = t + 64c for c < 4).
    for (const d of [1, 18, 200]) {
      await check(
        { b: 1, tq: 9, s: 9, hq: 2, hkv: 1, d },
        new Uint32Array(9).fill(1),
        "rows",
        `attention backward rows b1 t9 2/1x${d}`,
      );
    }
  },
});

Deno.test({
  name: "encodeAttentionBackward() handles a query block over a partly filled, left-padded cache",
  ignore: noGpu,
  async fn() {
    // Queries at positions 40.. of a 100-slot cache whose first 3 slots are padding: slots past
    // kvLen and the padding get zero gradients, and row 1's query 0 sees no key at all.
    const [b, s] = [2, 100];
    const mask = new Uint32Array(b * s).fill(1);
    mask.fill(0, 0, 3);
    mask.fill(0, s, s + 41);
    for (const kernel of ["rows", "flash"] as const) {
      await check(
        { b, tq: 3, s, kvLen: 43, qStart: 40, hq: 4, hkv: 2, d: 32, scale: 0.3 },
        mask,
        kernel,
        `attention backward ${kernel} cache tq3`,
      );
      // kvLen 59 ends at the last query's position; 50 cuts the last queries' causal window.
      for (const kvLen of [59, 50]) {
        await check(
          { b, tq: 19, s, kvLen, qStart: 40, hq: 4, hkv: 1, d: 16 },
          mask,
          kernel,
          `attention backward ${kernel} cache tq19 kvLen ${kvLen}`,
        );
      }
    }
  },
});

Deno.test({
  name: "encodeAttentionBackward() flash is deterministic and refuses a head size it cannot hold",
  ignore: noGpu,
  async fn() {
    const shape = { b: 1, tq: 33, s: 33, hq: 4, hkv: 2, d: 16 };
    const mask = new Uint32Array(33).fill(1);
    const a = await check(shape, mask, "flash", "attention backward flash run 1");
    const c = await check(shape, mask, "flash", "attention backward flash run 2");
    for (let x = 0; x < 3; x++) assert.deepEqual(a[x], c[x]);
    await inPass(4 * 16 * 132 * 2, (ctx, pass, buf) => {
      const [q, k, v, m, dO, dq, dk, dv, stats] = Array<GPUBuffer>(9).fill(buf);
      const args = { q, k, v, mask: m, dO, dq, dk, dv, stats, ...wideHead(132) };
      assert.throws(
        () => encodeAttentionBackward(ctx, pass, { ...args, kernel: "flash" }),
        /need a head size <= 128 and a multiple of 4: current value is d=132/,
      );
    });
  },
});

// Keys that share large channels (real models' keys have outlier channels common to every
// position): the tiled kernel's one-pass dq, scale·(Σ e·dP·k − δ·Σ e·k)/l, subtracts two sums
// that grow with the keys' common part while dq does not (Σ P·(dP − δ) = 0 cancels it); the
// two-pass "rows" kernel cancels per key instead, in dP − δ. Both stay within 1e-5, and the tiled
// dq is no less accurate (measured on llvmpipe: channels 20 larger give dq 3.6e-6 tiled vs 4.3e-6
// two-pass; 100 larger 1.7e-5 vs 2.1e-5; values 20 larger, keys offset too, cost both alike,
// 9.5e-5 vs 7.7e-5: f32's limit there, not the one-pass form's).
Deno.test({
  name: "encodeAttentionBackward() flash is as accurate as rows on keys with large shared channels",
  ignore: noGpu,
  async fn() {
    const shape = { b: 1, tq: 96, s: 96, hq: 4, hkv: 2, d: 64 };
    const { tq, s, hq, hkv, d } = shape;
    const mask = new Uint32Array(s).fill(1);
    const inputs = {
      q: randomArray(tq * hq * d, 11, -1, 1),
      // Every third channel of every key is 20 larger.
      k: randomArray(s * hkv * d, 12, -1, 1).map((x, i) => (i % d) % 3 ? x : x + 20),
      v: randomArray(s * hkv * d, 13, -1, 1),
      dO: randomArray(tq * hq * d, 14),
    };
    const want = attentionBackwardRef(inputs.dO, inputs.q, inputs.k, inputs.v, { ...shape, mask });
    const errors: Record<string, number> = {};
    for (const kernel of ["rows", "flash"] as const) {
      const [dq] = await check(shape, mask, kernel, `shared key channels, ${kernel}`, inputs);
      errors[kernel] = assertClose(dq, want.dq, TOL, `${kernel} dq`);
    }
    assert.ok(
      errors.flash <= 1.5 * errors.rows,
      `tiled dq error ${errors.flash} exceeds 1.5x the two-pass kernel's ${errors.rows}`,
    );
  },
});
