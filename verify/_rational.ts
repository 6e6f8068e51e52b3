// Copyright 2025 the halo authors. MIT license.
// Internal: exact rational and Gaussian-rational arithmetic on bigint, with size caps so
// that no operation can take unbounded time or memory.

/** A normalised rational n/d with gcd(n, d) = 1 and d > 0. */
export interface Rational {
  readonly n: bigint;
  readonly d: bigint;
}

/** A Gaussian rational re + im·i. */
export interface ComplexRational {
  readonly re: Rational;
  readonly im: Rational;
}

/** Largest numerator/denominator bit length kept exact; larger results give null. */
export const MAX_EXACT_BITS = 8192;

export const ZERO: Rational = { n: 0n, d: 1n };
export const ONE: Rational = { n: 1n, d: 1n };

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

export function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

export function bitLength(x: bigint): number {
  x = abs(x);
  if (x === 0n) return 0;
  return x.toString(16).length * 4;
}

/** Builds a normalised rational, or null when d = 0 or the size cap is exceeded. */
export function rat(n: bigint, d: bigint = 1n): Rational | null {
  if (d === 0n) return null;
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  if (g > 1n) {
    n /= g;
    d /= g;
  }
  if (bitLength(n) > MAX_EXACT_BITS || bitLength(d) > MAX_EXACT_BITS) return null;
  return { n, d };
}

export function add(a: Rational, b: Rational): Rational | null {
  return rat(a.n * b.d + b.n * a.d, a.d * b.d);
}

export function sub(a: Rational, b: Rational): Rational | null {
  return rat(a.n * b.d - b.n * a.d, a.d * b.d);
}

export function mul(a: Rational, b: Rational): Rational | null {
  return rat(a.n * b.n, a.d * b.d);
}

export function div(a: Rational, b: Rational): Rational | null {
  return rat(a.n * b.d, a.d * b.n);
}

export function neg(a: Rational): Rational {
  return { n: -a.n, d: a.d };
}

export function eq(a: Rational, b: Rational): boolean {
  return a.n === b.n && a.d === b.d;
}

export function cmp(a: Rational, b: Rational): number {
  const l = a.n * b.d;
  const r = b.n * a.d;
  return l < r ? -1 : l > r ? 1 : 0;
}

export function isInteger(a: Rational): boolean {
  return a.d === 1n;
}

/** Integer power with |e| ≤ 100000 and an a-priori size check. */
export function powInt(a: Rational, e: bigint): Rational | null {
  if (e === 0n) return a.n === 0n ? null : ONE; // 0^0 left undecided
  const ae = abs(e);
  if (ae > 100000n) return null;
  const bits = Math.max(bitLength(a.n), bitLength(a.d));
  if (bits * Number(ae) > MAX_EXACT_BITS + 64) {
    // 0, 1 and -1 stay small
    if (a.d === 1n && (a.n === 0n || a.n === 1n || a.n === -1n)) {
      if (a.n === 0n) return e < 0n ? null : ZERO;
      return a.n === 1n || ae % 2n === 0n ? ONE : { n: -1n, d: 1n };
    }
    return null;
  }
  const n = a.n ** ae;
  const d = a.d ** ae;
  return e > 0n ? rat(n, d) : rat(d, n);
}

/** Exact integer k-th root of a non-negative bigint, or null when not a perfect power. */
export function intRoot(x: bigint, k: number): bigint | null {
  if (x < 0n) return null;
  if (x < 2n) return x;
  if (k === 1) return x;
  const bits = bitLength(x);
  // Newton iteration from an upper bound.
  let r = 1n << BigInt(Math.ceil(bits / k) + 1);
  const kb = BigInt(k);
  for (let i = 0; i < 10000; i++) {
    const next = ((kb - 1n) * r + x / r ** (kb - 1n)) / kb;
    if (next >= r) break;
    r = next;
  }
  return r ** kb === x ? r : null;
}

/** Exact k-th root of a rational (odd k allows negatives), or null. */
export function ratRoot(a: Rational, k: number): Rational | null {
  if (!Number.isInteger(k) || k < 1 || k > 64) return null;
  const negative = a.n < 0n;
  if (negative && k % 2 === 0) return null;
  const n = intRoot(abs(a.n), k);
  const d = intRoot(a.d, k);
  if (n === null || d === null) return null;
  return rat(negative ? -n : n, d);
}

