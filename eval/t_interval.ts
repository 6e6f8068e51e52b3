// Copyright 2025 the halo authors. MIT license.
/**
 * Student-t confidence intervals for a mean over a few independent values (e.g. the final accuracy
 * of three seeds): mean ± t(1 − α/2, n − 1) · s/√n with the sample standard deviation s.
 *
 * @module
 */

/**
 * A mean with its Student-t confidence interval.
 *
 * @example Usage
 * ```ts
 * import type { TInterval } from "./t_interval.ts";
 *
 * const one: TInterval = { mean: 0.5, lower: NaN, upper: NaN, halfWidth: NaN, sd: NaN, n: 1, level: 0.95 };
 * ```
 */
export interface TInterval {
  /** The sample mean. */
  mean: number;
  /** `mean − halfWidth`; `NaN` for fewer than two values. */
  lower: number;
  /** `mean + halfWidth`; `NaN` for fewer than two values. */
  upper: number;
  /** `t(1 − α/2, n − 1) · s/√n`; `NaN` for fewer than two values. */
  halfWidth: number;
  /** The sample standard deviation (n − 1 in the denominator); `NaN` for one value. */
  sd: number;
  /** Number of values. */
  n: number;
  /** The confidence level. */
  level: number;
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; about 15 digits). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  );
  return x < (a + 1) / (a + b + 2)
    ? (front * betaFraction(a, b, x)) / a
    : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/**
 * The cumulative distribution function of Student's t with `df` degrees of freedom.
 *
 * @param t The point.
 * @param df Degrees of freedom (> 0).
 * @returns P(T ≤ t).
 * @throws {RangeError} When `df` is not a positive number.
 *
 * @example Usage
 * ```ts
 * import { studentTCdf } from "./t_interval.ts";
 * import { ok } from "node:assert/strict";
 *
 * ok(Math.abs(studentTCdf(0, 3) - 0.5) < 1e-12);
 * ok(Math.abs(studentTCdf(4.302652729911275, 2) - 0.975) < 1e-9);
 * ```
 */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0) || !Number.isFinite(df)) {
    throw new RangeError(`studentTCdf: df must be a positive number: current value is ${df}`);
  }
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The quantile of Student's t with `df` degrees of freedom (bisection on {@linkcode studentTCdf}
 * to about 1e-12).
 *
 * @param p The probability, in (0, 1).
 * @param df Degrees of freedom (> 0).
 * @returns t with P(T ≤ t) = p.
 * @throws {RangeError} When `p` is not in (0, 1) or `df` is not positive.
 *
 * @example The 97.5% point with 2 degrees of freedom (three seeds)
 * ```ts
 * import { studentTQuantile } from "./t_interval.ts";
 * import { ok } from "node:assert/strict";
 *
 * ok(Math.abs(studentTQuantile(0.975, 2) - 4.302652729911275) < 1e-9);
 * ```
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) {
    throw new RangeError(`studentTQuantile: p must be in (0, 1): current value is ${p}`);
  }
  if (!(df > 0) || !Number.isFinite(df)) {
    throw new RangeError(`studentTQuantile: df must be a positive number: current value is ${df}`);
  }
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The Student-t confidence interval of the mean of independent values (e.g. one final accuracy
 * per seed). With one value the interval is undefined (`NaN` ends); with zero spread it is the
 * mean itself.
 *
 * @param values The values (at least one, all finite).
 * @param options `level`: the confidence level in (0, 1), default 0.95.
 * @returns The mean, the interval and the standard deviation.
 * @throws {RangeError} When `values` is empty or holds a non-finite number, or the level is not
 *   in (0, 1).
 *
 * @example Three seeds
 * ```ts
 * import { tInterval } from "./t_interval.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const ci = tInterval([0.1, 0.2, 0.3]);
 * ok(Math.abs(ci.mean - 0.2) < 1e-15);
 * // s = 0.1, t(0.975, 2) = 4.3027: half width 4.3027 * 0.1 / sqrt(3)
 * ok(Math.abs(ci.halfWidth - 0.248414) < 1e-6);
 * strictEqual(tInterval([0.5]).n, 1);
 * ```
 */
export function tInterval(
  values: readonly number[],
  options: { level?: number } = {},
): TInterval {
  const level = options.level ?? 0.95;
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`tInterval: level must be in (0, 1): current value is ${level}`);
  }
  if (values.length === 0) {
    throw new RangeError("tInterval: values must hold at least one value: current length is 0");
  }
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) {
      throw new RangeError(`tInterval: values[${i}] must be finite: current value is ${v}`);
    }
  });
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) {
    return { mean, lower: NaN, upper: NaN, halfWidth: NaN, sd: NaN, n, level };
  }
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const halfWidth = studentTQuantile(1 - (1 - level) / 2, n - 1) * sd / Math.sqrt(n);
  return { mean, lower: mean - halfWidth, upper: mean + halfWidth, halfWidth, sd, n, level };
}
