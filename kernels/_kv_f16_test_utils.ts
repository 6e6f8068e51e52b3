// Shared by the tests of the packed-f16 kernels (kv_write, qk_norm_rope_kv, attention, lora_merge_f16):
// packing f16 values into words, reading them back, and the check that a written value is one of
// the two f16 neighbours of its reference (WGSL's pack2x16float may round either way).

/** `values` rounded to f16 (nearest, ties to even) and packed two per 32-bit word. */
export function packF16(values: ArrayLike<number>): Uint32Array {
  if (values.length % 2 !== 0) {
    throw new RangeError(`Cannot pack f16 pairs: odd length ${values.length}`);
  }
  return new Uint32Array(Float16Array.from(values).buffer);
}

/** The f16 values held by packed words. */
export function unpackF16(words: ArrayBuffer | Uint32Array): Float32Array {
  const buf = words instanceof Uint32Array ? words.slice().buffer : words;
  return Float32Array.from(new Float16Array(buf));
}

/** `values` rounded to the nearest f16 (what a packed cache holds), as f32. */
export function roundF16(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(Float16Array.from(values));
}

/** The smallest normal f16, 2^-14. */
const MIN_NORMAL_F16 = 2 ** -14;

const bits16 = new Uint16Array(1);
const half = new Float16Array(bits16.buffer);

/** The f16 next to the f16 `x` towards +∞ (`up`) or −∞. */
function nextF16(x: number, up: boolean): number {
  half[0] = x;
  const sign = bits16[0] & 0x8000;
  const mag = bits16[0] & 0x7fff;
  if (mag === 0) bits16[0] = up ? 0x0001 : 0x8001;
  else bits16[0] = sign | (((sign === 0) === up) ? mag + 1 : mag - 1);
  return half[0];
}

/** The largest f16 ≤ `x` and the smallest f16 ≥ `x` (equal when `x` is an f16). */
export function f16Neighbours(x: number): [number, number] {
  const r = Math.f16round(x);
  if (r === x) return [r, r];
  return r < x ? [r, nextF16(r, true)] : [nextF16(r, false), r];
}

/**
 * Throws unless every `got[i]` lies between the f16 neighbours of `want[i] ∓ slack` (so an f16
 * rounding, either way, of a value within `slack` of the reference; `slack` one number, or one per
 * element), or, where that range lies in
 * f16's subnormals (|x| < 2^-14), is between it and zero (a driver may flush f16 subnormals);
 * returns the fraction of elements equal to the nearest f16 of `want[i]`.
 */
export function assertF16Rounded(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  slack: number | ArrayLike<number>,
  what: string,
): number {
  const at = (i: number) => typeof slack === "number" ? slack : slack[i];
  if (got.length !== want.length) {
    throw new RangeError(`${what}: length ${got.length} vs reference ${want.length}`);
  }
  let nearest = 0;
  for (let i = 0; i < got.length; i++) {
    let lo = f16Neighbours(want[i] - at(i))[0];
    let hi = f16Neighbours(want[i] + at(i))[1];
    if (Math.abs(lo) < MIN_NORMAL_F16) lo = Math.min(lo, 0);
    if (Math.abs(hi) < MIN_NORMAL_F16) hi = Math.max(hi, 0);
    if (!(got[i] >= lo && got[i] <= hi)) {
      throw new Error(
        `${what}: element ${i} is ${got[i]}, not an f16 rounding of ${want[i]} ± ${at(i)} ` +
          `(between ${lo} and ${hi})`,
      );
    }
    if (got[i] === Math.f16round(want[i])) nearest++;
  }
  return got.length === 0 ? 1 : nearest / got.length;
}
