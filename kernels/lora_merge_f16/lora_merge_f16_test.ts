// encodeLoraMergeF16 against the float64 reference, both kernels: odd shapes (pairs: n·k odd, a
// half-used last word; k not a multiple of 2 or 4, words straddling rows; blocked: k a multiple
// of 8, n not of 4), rank 1 to 16, negative scales, an output bound at an offset into a larger
// buffer (the merged q|k|v layout), poisoned outputs; and the overflow status: elements beyond
// the f16 range counted, tagged and clamped, (65504, 65520) clamped to 65504 without a count.
//
// Tolerance: every merged element must be an f16 neighbour (either rounding: WGSL lets
// pack2x16float round either way) of the float64 value within the f32 rounding of the r-term sum
// and the add, (r + 2) · 2^-24 · (|w| + |alpha| Σ|b·a|). The fraction equal to the nearest-even
// f16 of the float64 value is printed (lavapipe, 2026-12-04: 99.9% to 100%).
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { readback } from "../../gpu/readback.ts";
import { noGpu, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { assertF16Rounded, unpackF16 } from "../_kv_f16_test_utils.ts";
import { encodeLoraMergeF16, LORA_MERGE_F16_STATUS_WORDS } from "./lora_merge_f16.ts";
import { loraMergeF16Ref } from "./lora_merge_f16_ref.ts";

/** f16 bits of `values` (rounded to nearest even), padded to whole words. */
function f16Words(values: ArrayLike<number>): Uint32Array<ArrayBuffer> {
  const half = new Float16Array(values.length + (values.length % 2));
  half.set(Array.from(values));
  return new Uint32Array(half.buffer);
}

const POISON = 0x7fc0_7fc0; // two f16 NaNs (and an f32 NaN)

type Kernel = "pairs" | "blocked";
const kernelsFor = (k: number): Kernel[] => k % 8 === 0 ? ["pairs", "blocked"] : ["pairs"];

Deno.test({
  name: "encodeLoraMergeF16() writes an f16 rounding of the f64 merge on odd shapes",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const cases = [
      { n: 7, k: 5, r: 3, alpha: 0.75 },
      { n: 33, k: 130, r: 8, alpha: -2 },
      { n: 1, k: 1, r: 1, alpha: 1 },
      { n: 64, k: 97, r: 16, alpha: 0.5 },
      { n: 13, k: 64, r: 8, alpha: 1.25 },
      { n: 4, k: 8, r: 1, alpha: -1 },
      { n: 66, k: 200, r: 16, alpha: 0.5 },
    ];
    for (const [c, { n, k, r, alpha }] of cases.entries()) {
      const w = Float64Array.from(Float16Array.from(randomArray(n * k, 10 + c, -2, 2)));
      const a = randomArray(r * k, 20 + c, -1, 1);
      const b = randomArray(n * r, 30 + c, -1, 1);
      const words = Math.ceil((n * k) / 2);
      const ref = loraMergeF16Ref(w, a, b, { n, k, r, alpha });
      const slack = ref.magnitude.map((m) => (r + 2) * 2 ** -24 * m);
      const wb = ctx.createBuffer(4 * words, "w");
      ctx.device.queue.writeBuffer(wb, 0, f16Words(w));
      const [ab, bb] = [ctx.upload(a, "a"), ctx.upload(b, "b")];
      for (const kernel of kernelsFor(k)) {
        const what = `${kernel} [${n}, ${k}] r${r}`;
        // The output 256 bytes into a poisoned buffer: nothing before or after may change.
        const lead = 64;
        const outBuf = ctx.createBuffer(4 * (lead + words + 3), "out");
        ctx.device.queue.writeBuffer(outBuf, 0, new Uint32Array(lead + words + 3).fill(POISON));
        const status = ctx.createBuffer(4 * LORA_MERGE_F16_STATUS_WORDS, "status");
        const out = { buffer: outBuf, offset: 4 * lead, size: 4 * words };
        const args = { w: wb, a: ab, b: bb, out, status, n, k, r, alpha, kernel };
        const enc = recordPass(ctx, (pass) => encodeLoraMergeF16(ctx, pass, args));
        const [got, st] = await readback(ctx, [
          { buffer: outBuf, offset: 0, size: 4 * (lead + words + 3) },
          { buffer: status, offset: 0, size: 4 * LORA_MERGE_F16_STATUS_WORDS },
        ], enc);
        const all = new Uint32Array(got);
        ok(all.subarray(0, lead).every((x) => x === POISON), `${what}: words before the output`);
        ok(all.subarray(lead + words).every((x) => x === POISON), `${what}: words after it`);
        const merged = unpackF16(all.slice(lead, lead + words)).subarray(0, n * k);
        const nearest = assertF16Rounded(merged, ref.merged, slack, what);
        if ((n * k) % 2 === 1) {
          strictEqual(unpackF16(all.slice(lead + words - 1, lead + words))[1], 0);
        }
        deepStrictEqual(Array.from(new Uint32Array(st)), [0, 0], `${what}: status`);
        console.log(
          `lora_merge_f16 ${what}: ${(100 * nearest).toFixed(1)}% equal to the nearest-even ` +
            `f16 of the f64 value`,
        );
        for (const buf of [outBuf, status]) ctx.release(buf);
      }
      for (const buf of [wb, ab, bb]) ctx.release(buf);
    }
  },
});

