// Copyright 2025 the halo authors. MIT license.
// Internal: float64 evaluation of an answer tree with a running bound on the rounding
// error, used by the numeric comparison so that it never calls two values equal only
// because float64 cannot tell them apart.
//
// Each value carries `err`, an upper bound on |computed − true| (first-order running error
// analysis: correctly rounded + − × ÷ √ add u·|result|, the library functions exp, log,
// sin, cos, pow … 2–4 u·|result|, and the inputs' errors are propagated through the
// derivative). `lost` marks a value that says nothing about the true one: an underflow
// (a non-zero result that became 0 or subnormal: e^{-1000}, 1/2004!), an overflow of
// finite operands (2004!), a division by or logarithm of a value that is within its error
// of 0, a non-zero term lost in the rounding of a sum (\sqrt2 + 10^{-20}), or an
// operation without an error model here.

import type { AnswerNode } from "./parse_answer.ts";
import type { Budget } from "./_budget.ts";
import * as R from "./_rational.ts";
import * as N from "./_numeric.ts";
import { type Env, numericValue } from "./_evaluate.ts";

/** A float64 value with an error bound. */
export interface Bounded {
  readonly z: N.Complex;
  /** Upper bound on the absolute error |z − true value|. */
  readonly err: number;
  /** The value underflowed, overflowed or has no error bound: it cannot be compared. */
  readonly lost: boolean;
}

const U = 2 ** -53;
const MIN_NORMAL = 2.2250738585072014e-308;
const LOST: Bounded = { z: N.NAN_C, err: Infinity, lost: true };

function abs(z: N.Complex): number {
  return N.absC(z);
}

function isZero(z: N.Complex): boolean {
  return z.re === 0 && z.im === 0;
}

/** `lost` when a result of non-zero finite inputs under- or overflowed. */
function checked(z: N.Complex, err: number, nonZeroExpected: boolean): Bounded {
  const m = abs(z);
  if (Number.isNaN(z.re) || Number.isNaN(z.im)) return { z, err: Infinity, lost: false };
  if (!Number.isFinite(m)) return LOST;
  if (nonZeroExpected && m < MIN_NORMAL) return LOST;
  if (!Number.isFinite(err)) return LOST;
  return { z, err, lost: false };
}

/** Evaluates `node` in float64 with an error bound (see the module comment). */
export function boundedValue(node: AnswerNode, env: Env, budget: Budget): Bounded {
  budget.tick();
  switch (node.kind) {
    case "number": {
      const v = R.toNumber({ n: node.n, d: node.d });
      const exact = node.d === 1n && (node.n < 0n ? -node.n : node.n) <= 2n ** 53n;
      return checked(N.c(v), exact ? 0 : 2 * U * Math.abs(v), node.n !== 0n);
    }
    case "constant":
      switch (node.name) {
        case "pi":
          return { z: N.c(Math.PI), err: U * Math.PI, lost: false };
        case "e":
          return { z: N.c(Math.E), err: U * Math.E, lost: false };
        case "i":
          return { z: N.c(0, 1), err: 0, lost: false };
        case "infinity":
          return { z: N.c(Infinity), err: 0, lost: false };
      }
      return LOST;
    case "symbol": {
      const v = env.get(node.name);
      return v === undefined ? { z: N.NAN_C, err: Infinity, lost: false } : {
        z: N.c(v),
        err: 0,
        lost: false,
      };
    }
    case "apply":
      return applyBounded(node.op, node.args, env, budget);
    default:
      return { z: N.NAN_C, err: Infinity, lost: false };
  }
}

function infinite(b: Bounded): boolean {
  return !N.isFiniteC(b.z);
}

/** sin or cos of a bounded value, with the error bound of its argument carried through. */
function boundedSinCos(op: "sin" | "cos", x: Bounded): Bounded {
  const z = op === "sin" ? N.sinC(x.z) : N.cosC(x.z);
  const growth = Math.cosh(Math.abs(x.z.im) + x.err);
  return checked(z, x.err * growth * (1 + x.err) + 4 * U * (abs(z) + growth), false);
}

