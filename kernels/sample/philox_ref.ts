/**
 * Philox4x32-10, the counter-based random number generator of Random123 (Salmon et al., SC'11),
 * in plain TypeScript: the CPU twin of the generator in `sample.wgsl`, bit for bit.
 *
 * @module
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 (16-bit limbs, exact in doubles). */
function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const lohi = aLo * bHi;
  const hilo = aHi * bLo;
  const cross = (lolo >>> 16) + (lohi & 0xffff) + (hilo & 0xffff);
  return (aHi * bHi + (lohi >>> 16) + (hilo >>> 16) + (cross >>> 16)) >>> 0;
}

/**
 * Philox4x32 with 10 rounds: four random u32 from a 128-bit counter and a 64-bit key.
 *
 * @param counter Four u32 words.
 * @param key Two u32 words.
 * @returns Four u32 words.
 *
 * @example Random123's first known-answer vector
 * ```ts
 * import { philox4x32 } from "./philox_ref.ts";
 * const out = philox4x32([0, 0, 0, 0], [0, 0]);
 * console.log(out[0].toString(16)); // "6627e8d5"
 * ```
 */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  let [c0, c1, c2, c3] = [counter[0] >>> 0, counter[1] >>> 0, counter[2] >>> 0, counter[3] >>> 0];
  let [k0, k1] = [key[0] >>> 0, key[1] >>> 0];
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return Uint32Array.of(c0, c1, c2, c3);
}

/**
 * The uniform number in (0, 1) that the sampler draws for vocabulary entry `token` of sequence
 * `sequence` at generation step `step`: the top 23 bits of the first Philox word of counter
 * `(token, sequence, step, 0)` under key `(seed mod 2³², ⌊seed / 2³²⌋)`, as `(bits + 0.5) / 2²³`
 * (exact in float32, so the GPU and this reference draw the same number).
 *
 * @param seed A non-negative safe integer.
 * @param sequence Sequence index.
 * @param step Generation step.
 * @param token Vocabulary index.
 * @returns A number in [2⁻²⁴, 1 − 2⁻²⁴].
 *
 * @example Draw for token 3 of sequence 0 at step 0
 * ```ts
 * import { sampleUniform } from "./philox_ref.ts";
 * const u = sampleUniform(42, 0, 0, 3);
 * console.log(u > 0 && u < 1); // true
 * ```
 */
export function sampleUniform(seed: number, sequence: number, step: number, token: number): number {
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  const bits = philox4x32([token, sequence, step, 0], key)[0];
  return ((bits >>> 9) + 0.5) / 8388608;
}

/**
 * The Gumbel noise `−log(−log u)` that the sampler adds to a scaled logit, computed as
 * `sample.wgsl`'s `gumbel` does: `e = −log u` by the series `d + d²/2 + d³/3 + d⁴/4` of
 * `d = 1 − u` when `d < 1/64` (so that `e` stays positive and accurate next to `u = 1`, where a
 * GPU `log` that is only within 2⁻²¹ could return 0), else `−Math.log(u)`; then `−log e`.
 * Within 1.2e-8 relative of the exact `e` (the series' truncation).
 *
 * @param u A uniform number in (0, 1), as from {@linkcode sampleUniform}.
 * @returns The noise `−log e`.
 *
 * @example The largest uniform the sampler draws
 * ```ts
 * import { gumbelNoise } from "./philox_ref.ts";
 * console.log(gumbelNoise(1 - 2 ** -24)); // ≈ 16.64 (= 24 ln 2)
 * ```
 */
export function gumbelNoise(u: number): number {
  const d = 1 - u;
  const e = d < 1 / 64 ? d * (1 + d * (1 / 2 + d * (1 / 3 + d / 4))) : -Math.log(u);
  return -Math.log(e);
}
