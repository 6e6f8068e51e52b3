// Copyright 2025 the halo authors. MIT license.
// Internal: complex double arithmetic (principal branches) for numeric comparison.

/** A complex double. */
export interface Complex {
  readonly re: number;
  readonly im: number;
}

export const NAN_C: Complex = { re: NaN, im: NaN };

export function c(re: number, im = 0): Complex {
  return { re, im };
}

export function isFiniteC(z: Complex): boolean {
  return Number.isFinite(z.re) && Number.isFinite(z.im);
}

export function isRealC(z: Complex): boolean {
  return z.im === 0 || Math.abs(z.im) <= 1e-14 * Math.max(1, Math.abs(z.re));
}

export function addC(a: Complex, b: Complex): Complex {
  return { re: a.re + b.re, im: a.im + b.im };
}

export function negC(a: Complex): Complex {
  return { re: -a.re, im: -a.im };
}

export function mulC(a: Complex, b: Complex): Complex {
  if (a.im === 0 && b.im === 0) return { re: a.re * b.re, im: 0 };
  return { re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re };
}

export function divC(a: Complex, b: Complex): Complex {
  if (b.im === 0) {
    if (b.re === 0) return NAN_C;
    return { re: a.re / b.re, im: a.im === 0 ? 0 : a.im / b.re };
  }
  const den = b.re * b.re + b.im * b.im;
  if (den === 0) return NAN_C;
  return {
    re: (a.re * b.re + a.im * b.im) / den,
    im: (a.im * b.re - a.re * b.im) / den,
  };
}

export function absC(a: Complex): number {
  return Math.hypot(a.re, a.im);
}

export function expC(a: Complex): Complex {
  const m = Math.exp(a.re);
  if (a.im === 0) return { re: m, im: 0 };
  return { re: m * Math.cos(a.im), im: m * Math.sin(a.im) };
}

export function logC(a: Complex): Complex {
  if (a.im === 0 && a.re > 0) return { re: Math.log(a.re), im: 0 };
  if (a.re === 0 && a.im === 0) return NAN_C;
  return { re: Math.log(absC(a)), im: Math.atan2(a.im, a.re) };
}

export function sqrtC(a: Complex): Complex {
  if (a.im === 0) {
    return a.re >= 0 ? { re: Math.sqrt(a.re), im: 0 } : { re: 0, im: Math.sqrt(-a.re) };
  }
  const r = absC(a);
  const re = Math.sqrt((r + a.re) / 2);
  const im = Math.sign(a.im) * Math.sqrt((r - a.re) / 2);
  return { re, im };
}

/** Principal power; real base with integer or odd-denominator real exponent stays real. */
export function powC(a: Complex, b: Complex): Complex {
  if (a.im === 0 && b.im === 0) {
    const x = a.re;
    const y = b.re;
    if (x >= 0 || Number.isInteger(y)) return { re: Math.pow(x, y), im: 0 };
  }
  if (a.re === 0 && a.im === 0) {
    if (b.re > 0) return { re: 0, im: 0 };
    return NAN_C;
  }
  return expC(mulC(b, logC(a)));
}

/** Real k-th root for odd k of a negative real (the convention of \sqrt[3]{-8} = -2). */
export function rootC(a: Complex, k: Complex): Complex {
  if (a.im === 0 && k.im === 0 && Number.isInteger(k.re) && k.re !== 0) {
    const n = k.re;
    if (a.re < 0 && Math.abs(n) % 2 === 1) return { re: -Math.pow(-a.re, 1 / n), im: 0 };
  }
  return powC(a, divC(c(1), k));
}

export function sinC(a: Complex): Complex {
  if (a.im === 0) return { re: Math.sin(a.re), im: 0 };
  return { re: Math.sin(a.re) * Math.cosh(a.im), im: Math.cos(a.re) * Math.sinh(a.im) };
}

export function cosC(a: Complex): Complex {
  if (a.im === 0) return { re: Math.cos(a.re), im: 0 };
  return { re: Math.cos(a.re) * Math.cosh(a.im), im: -Math.sin(a.re) * Math.sinh(a.im) };
}

/** Lanczos approximation of Γ(x) for real x (relative error about 1e-15). */
export function gammaReal(x: number): number {
  if (Number.isInteger(x) && x <= 0) return NaN;
  if (Number.isInteger(x) && x > 0 && x <= 171) {
    let r = 1;
    for (let i = 2; i < x; i++) r *= i;
    return r;
  }
  if (x < 0.5) return Math.PI / (Math.sin(Math.PI * x) * gammaReal(1 - x));
  const g = 7;
  const p = [
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
  x -= 1;
  let a = p[0];
  const t = x + g + 0.5;
  for (let i = 1; i < g + 2; i++) a += p[i] / (x + i);
  return Math.sqrt(2 * Math.PI) * Math.pow(t, x + 0.5) * Math.exp(-t) * a;
}