Deno.test({
  name: "encodeLoraMergeF16() counts and tags values beyond the f16 range and clamps them",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [n, k, r] = [2, 8, 1];
    // Row 0 near the top of the range, row 1 zero; b = 1: each element adds a[i].
    const w = [65000, 65000, -65000, 1, 0, 0, 0, 0, ...Array(8).fill(0)];
    const a = Float32Array.of(600, 510, -700, 0.5, 0, 0, 0, 0);
    const b = Float32Array.of(1, 1);
    const ref = loraMergeF16Ref(w, a, b, { n, k, r });
    strictEqual(ref.overflow, 2);
    const wb = ctx.createBuffer(4 * 8, "w");
    ctx.device.queue.writeBuffer(wb, 0, f16Words(w));
    const [ab, bb] = [ctx.upload(a, "a"), ctx.upload(b, "b")];
    for (const kernel of kernelsFor(k)) {
      const out = ctx.createBuffer(4 * 8, "out");
      const out2 = ctx.createBuffer(4 * 8, "out2");
      const status = ctx.createBuffer(4 * LORA_MERGE_F16_STATUS_WORDS, "status");
      const args = { w: wb, a: ab, b: bb, status, n, k, r, kernel };
      const enc = recordPass(ctx, (pass) => {
        encodeLoraMergeF16(ctx, pass, { ...args, out, tag: 5 });
        // A merge without overflow and a larger tag leaves the status alone.
        encodeLoraMergeF16(ctx, pass, { ...args, out: out2, tag: 9, alpha: 0 });
      });
      const [got, st] = await readback(ctx, [
        { buffer: out, offset: 0, size: 32 },
        { buffer: status, offset: 0, size: 8 },
      ], enc);
      deepStrictEqual(
        Array.from(unpackF16(got)),
        [65504, 65504, -65504, 1.5, 0, 0, 0, 0, 600, 510, -700, 0.5, 0, 0, 0, 0],
        kernel,
      );
      deepStrictEqual(Array.from(new Uint32Array(st)), [2, 6], kernel);
      for (const buf of [out, out2, status]) ctx.release(buf);
    }
    throws(
      () =>
        recordPass(ctx, (pass) =>
          encodeLoraMergeF16(ctx, pass, {
            w: wb,
            a: ab,
            b: bb,
            out: wb,
            status: wb,
            n: 2,
            k: 4,
            r: 1,
            kernel: "blocked",
          })),
      /blocked kernel: k must be a multiple of 8: current value is 4/,
    );
    for (const buf of [wb, ab, bb]) ctx.release(buf);
  },
});