/** Accurate conversion to a double, also for huge numerators and denominators. */
export function toNumber(a: Rational): number {
  const an = abs(a.n);
  if (an < 2n ** 53n && a.d < 2n ** 53n) return Number(a.n) / Number(a.d);
  const shift = bitLength(an) - bitLength(a.d) - 64;
  const q = shift >= 0 ? an / (a.d << BigInt(shift)) : (an << BigInt(-shift)) / a.d;
  const v = Number(q) * 2 ** shift;
  return a.n < 0n ? -v : v;
}

/**
 * Parses a decimal string as MathJSON writes it: "12", "-0.5", "1.5e3", "10e-2", ".25",
 * "0.(3)" (repeating), "1.2(34)e5". Exponents beyond ±2000 give null.
 */
export function parseDecimal(text: string): Rational | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*)(?:\((\d+)\))?)?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
  if (m === null) return null;
  const [, sign, intPart, frac = "", rep = "", expText] = m;
  if (intPart === "" && frac === "" && rep === "") return null;
  const exp = expText === undefined ? 0 : Number(expText);
  if (!Number.isFinite(exp) || Math.abs(exp) > 2000) return null;
  if (intPart.length + frac.length + rep.length > 2000) return null;
  // value = (int.frac) + 0.frac(rep) handled as (A·(10^r − 1) + R) / (10^f·(10^r − 1))
  const f = frac.length;
  const base = BigInt((intPart || "0") + frac);
  let value: Rational | null;
  if (rep === "") {
    value = rat(base, 10n ** BigInt(f));
  } else {
    const r = rep.length;
    const nines = 10n ** BigInt(r) - 1n;
    value = rat(base * nines + BigInt(rep), 10n ** BigInt(f) * nines);
  }
  if (value === null) return null;
  if (exp !== 0) {
    const scale = 10n ** BigInt(Math.abs(exp));
    value = exp > 0 ? rat(value.n * scale, value.d) : rat(value.n, value.d * scale);
    if (value === null) return null;
  }
  return sign === "-" ? neg(value) : value;
}

// ---- Gaussian rationals -------------------------------------------------------------

export function creal(r: Rational): ComplexRational {
  return { re: r, im: ZERO };
}

export const I_UNIT: ComplexRational = { re: ZERO, im: ONE };

export function cadd(a: ComplexRational, b: ComplexRational): ComplexRational | null {
  const re = add(a.re, b.re);
  const im = add(a.im, b.im);
  return re && im ? { re, im } : null;
}

export function cneg(a: ComplexRational): ComplexRational {
  return { re: neg(a.re), im: neg(a.im) };
}

export function cmul(a: ComplexRational, b: ComplexRational): ComplexRational | null {
  const ac = mul(a.re, b.re);
  const bd = mul(a.im, b.im);
  const ad = mul(a.re, b.im);
  const bc = mul(a.im, b.re);
  if (!ac || !bd || !ad || !bc) return null;
  const re = sub(ac, bd);
  const im = add(ad, bc);
  return re && im ? { re, im } : null;
}

export function cdiv(a: ComplexRational, b: ComplexRational): ComplexRational | null {
  if (b.im.n === 0n) {
    const re = div(a.re, b.re);
    const im = div(a.im, b.re);
    return re && im ? { re, im } : null;
  }
  const c2 = mul(b.re, b.re);
  const d2 = mul(b.im, b.im);
  if (!c2 || !d2) return null;
  const den = add(c2, d2);
  if (!den || den.n === 0n) return null;
  const num = cmul(a, { re: b.re, im: neg(b.im) });
  if (!num) return null;
  const re = div(num.re, den);
  const im = div(num.im, den);
  return re && im ? { re, im } : null;
}

export function cpowInt(a: ComplexRational, e: bigint): ComplexRational | null {
  if (a.im.n === 0n) {
    const r = powInt(a.re, e);
    return r ? creal(r) : null;
  }
  const ae = e < 0n ? -e : e;
  if (ae > 4096n) return null;
  let result: ComplexRational | null = creal(ONE);
  let base: ComplexRational | null = a;
  let k = ae;
  while (k > 0n && result && base) {
    if (k & 1n) result = cmul(result, base);
    k >>= 1n;
    if (k > 0n) base = cmul(base, base);
  }
  if (!result || !base) return null;
  return e < 0n ? cdiv(creal(ONE), result) : result;
}

export function ceq(a: ComplexRational, b: ComplexRational): boolean {
  return eq(a.re, b.re) && eq(a.im, b.im);
}

export function isReal(a: ComplexRational): boolean {
  return a.im.n === 0n;
}
