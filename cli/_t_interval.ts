/**
 * The mean of a few numbers (e.g. one accuracy per seed) with its two-sided 95% Student-t
 * confidence interval.
 *
 * @module
 */

/** Two-sided 95% quantiles t_{0.975, df} of Student's t, for df = 1..30. */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/**
 * A mean and its 95% t-interval.
 *
 * @example Usage
 * ```ts
 * import type { MeanInterval } from "./_t_interval.ts";
 *
 * const m: MeanInterval = { mean: 0.5, half: 0.1, n: 3 };
 * ```
 */
export interface MeanInterval {
  /** The sample mean. */
  mean: number;
  /** Half-width t_{0.975, n−1}·s/√n (NaN with fewer than 2 values). */
  half: number;
  /** The number of values. */
  n: number;
}

/**
 * The mean of `values` and the half-width of its 95% t-interval: `t_{0.975, n−1} · s / √n` with
 * `s` the sample standard deviation (n − 1 in the denominator); above 30 degrees of freedom the
 * normal quantile 1.96 stands in.
 *
 * @param values At least one finite number.
 * @returns The mean, the half-width (NaN for one value) and the count.
 * @throws {RangeError} When `values` is empty or holds a non-finite number.
 *
 * @example Three seeds
 * ```ts
 * import { tInterval95 } from "./_t_interval.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const { mean, half } = tInterval95([0.4, 0.5, 0.6]);
 * ok(Math.abs(mean - 0.5) < 1e-12);
 * strictEqual(half.toFixed(4), "0.2484"); // 4.303 · 0.1 / √3
 * ```
 */
export function tInterval95(values: readonly number[]): MeanInterval {
  const n = values.length;
  if (n === 0 || values.some((v) => !Number.isFinite(v))) {
    throw new RangeError(
      `Cannot compute a t-interval: values must be at least one finite number: current value is ` +
        `[${values.join(", ")}]`,
    );
  }
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, half: NaN, n };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  const t = n - 1 <= T975.length ? T975[n - 2] : 1.96;
  return { mean, half: t * Math.sqrt(variance / n), n };
}
