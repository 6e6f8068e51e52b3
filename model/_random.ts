// Seeded, counter-based hashing and a small PRNG (mulberry32) shared by the data pipeline, weight
// initialisation and adapter initialisation (no global state).

/** MurmurHash3's 32-bit finalizer: a bijective, well-mixing map of uint32. */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Mixes a non-negative safe integer (both 32-bit halves) into a hash state. */
export function mixNumber(state: number, value: number): number {
  const lo = value >>> 0;
  const hi = Math.floor(value / 4294967296) >>> 0;
  return fmix32(fmix32((state ^ lo) >>> 0) ^ hi);
}

/** mulberry32: a small, fast PRNG with 32 bits of state; returns floats in [0, 1). */
export function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
