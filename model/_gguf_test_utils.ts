// Test helper shared by gguf_writer_test.ts and gguf_export_test.ts: float16 rounding computed
// in float64, independent of the engine's Float16Array conversion that the writer uses.

/**
 * IEEE binary16 rounding of `x` (round to nearest, ties to even) computed in float64: the
 * quantum is 2^-24 below 2^-14 (subnormals) and 2^(e-10) for 2^e ≤ |x| < 2^(e+1); beyond 65504
 * (the largest half) the result is ±Infinity.
 *
 * @param x A float32 value.
 * @returns The nearest float16 value (as a number), ±Infinity on overflow, NaN for NaN.
 */
export function f16Reference(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  const a = Math.abs(x);
  let e = -14;
  while (e < 15 && 2 ** (e + 1) <= a) e++;
  const quantum = 2 ** (e - 10);
  const n = a / quantum; // exact: a power-of-two scaling of a float32
  let r = Math.floor(n);
  const frac = n - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * quantum;
  return sign * (v > 65504 ? Infinity : v);
}
