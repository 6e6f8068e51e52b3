// Copyright 2025 the halo authors. MIT license.
/**
 * Confidence intervals for a mean over problems.
 *
 * @module
 */

import { mulberry32 } from "../internal/random.ts";
import { quantile } from "../internal/quantile.ts";

/** Options for {@linkcode confidenceInterval}. */
export interface ConfidenceIntervalOptions {
  /**
   * `"normal"` (default): mean ± z·s/√n with the sample standard deviation s (n − 1 in
   * the denominator) and z the normal quantile of the level. `"bootstrap"`: percentile
   * bootstrap of the mean with a seeded generator (no `Math.random`).
   */
  method?: "normal" | "bootstrap";
  /** Confidence level in (0, 1); default `0.95`. */
  level?: number;
  /** Bootstrap resamples; default `2000`. */
  resamples?: number;
  /** Bootstrap seed; default `0`. */
  seed?: number;
  /** Clamp the interval to these bounds (e.g. `[0, 1]` for accuracies); default none. */
  bounds?: readonly [number, number];
}

/** A mean with its confidence interval. */
export interface ConfidenceInterval {
  /** The sample mean. */
  mean: number;
  /** Lower end of the interval. */
  lower: number;
  /** Upper end of the interval. */
  upper: number;
  /** The confidence level used. */
  level: number;
  /** The method used. */
  method: "normal" | "bootstrap";
  /** Number of values (problems). */
  n: number;
}

/**
 * Confidence interval for the mean of per-problem scores (pass@k estimates, avg@k,
 * maj@k as 0/1…). With fewer than two values the interval is the mean itself.
 *
 * @param values Per-problem scores.
 * @param options Method, level, bootstrap settings and bounds.
 * @returns The mean and its interval.
 * @throws {RangeError} When `values` is empty, contains a non-finite number, or an
 * option is out of range.
 *
 * @example Usage
 * ```ts
 * import { confidenceInterval } from "./confidence_interval.ts";
 * import assert from "node:assert/strict";
 *
 * const ci = confidenceInterval([1, 0, 1, 1, 0, 1, 1, 1], { bounds: [0, 1] });
 * assert.equal(ci.mean, 0.75);
 * assert.ok(ci.lower < 0.75 && ci.upper > 0.75 && ci.upper <= 1);
 * const boot = confidenceInterval([1, 0, 1, 1], { method: "bootstrap", seed: 1 });
 * assert.equal(boot.method, "bootstrap");
 * ```
 */
export function confidenceInterval(
  values: readonly number[],
  options: ConfidenceIntervalOptions = {},
): ConfidenceInterval {
  const method = options.method ?? "normal";
  const level = options.level ?? 0.95;
  if (!Array.isArray(values) || values.length === 0) {
    throw new RangeError(`confidenceInterval: expected at least one value, got ${values?.length}`);
  }
  if (values.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
    throw new RangeError("confidenceInterval: expected finite numbers, got a non-finite value");
  }
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`confidenceInterval: expected 0 < level < 1, got ${level}`);
  }
  if (method !== "normal" && method !== "bootstrap") {
    throw new RangeError(
      `confidenceInterval: expected method "normal" or "bootstrap", got ${method}`,
    );
  }
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  let lower = mean;
  let upper = mean;
  if (n >= 2 && method === "normal") {
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
    const half = normalQuantile(1 - (1 - level) / 2) * Math.sqrt(variance / n);
    lower = mean - half;
    upper = mean + half;
  } else if (n >= 2) {
    const resamples = options.resamples ?? 2000;
    if (!Number.isInteger(resamples) || resamples < 1) {
      throw new RangeError(`confidenceInterval: expected integer resamples >= 1, got ${resamples}`);
    }
    const rand = mulberry32(options.seed ?? 0);
    const means = new Float64Array(resamples);
    for (let r = 0; r < resamples; r++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += values[Math.floor(rand() * n)];
      means[r] = s / n;
    }
    means.sort();
    lower = quantile(means, (1 - level) / 2);
    upper = quantile(means, 1 - (1 - level) / 2);
  }
  if (options.bounds) {
    const [lo, hi] = options.bounds;
    lower = Math.min(Math.max(lower, lo), hi);
    upper = Math.min(Math.max(upper, lo), hi);
  }
  return { mean, lower, upper, level, method, n };
}

/** Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - pl) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
