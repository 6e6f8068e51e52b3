// Copyright 2025 the halo authors. MIT license.
// Internal: a small seeded PRNG (mulberry32). Each call site creates its own generator,
// so there is no global random state and results are reproducible.

/** Returns a generator of uniform doubles in [0, 1) determined by `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
