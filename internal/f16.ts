/**
 * Conversions to IEEE half precision (f16) bit patterns, in chunks, and the one rule for values
 * that f16 cannot hold: a half whose exponent bits are all ones (±Inf or NaN) is an error, since it
 * would turn into NaN losses later. Both the checkpoint reader (`internal/safetensors.ts`) and the
 * GPU upload (`gpu/matrix.ts`) use it.
 *
 * @module
 */

/** The largest finite f16 value. */
export const F16_MAX = 65504;

/** Elements converted per chunk: the temporaries stay at 256 KiB whatever the tensor size. */
const CHUNK = 1 << 16;

/**
 * Index of the first half that is ±Inf or NaN (exponent bits all ones), or -1.
 *
 * @param bits f16 bit patterns.
 * @returns The index, or -1 when every half is finite.
 *
 * @example Find an infinity
 * ```ts
 * import { firstNonFiniteHalf } from "./f16.ts";
 * console.log(firstNonFiniteHalf(new Uint16Array([0x3c00, 0x7c00]))); // 1
 * ```
 */
export function firstNonFiniteHalf(bits: Uint16Array): number {
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & 0x7c00) === 0x7c00) return i;
  }
  return -1;
}

/**
 * Why a value has no finite f16 form, for error messages: beyond the range, or not finite.
 *
 * @param value The value before conversion.
 * @returns A phrase such as `"beyond the f16 range (largest finite half ±65504): it would become ±Inf"`.
 *
 * @example The reason for 1e5
 * ```ts
 * import { nonFiniteHalfReason } from "./f16.ts";
 * console.log(nonFiniteHalfReason(1e5).startsWith("beyond")); // true
 * ```
 */
export function nonFiniteHalfReason(value: number): string {
  return Number.isFinite(value)
    ? `beyond the f16 range (largest finite half ±${F16_MAX}): it would become ±Inf`
    : "not finite";
}

/**
 * Converts float32 values to f16 bits, rounding to nearest, ties to even (`Float16Array`), and
 * stops at the first value that f16 cannot hold finitely ({@linkcode firstNonFiniteHalf}).
 *
 * @param src The values.
 * @param dst Where the bits go (at least `src.length` long).
 * @returns -1 when all were converted, else the index of the first value that became ±Inf or NaN
 * (`dst` is then filled up to an unspecified point).
 *
 * @example Convert three values
 * ```ts
 * import { f32ToF16Bits } from "./f16.ts";
 * const out = new Uint16Array(3);
 * console.log(f32ToF16Bits(new Float32Array([1, -2, 0.5]), out), out); // -1 [15360, 49152, 14336]
 * ```
 */
export function f32ToF16Bits(src: Float32Array, dst: Uint16Array): number {
  const half = new Float16Array(dst.buffer, dst.byteOffset, src.length);
  for (let start = 0; start < src.length; start += CHUNK) {
    const end = Math.min(src.length, start + CHUNK);
    half.set(src.subarray(start, end), start);
    const bad = firstNonFiniteHalf(dst.subarray(start, end));
    if (bad >= 0) return start + bad;
  }
  return -1;
}

/**
 * Converts bfloat16 bits to f16 bits, rounding to nearest, ties to even (bit-identical to widening
 * to float32, exact, then rounding to f16), in chunks, so no float32 copy of the whole tensor
 * exists. `dst` may be `src` itself (an in-place conversion).
 *
 * @param src bfloat16 bit patterns.
 * @param dst Where the f16 bits go (at least `src.length` long; may be `src`).
 * @returns -1 when all were converted, else the index of the first value that f16 cannot hold
 * finitely ({@linkcode firstNonFiniteHalf}); that value's chunk is left unconverted in `dst`, so
 * with `dst === src` the caller can still read the bfloat16 value there.
 *
 * @example 1.5 and 2^-25 (a tie between 0 and the smallest f16 subnormal: rounds to even, 0)
 * ```ts
 * import { bf16ToF16Bits } from "./f16.ts";
 * const out = new Uint16Array(2);
 * console.log(bf16ToF16Bits(new Uint16Array([0x3fc0, 0x3300]), out), out); // -1 [15872, 0]
 * ```
 */
export function bf16ToF16Bits(src: Uint16Array, dst: Uint16Array): number {
  const wide = new Uint32Array(Math.min(CHUNK, src.length));
  const asF32 = new Float32Array(wide.buffer);
  const half = new Float16Array(wide.length);
  const halfBits = new Uint16Array(half.buffer);
  for (let start = 0; start < src.length; start += CHUNK) {
    const n = Math.min(src.length, start + CHUNK) - start;
    for (let i = 0; i < n; i++) wide[i] = src[start + i] << 16;
    half.set(n === wide.length ? asF32 : asF32.subarray(0, n));
    const bad = firstNonFiniteHalf(n === half.length ? halfBits : halfBits.subarray(0, n));
    if (bad >= 0) return start + bad;
    dst.set(n === half.length ? halfBits : halfBits.subarray(0, n), start);
  }
  return -1;
}

/**
 * The float32 value of a bfloat16 bit pattern (exact), for error messages.
 *
 * @param bits The bfloat16 bits.
 * @returns The value.
 *
 * @example 1.0
 * ```ts
 * import { bf16Value } from "./f16.ts";
 * console.log(bf16Value(0x3f80)); // 1
 * ```
 */
export function bf16Value(bits: number): number {
  return new Float32Array(new Uint32Array([(bits & 0xffff) << 16]).buffer)[0];
}