function applyBounded(
  op: string,
  args: readonly AnswerNode[],
  env: Env,
  budget: Budget,
): Bounded {
  const vals: Bounded[] = [];
  for (const a of args) {
    const v = boundedValue(a, env, budget);
    if (v.lost) return LOST;
    vals.push(v);
  }
  // Infinite operands (\infty in an interval end, 1/0 …): no error model; the plain
  // evaluation decides, exactly as before (an infinite result is compared structurally).
  if (vals.some(infinite)) {
    const z = numericValue({ kind: "apply", op: op as never, args }, env, budget);
    if (N.isFiniteC(z)) return LOST; // e.g. 1/\infty: no information on the true value
    return { z, err: 0, lost: false };
  }
  const x = vals[0];
  switch (op) {
    case "add": {
      let re = 0;
      let im = 0;
      let err = 0;
      for (const v of vals) {
        re += v.z.re;
        im += v.z.im;
        err += v.err + U * Math.hypot(re, im);
      }
      // A term that is known to be non-zero but lies below the rounding error of the sum
      // is lost in it (\sqrt2 + 10^{-20}): the sum says nothing about that term.
      const sum = Math.hypot(re, im);
      for (const v of vals) {
        const m = abs(v.z);
        if (m > v.err && m + v.err <= 2 * U * sum) return LOST;
      }
      return checked(N.c(re, im), err, false);
    }
    case "neg":
      return { z: N.negC(x.z), err: x.err, lost: false };
    case "mul": {
      let acc: Bounded = { z: N.c(1), err: 0, lost: false };
      for (const v of vals) {
        const z = N.mulC(acc.z, v.z);
        const err = abs(acc.z) * v.err + abs(v.z) * acc.err + acc.err * v.err +
          2 * U * abs(z);
        acc = checked(z, err, !isZero(acc.z) && !isZero(v.z));
        if (acc.lost) return acc;
      }
      return acc;
    }
    case "div":
      return divide(x, vals[1]);
    case "pow":
      return power(x, vals[1]);
    case "sqrt":
      return root(x, 2, N.sqrtC(x.z));
    case "root": {
      const k = vals[1];
      if (k.err !== 0 || !N.isRealC(k.z) || !Number.isInteger(k.z.re) || k.z.re === 0) {
        return power(x, divide({ z: N.c(1), err: 0, lost: false }, k));
      }
      return root(x, Math.abs(k.z.re), N.rootC(x.z, k.z), k.z.re < 0);
    }
    case "exp": {
      const z = N.expC(x.z);
      const m = abs(z);
      return checked(z, m * Math.expm1(x.err) + 4 * U * m, true);
    }
    case "ln":
      return logBounded(x);
    case "log": {
      return divide(logBounded(x), logBounded(vals[1]));
    }
    case "deg":
      return divide(
        mulBounded(x, { z: N.c(Math.PI), err: U * Math.PI, lost: false }),
        { z: N.c(180), err: 0, lost: false },
      );
    case "sin":
    case "cos":
      return boundedSinCos(op, x);
    // From the argument evaluated once (evaluating it again per sin/cos made nested tan cost
    // 3^depth evaluations).
    case "tan":
      return divide(boundedSinCos("sin", x), boundedSinCos("cos", x));
    case "cot":
      return divide(boundedSinCos("cos", x), boundedSinCos("sin", x));
    case "sec":
      return divide({ z: N.c(1), err: 0, lost: false }, boundedSinCos("cos", x));
    case "csc":
      return divide({ z: N.c(1), err: 0, lost: false }, boundedSinCos("sin", x));
    case "abs":
      return { z: N.c(abs(x.z)), err: x.err + U * abs(x.z), lost: false };
  }
  if (!vals.every((v) => N.isRealC(v.z))) return LOST;
  const r = x.z.re;
  const e = x.err;
  switch (op) {
    case "asin":
    case "acos": {
      if (Math.abs(r) + e >= 1 && e > 0) return LOST;
      const v = op === "asin" ? Math.asin(r) : Math.acos(r);
      const d = e === 0 ? 0 : e / Math.sqrt(1 - (Math.abs(r) + e) ** 2);
      return checked(N.c(v), d + 4 * U * Math.abs(v), false);
    }
    case "atan":
      return checked(N.c(Math.atan(r)), e + 4 * U * Math.abs(Math.atan(r)), false);
    case "sinh":
    case "cosh": {
      const v = op === "sinh" ? Math.sinh(r) : Math.cosh(r);
      return checked(N.c(v), e * Math.cosh(Math.abs(r) + e) + 4 * U * Math.abs(v), r !== 0);
    }
    case "tanh":
      return checked(N.c(Math.tanh(r)), e + 4 * U * Math.abs(Math.tanh(r)), false);
    case "floor":
    case "ceil":
    case "round":
    case "sign": {
      // Exact unless the input's error straddles a jump.
      const v = numericValue({ kind: "apply", op: op as never, args }, env, budget);
      if (e === 0) return checked(v, 0, false);
      const jumps = op === "sign"
        ? [0]
        : op === "round"
        ? [Math.floor(r) + 0.5, Math.floor(r) - 0.5]
        : [Math.floor(r), Math.ceil(r)];
      if (jumps.some((j) => Math.abs(r - j) <= e)) return LOST;
      return checked(v, 0, false);
    }
    case "factorial": {
      if (Number.isInteger(r) && e === 0 && r >= 0) {
        if (r > 170) return LOST;
        const v = N.gammaReal(r + 1);
        return checked(N.c(v), r * U * v, true);
      }
      return LOST;
    }
    case "max":
    case "min": {
      let best = vals[0];
      for (const v of vals.slice(1)) {
        if ((op === "max") === (v.z.re > best.z.re)) best = v;
      }
      return { z: best.z, err: Math.max(...vals.map((v) => v.err)), lost: false };
    }
    case "binomial":
    case "mod":
    case "gcd":
    case "lcm": {
      // Only exact integer inputs (the exact evaluator handles nearly all of them).
      if (vals.some((v) => v.err !== 0 || !Number.isInteger(v.z.re))) return LOST;
      const v = numericValue({ kind: "apply", op: op as never, args }, env, budget);
      if (!N.isFiniteC(v)) return LOST;
      return checked(v, op === "binomial" ? 64 * U * abs(v) : 0, false);
    }
  }
  return LOST;
}

