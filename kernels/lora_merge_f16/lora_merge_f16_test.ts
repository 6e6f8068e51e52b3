// encodeLoraMergeF16 against the float64 reference: odd shapes (n·k odd: a half-used last word;
// k not a multiple of 2 or 4: words straddling rows), rank 1 to 16, negative scales, an output
// bound at an offset into a larger buffer (the merged q|k|v layout), poisoned outputs; and the
// overflow status: elements beyond the f16 range counted, tagged and clamped, (65504, 65520)
// clamped to 65504 without a count.
//
// Tolerance: every merged element must be an f16 neighbour (either rounding: WGSL lets
// pack2x16float round either way) of the float64 value within the f32 rounding of the r-term sum
// and the add, (r + 2) · 2^-24 · (|w| + |alpha| Σ|b·a|). The fraction equal to the nearest-even
// f16 of the float64 value is printed (lavapipe, 2026-12-04: see the test's log).
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
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
    ];
    for (const [c, { n, k, r, alpha }] of cases.entries()) {
      const w = Float64Array.from(Float16Array.from(randomArray(n * k, 10 + c, -2, 2)));
      const a = randomArray(r * k, 20 + c, -1, 1);
      const b = randomArray(n * r, 30 + c, -1, 1);
      const words = Math.ceil((n * k) / 2);
      // The output 256 bytes into a poisoned buffer: nothing before or after may change.
      const lead = 64;
      const outBuf = ctx.createBuffer(4 * (lead + words + 3), "out");
      ctx.device.queue.writeBuffer(outBuf, 0, new Uint32Array(lead + words + 3).fill(POISON));
      const wb = ctx.createBuffer(4 * words, "w");
      ctx.device.queue.writeBuffer(wb, 0, f16Words(w));
      const [ab, bb] = [ctx.upload(a, "a"), ctx.upload(b, "b")];
      const status = ctx.createBuffer(4 * LORA_MERGE_F16_STATUS_WORDS, "status");
      const out = { buffer: outBuf, offset: 4 * lead, size: 4 * words };
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeLoraMergeF16(ctx, pass, { w: wb, a: ab, b: bb, out, status, n, k, r, alpha }),
      );
      const [got, st] = await readback(ctx, [
        { buffer: outBuf, offset: 0, size: 4 * (lead + words + 3) },
        { buffer: status, offset: 0, size: 4 * LORA_MERGE_F16_STATUS_WORDS },
      ], enc);
      const all = new Uint32Array(got);
      ok(all.subarray(0, lead).every((x) => x === POISON), `case ${c}: words before the output`);
      ok(all.subarray(lead + words).every((x) => x === POISON), `case ${c}: words after it`);
      const merged = unpackF16(all.slice(lead, lead + words)).subarray(0, n * k);
      const ref = loraMergeF16Ref(w, a, b, { n, k, r, alpha });
      const slack = ref.magnitude.map((m) => (r + 2) * 2 ** -24 * m);
      const nearest = assertF16Rounded(merged, ref.merged, slack, `case ${c} [${n}, ${k}] r${r}`);
      if ((n * k) % 2 === 1) {
        strictEqual(unpackF16(all.slice(lead + words - 1, lead + words))[1], 0);
      }
      deepStrictEqual(Array.from(new Uint32Array(st)), [0, 0], `case ${c}: status`);
      console.log(
        `lora_merge_f16 [${n}, ${k}] r${r}: ${(100 * nearest).toFixed(1)}% equal to the ` +
          `nearest-even f16 of the f64 value`,
      );
      for (const buf of [outBuf, wb, ab, bb, status]) ctx.release(buf);
    }
  },
});

Deno.test({
  name: "encodeLoraMergeF16() counts and tags values beyond the f16 range and clamps them",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [n, k, r] = [2, 4, 1];
    // Row 0 near the top of the range, row 1 zero; b = 1: each element adds a[i].
    const w = [65000, 65000, -65000, 1, 0, 0, 0, 0];
    const a = Float32Array.of(600, 510, -700, 0.5);
    const b = Float32Array.of(1, 1);
    const ref = loraMergeF16Ref(w, a, b, { n, k, r });
    strictEqual(ref.overflow, 2);
    const wb = ctx.createBuffer(4 * 4, "w");
    ctx.device.queue.writeBuffer(wb, 0, f16Words(w));
    const [ab, bb] = [ctx.upload(a, "a"), ctx.upload(b, "b")];
    const out = ctx.createBuffer(4 * 4, "out");
    const out2 = ctx.createBuffer(4 * 4, "out2");
    const status = ctx.createBuffer(4 * LORA_MERGE_F16_STATUS_WORDS, "status");
    const enc = recordPass(ctx, (pass) => {
      encodeLoraMergeF16(ctx, pass, { w: wb, a: ab, b: bb, out, status, n, k, r, tag: 5 });
      // A merge without overflow and a larger tag leaves the status alone.
      encodeLoraMergeF16(ctx, pass, {
        w: wb,
        a: ab,
        b: bb,
        out: out2,
        status,
        n,
        k,
        r,
        tag: 9,
        alpha: 0,
      });
    });
    const [got, st] = await readback(ctx, [
      { buffer: out, offset: 0, size: 16 },
      { buffer: status, offset: 0, size: 8 },
    ], enc);
    deepStrictEqual(Array.from(unpackF16(got)), [65504, 65504, -65504, 1.5, 600, 510, -700, 0.5]);
    deepStrictEqual(Array.from(new Uint32Array(st)), [2, 6]);
    for (const buf of [wb, ab, bb, out, out2, status]) ctx.release(buf);
  },
});
