// The attention backward on keys that share large channels (real models' keys have outlier
// channels common to every position). The tiled kernel's one-pass
// dq, scale·(Σ e·dP·k − δ·Σ e·k)/l, subtracts two sums that grow with the keys' common part while
// dq does not (Σ P·(dP − δ) = 0 cancels it); the two-pass "rows" kernel cancels per key instead,
// in dP − δ. Both forced, against the float64 reference, outputs poisoned: both stay within 1e-5,
// and the tiled dq is no less accurate than the two-pass one (measured on llvmpipe: channels 20
// larger give dq 3.6e-6 tiled vs 4.3e-6 two-pass; 100 larger 1.7e-5 vs 2.1e-5; values 20 larger
// (keys offset too) cost both kernels alike, 9.5e-5 vs 7.7e-5, and with keys' channels 20 larger and values 2
// larger the two-pass kernel reaches 5.4e-5: f32's limit there, not the one-pass form's).
import assert from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { type AttentionBackwardKernel, encodeAttentionBackward } from "./attention_backward.ts";
import { attentionBackwardRef } from "./attention_backward_ref.ts";

// As attention_backward_test.ts: 1e-5 relative to the largest gradient.
const TOL = 1e-5;

Deno.test({
  name: "encodeAttentionBackward() flash is as accurate as rows on keys with large shared channels",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const shape = { b: 1, tq: 96, s: 96, hq: 4, hkv: 2, d: 64 };
    const { b, tq, s, hq, hkv, d } = shape;
    const mask = new Uint32Array(b * s).fill(1);
    const q = randomArray(b * tq * hq * d, 11, -1, 1);
    // Every third channel of every key is 20 larger.
    const k = randomArray(b * s * hkv * d, 12, -1, 1).map((x, i) => (i % d) % 3 ? x : x + 20);
    const v = randomArray(b * s * hkv * d, 13, -1, 1);
    const dO = randomArray(q.length, 14);
    const want = attentionBackwardRef(dO, q, k, v, { ...shape, mask });
    const errors: Record<string, number> = {};
    for (const kernel of ["rows", "flash"] as AttentionBackwardKernel[]) {
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
      errors[kernel] = assertClose(new Float32Array(gq), want.dq, TOL, `${kernel} dq`);
      const ek = assertClose(new Float32Array(gk), want.dk, TOL, `${kernel} dk`);
      const ev = assertClose(new Float32Array(gv), want.dv, TOL, `${kernel} dv`);
      console.log(
        `${kernel}: dq ${errors[kernel].toExponential(2)}, dk ${ek.toExponential(2)}, ` +
          `dv ${ev.toExponential(2)}`,
      );
      for (const buf of [dq, dk, dv]) ctx.release(buf);
    }
    assert.ok(
      errors.flash <= 1.5 * errors.rows,
      `tiled dq error ${errors.flash} exceeds 1.5x the two-pass kernel's ${errors.rows}`,
    );
  },
});