function mulBounded(a: Bounded, b: Bounded): Bounded {
  const z = N.mulC(a.z, b.z);
  return checked(
    z,
    abs(a.z) * b.err + abs(b.z) * a.err + a.err * b.err + 2 * U * abs(z),
    !isZero(a.z) && !isZero(b.z),
  );
}

function divide(a: Bounded, b: Bounded): Bounded {
  if (a.lost || b.lost) return LOST;
  const mb = abs(b.z);
  if (mb === 0 && b.err === 0) return { z: N.NAN_C, err: Infinity, lost: false }; // 1/0
  if (mb <= b.err) return LOST;
  const z = N.divC(a.z, b.z);
  const mz = abs(z);
  return checked(z, (a.err + mz * b.err) / (mb - b.err) + 4 * U * mz, !isZero(a.z));
}

function logBounded(a: Bounded): Bounded {
  if (a.lost) return LOST;
  const m = abs(a.z);
  if (m <= a.err) return m === 0 && a.err === 0 ? { z: N.NAN_C, err: Infinity, lost: false } : LOST;
  const z = N.logC(a.z);
  const branch = a.z.im === 0 && a.z.re < 0 && a.err > 0 ? LOST : null; // on the cut
  if (branch) return branch;
  return checked(z, a.err / (m - a.err) + 4 * U * (abs(z) + 1), false);
}

function power(a: Bounded, b: Bounded): Bounded {
  if (a.lost || b.lost) return LOST;
  const z = N.powC(a.z, b.z);
  const ma = abs(a.z);
  const mz = abs(z);
  if (ma === 0) {
    if (a.err !== 0) return LOST;
    return checked(z, 0, false);
  }
  if (ma <= a.err) return LOST;
  // A negative real base with an inexact exponent sits on the branch cut.
  if (a.z.im === 0 && a.z.re < 0 && b.err > 0) return LOST;
  const lnA = Math.hypot(Math.log(ma), Math.PI);
  const rel = abs(b.z) * a.err / (ma - a.err) + lnA * b.err;
  return checked(z, mz * Math.expm1(rel) + 4 * U * mz * (1 + abs(b.z)), true);
}

function root(a: Bounded, k: number, z: N.Complex, reciprocal = false): Bounded {
  if (a.lost) return LOST;
  const ma = abs(a.z);
  const mz = abs(z);
  if (ma === 0 && a.err === 0) return checked(z, 0, false);
  if (ma <= 2 * a.err) return LOST;
  const rel = a.err / (k * (ma - a.err));
  const base = checked(z, mz * Math.expm1(rel) + 4 * U * mz, true);
  if (!reciprocal) return base;
  return divide({ z: N.c(1), err: 0, lost: false }, base);
}
