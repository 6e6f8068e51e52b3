/**
 * Seeded, counter-based hashing and a small PRNG (mulberry32), shared by the data pipeline, the
 * data order, weight and adapter initialisation, the verifier's sampling, the bootstrap intervals,
 * the tests and the benchmarks. There is no global state: each caller makes its own generator.
 *
 * @module
 */

/**
 * MurmurHash3's 32-bit finalizer: a bijective, well-mixing map of uint32.
 *
 * @param x A number; its low 32 bits are used.
 * @returns The mixed uint32.
 *
 * @example Mix a value
 * ```ts
 * import { fmix32 } from "./random.ts";
 * console.log(fmix32(0)); // 0
 * console.log(fmix32(1) !== fmix32(2)); // true
 * ```
 */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Mixes a 32-bit value into a hash state: `fmix32(state ^ value)`.
 *
 * @param state The hash state (uint32).
 * @param value The value; its low 32 bits are used.
 * @returns The new state (uint32).
 *
 * @example Hash a sequence of small integers
 * ```ts
 * import { mix32 } from "./random.ts";
 * let h = 1234;
 * for (const v of [1, 2, 3]) h = mix32(h, v);
 * console.log(h >>> 0 === h); // true
 * ```
 */
export function mix32(state: number, value: number): number {
  return fmix32((state ^ (value >>> 0)) >>> 0);
}

/**
 * Mixes a non-negative safe integer (both 32-bit halves) into a hash state.
 *
 * @param state The hash state (uint32).
 * @param value A non-negative safe integer.
 * @returns The new state (uint32).
 *
 * @example Hash a large step counter
 * ```ts
 * import { mixNumber } from "./random.ts";
 * console.log(mixNumber(0, 2 ** 40) !== mixNumber(0, 0)); // true
 * ```
 */
export function mixNumber(state: number, value: number): number {
  const lo = value >>> 0;
  const hi = Math.floor(value / 4294967296) >>> 0;
  return fmix32(fmix32((state ^ lo) >>> 0) ^ hi);
}

/**
 * mulberry32: a small, fast PRNG with 32 bits of state.
 *
 * @param state The seed; its low 32 bits are used.
 * @returns A generator of uniform doubles in [0, 1) determined by the seed.
 *
 * @example Two generators with the same seed agree
 * ```ts
 * import { mulberry32 } from "./random.ts";
 * const a = mulberry32(7);
 * const b = mulberry32(7);
 * console.log(a() === b()); // true
 * ```
 */
export function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `n` deterministic uniform numbers in [lo, hi) from {@linkcode mulberry32}, as float32: random
 * test and benchmark data.
 *
 * @param n How many numbers.
 * @param seed The seed.
 * @param lo The lower bound (default -1).
 * @param hi The upper bound, excluded (default 1).
 * @returns The numbers.
 *
 * @example Random data
 * ```ts
 * import { randomArray } from "./random.ts";
 * const x = randomArray(4, 1, 0, 2);
 * console.log(x.length, x.every((v) => v >= 0 && v < 2)); // 4 true
 * ```
 */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}
