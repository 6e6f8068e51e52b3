import assert from "node:assert/strict";
import {
  bf16ToF16Bits,
  bf16Value,
  F16_MAX,
  f32ToF16Bits,
  firstNonFiniteHalf,
  nonFiniteHalfReason,
} from "./f16.ts";

Deno.test("firstNonFiniteHalf() finds ±Inf and NaN halves, and only those", () => {
  assert.equal(firstNonFiniteHalf(new Uint16Array([0x0000, 0x7bff, 0xfbff, 0x0001])), -1);
  assert.equal(firstNonFiniteHalf(new Uint16Array([0x3c00, 0xfc00, 0x7c00])), 1);
  assert.equal(firstNonFiniteHalf(new Uint16Array([0x3c00, 0x3c00, 0x7e01])), 2);
  assert.equal(firstNonFiniteHalf(new Uint16Array(0)), -1);
  assert.match(nonFiniteHalfReason(65520), /beyond the f16 range \(largest finite half ±65504\)/);
  assert.equal(nonFiniteHalfReason(NaN), "not finite");
  assert.equal(nonFiniteHalfReason(-Infinity), "not finite");
  assert.equal(F16_MAX, 65504);
});

Deno.test("f32ToF16Bits() rounds as Float16Array does and stops at the first value beyond f16", () => {
  const n = (1 << 16) + 1000; // more than one chunk
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 60000);
  const out = new Uint16Array(n);
  assert.equal(f32ToF16Bits(values, out), -1);
  assert.deepEqual(out, new Uint16Array(Float16Array.from(values).buffer));
  values[n - 3] = 65520; // the first value that rounds to +Inf
  assert.equal(f32ToF16Bits(values, new Uint16Array(n)), n - 3);
  values[5] = NaN;
  assert.equal(f32ToF16Bits(values, new Uint16Array(n)), 5);
});

Deno.test("bf16ToF16Bits() converts in place as float32 then f16, and leaves a bad value's chunk unconverted", () => {
  const n = (1 << 16) * 2 + 5;
  // bf16 patterns of |x| ≤ 65280 (0x477f), both signs.
  const src = Uint16Array.from({ length: n }, (_, i) => ((i * 40503) % 0x4780) | (i & 1) << 15);
  const expected = new Uint16Array(
    Float16Array.from(new Float32Array(Uint32Array.from(src, (b) => b << 16).buffer)).buffer,
  );
  const copy = src.slice();
  assert.equal(bf16ToF16Bits(copy, copy), -1);
  assert.deepEqual(copy, expected);
  const other = new Uint16Array(n);
  assert.equal(bf16ToF16Bits(src, other), -1);
  assert.deepEqual(other, expected);
  const bad = src.slice();
  const at = (1 << 16) + 7;
  bad[at] = 0x4780; // 65536
  assert.equal(bf16ToF16Bits(bad, bad), at);
  assert.deepEqual(bad.subarray(0, 1 << 16), expected.subarray(0, 1 << 16), "chunk 0 done");
  assert.deepEqual(bad.subarray(1 << 16, at), src.subarray(1 << 16, at), "chunk 1 untouched");
  assert.equal(bf16Value(bad[at]), 65536);
  assert.equal(bf16Value(0xbf80), -1);
});
