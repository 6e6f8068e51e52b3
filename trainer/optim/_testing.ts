// Private helpers of the optimizer tests: seeded random trees and tree-wide relative error.
import type { ParamTree } from "../types.ts";

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/** A tree with the given tensor lengths, filled with seeded uniform values in [lo, hi). */
export function randomTree(
  shape: Record<string, number>,
  seed: number,
  lo = -1,
  hi = 1,
): ParamTree {
  const out: ParamTree = {};
  let s = seed;
  for (const [k, n] of Object.entries(shape)) out[k] = randomValues(n, s++ * 7919, lo, hi);
  return out;
}

/** ‖a − b‖₂ / ‖b‖₂ over all tensors of the trees (b may hold float64 values). */
export function treeRelativeError(
  a: ParamTree,
  b: Record<string, ArrayLike<number>>,
): number {
  let num = 0;
  let den = 0;
  for (const k of Object.keys(b)) {
    const x = a[k];
    const y = b[k];
    if (!x || x.length !== y.length) throw new RangeError(`Tensor "${k}" differs in shape`);
    for (let i = 0; i < y.length; i++) {
      num += (x[i] - y[i]) ** 2;
      den += y[i] ** 2;
    }
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/** Throws unless every tensor of `a` equals the one of `b` bit for bit. */
export function assertTreeEqual(a: ParamTree, b: ParamTree, what: string): void {
  const ka = Object.keys(a).sort().join(",");
  const kb = Object.keys(b).sort().join(",");
  if (ka !== kb) throw new Error(`${what}: names differ: [${ka}] vs [${kb}]`);
  for (const k of Object.keys(a)) {
    const x = a[k];
    const y = b[k];
    if (x.length !== y.length) throw new Error(`${what}: "${k}" length ${x.length} vs ${y.length}`);
    for (let i = 0; i < x.length; i++) {
      if (!Object.is(x[i], y[i])) throw new Error(`${what}: "${k}"[${i}] ${x[i]} vs ${y[i]}`);
    }
  }
}
