// Copyright 2025 the halo authors. MIT license.
// Internal: exact (Gaussian-rational) and numeric (complex double) evaluation of answer
// trees, free-variable collection and structural keys. All recursion ticks the budget.

import type { AnswerNode } from "./parse_answer.ts";
import type { Budget } from "./_budget.ts";
import * as R from "./_rational.ts";
import * as N from "./_numeric.ts";

type CR = R.ComplexRational;

/** Exact value of a scalar tree, or null when it is not a Gaussian rational (or too big). */
export function exactValue(node: AnswerNode, budget: Budget): CR | null {
  budget.tick();
  switch (node.kind) {
    case "number":
      return R.creal({ n: node.n, d: node.d });
    case "constant":
      return node.name === "i" ? R.I_UNIT : null;
    case "apply":
      return exactApply(node.op, node.args, budget);
    default:
      return null;
  }
}

function realArg(node: AnswerNode, budget: Budget): R.Rational | null {
  const v = exactValue(node, budget);
  return v && R.isReal(v) ? v.re : null;
}

function intArg(node: AnswerNode, budget: Budget): bigint | null {
  const v = realArg(node, budget);
  return v && v.d === 1n ? v.n : null;
}

function exactApply(op: string, args: readonly AnswerNode[], budget: Budget): CR | null {
  switch (op) {
    case "add": {
      let acc: CR | null = R.creal(R.ZERO);
      for (const a of args) {
        const v = exactValue(a, budget);
        if (!v || !acc) return null;
        acc = R.cadd(acc, v);
      }
      return acc;
    }
    case "mul": {
      let acc: CR | null = R.creal(R.ONE);
      for (const a of args) {
        const v = exactValue(a, budget);
        if (!v || !acc) return null;
        acc = R.cmul(acc, v);
      }
      return acc;
    }
    case "neg": {
      const v = exactValue(args[0], budget);
      return v ? R.cneg(v) : null;
    }
    case "div": {
      const a = exactValue(args[0], budget);
      const b = exactValue(args[1], budget);
      return a && b ? R.cdiv(a, b) : null;
    }
    case "pow": {
      const base = exactValue(args[0], budget);
      const e = realArg(args[1], budget);
      if (!base || !e) return null;
      if (e.d === 1n) return R.cpowInt(base, e.n);
      // rational exponent p/q of a real base that is a perfect q-th power
      if (!R.isReal(base) || e.d > 64n) return null;
      const root = R.ratRoot(base.re, Number(e.d));
      if (!root) return null;
      const p = R.powInt(root, e.n);
      return p ? R.creal(p) : null;
    }
    case "sqrt": {
      const v = realArg(args[0], budget);
      if (!v) return null;
      if (v.n < 0n) {
        const r = R.ratRoot(R.neg(v), 2);
        return r ? { re: R.ZERO, im: r } : null;
      }
      const r = R.ratRoot(v, 2);
      return r ? R.creal(r) : null;
    }
    case "root": {
      const v = realArg(args[0], budget);
      const k = intArg(args[1], budget);
      if (!v || k === null || k < 1n || k > 64n) return null;
      const r = R.ratRoot(v, Number(k));
      return r ? R.creal(r) : null;
    }
    case "abs": {
      const v = exactValue(args[0], budget);
      if (!v) return null;
      if (R.isReal(v)) return R.creal(v.re.n < 0n ? R.neg(v.re) : v.re);
      if (v.re.n === 0n) return R.creal(v.im.n < 0n ? R.neg(v.im) : v.im);
      return null;
    }
    case "floor":
    case "ceil":
    case "round": {
      const v = realArg(args[0], budget);
      if (!v) return null;
      let q = v.n / v.d; // truncates toward zero
      const rem = v.n - q * v.d;
      if (op === "floor" && rem < 0n) q -= 1n;
      if (op === "ceil" && rem > 0n) q += 1n;
      if (op === "round") {
        // half away from zero
        const an = v.n < 0n ? -v.n : v.n;
        const r = (2n * an + v.d) / (2n * v.d);
        q = v.n < 0n ? -r : r;
      }
      return R.creal({ n: q, d: 1n });
    }
    case "factorial": {
      const n = intArg(args[0], budget);
      if (n === null || n < 0n || n > 1000n) return null;
      let acc = 1n;
      for (let i = 2n; i <= n; i++) {
        acc *= i;
        budget.tick();
      }
      const r = R.rat(acc);
      return r ? R.creal(r) : null;
    }
    case "binomial": {
      const n = intArg(args[0], budget);
      const k = intArg(args[1], budget);
      if (n === null || k === null || n < 0n || n > 100000n) return null;
      if (k < 0n || k > n) return R.creal(R.ZERO);
      const kk = k > n - k ? n - k : k;
      if (kk > 2000n) return null;
      let acc = 1n;
      for (let i = 1n; i <= kk; i++) {
        acc = (acc * (n - kk + i)) / i;
        budget.tick();
      }
      const r = R.rat(acc);
      return r ? R.creal(r) : null;
    }
    case "gcd":
    case "lcm": {
      const vals = args.map((a) => intArg(a, budget));
      if (vals.length === 0 || vals.some((v) => v === null)) return null;
      let acc = vals[0] as bigint;
      for (const v of vals.slice(1) as bigint[]) {
        if (op === "gcd") acc = R.gcd(acc, v);
        else {
          const g = R.gcd(acc, v);
          acc = g === 0n ? 0n : (acc / g) * v;
          if (acc < 0n) acc = -acc;
        }
      }
      const r = R.rat(acc < 0n ? -acc : acc);
      return r ? R.creal(r) : null;
    }
    case "max":
    case "min": {
      const vals = args.map((a) => realArg(a, budget));
      if (vals.length === 0 || vals.some((v) => v === null)) return null;
      let best = vals[0] as R.Rational;
      for (const v of vals.slice(1) as R.Rational[]) {
        const c = R.cmp(v, best);
        if ((op === "max" && c > 0) || (op === "min" && c < 0)) best = v;
      }
      return R.creal(best);
    }
    case "mod": {
      const a = intArg(args[0], budget);
      const b = intArg(args[1], budget);
      if (a === null || b === null || b === 0n) return null;
      let m = a % b;
      if (m !== 0n && (m < 0n) !== (b < 0n)) m += b;
      return R.creal({ n: m, d: 1n });
    }
    case "sign": {
      const v = realArg(args[0], budget);
      if (!v) return null;
      return R.creal({ n: v.n > 0n ? 1n : v.n < 0n ? -1n : 0n, d: 1n });
    }
    default:
      return null;
  }
}

/** Variable assignment for numeric evaluation. */
export type Env = ReadonlyMap<string, number>;

const INF = N.c(Infinity);

/** Numeric value; NaN components mean "undefined here". Infinity is kept as ±Infinity. */
export function numericValue(node: AnswerNode, env: Env, budget: Budget): N.Complex {
  budget.tick();
  switch (node.kind) {
    case "number":
      return N.c(R.toNumber({ n: node.n, d: node.d }));
    case "constant":
      switch (node.name) {
        case "pi":
          return N.c(Math.PI);
        case "e":
          return N.c(Math.E);
        case "i":
          return N.c(0, 1);
        case "infinity":
          return INF;
      }
      return N.NAN_C;
    case "symbol": {
      const v = env.get(node.name);
      return v === undefined ? N.NAN_C : N.c(v);
    }
    case "apply":
      return numericApply(node.op, node.args, env, budget);
    default:
      return N.NAN_C;
  }
}

function realOf(z: N.Complex): number {
  return N.isRealC(z) ? z.re : NaN;
}

function numericApply(
  op: string,
  args: readonly AnswerNode[],
  env: Env,
  budget: Budget,
): N.Complex {
  const v = (i: number) => numericValue(args[i], env, budget);
  switch (op) {
    case "add": {
      let re = 0;
      let im = 0;
      for (let i = 0; i < args.length; i++) {
        const z = v(i);
        re += z.re;
        im += z.im;
      }
      return N.c(re, im);
    }
    case "mul": {
      let acc = N.c(1);
      for (let i = 0; i < args.length; i++) acc = N.mulC(acc, v(i));
      return acc;
    }
    case "neg":
      return N.negC(v(0));
    case "div":
      return N.divC(v(0), v(1));
    case "pow":
      return N.powC(v(0), v(1));
    case "sqrt":
      return N.sqrtC(v(0));
    case "root":
      return N.rootC(v(0), v(1));
    case "exp":
      return N.expC(v(0));
    case "ln":
      return N.logC(v(0));
    case "log":
      return N.divC(N.logC(v(0)), N.logC(v(1)));
    case "deg":
      return N.mulC(v(0), N.c(Math.PI / 180));
    case "sin":
      return N.sinC(v(0));
    case "cos":
      return N.cosC(v(0));
    case "tan":
      return N.divC(N.sinC(v(0)), N.cosC(v(0)));
    case "cot":
      return N.divC(N.cosC(v(0)), N.sinC(v(0)));
    case "sec":
      return N.divC(N.c(1), N.cosC(v(0)));
    case "csc":
      return N.divC(N.c(1), N.sinC(v(0)));
    case "abs":
      return N.c(N.absC(v(0)));
  }
  // Real-only functions.
  const x = realOf(v(0));
  switch (op) {
    case "asin":
      return N.c(Math.asin(x));
    case "acos":
      return N.c(Math.acos(x));
    case "atan":
      return N.c(Math.atan(x));
    case "acot":
      return N.c(x === 0 ? Math.PI / 2 : Math.atan(1 / x));
    case "asec":
      return N.c(Math.acos(1 / x));
    case "acsc":
      return N.c(Math.asin(1 / x));
    case "sinh":
      return N.c(Math.sinh(x));
    case "cosh":
      return N.c(Math.cosh(x));
    case "tanh":
      return N.c(Math.tanh(x));
    case "floor":
      return N.c(Math.floor(x));
    case "ceil":
      return N.c(Math.ceil(x));
    case "round":
      return N.c(Math.round(x));
    case "sign":
      return N.c(Math.sign(x));
    case "factorial":
      return N.c(x > 170 ? Infinity : N.gammaReal(x + 1));
    case "binomial": {
      const k = realOf(v(1));
      if (Number.isInteger(x) && Number.isInteger(k) && x >= 0) {
        if (k < 0 || k > x) return N.c(0);
        let r = 1;
        const kk = Math.min(k, x - k);
        // C(n, k) ≥ 2^k for k ≤ n/2: beyond 1100 it overflows a double anyway.
        if (kk > 1100) return N.c(Infinity);
        for (let i = 1; i <= kk; i++) {
          r = (r * (x - kk + i)) / i;
          budget.tick();
        }
        return N.c(r);
      }
      return N.c(N.gammaReal(x + 1) / (N.gammaReal(k + 1) * N.gammaReal(x - k + 1)));
    }
    case "max":
    case "min": {
      let best = x;
      for (let i = 1; i < args.length; i++) {
        const y = realOf(v(i));
        best = op === "max" ? Math.max(best, y) : Math.min(best, y);
      }
      return N.c(best);
    }
    case "mod": {
      const m = realOf(v(1));
      return N.c(((x % m) + m) % m);
    }
    case "gcd":
    case "lcm": {
      let acc = x;
      for (let i = 1; i < args.length; i++) {
        const y = realOf(v(i));
        if (!Number.isInteger(acc) || !Number.isInteger(y)) return N.NAN_C;
        if (Math.abs(acc) > 2 ** 53 || Math.abs(y) > 2 ** 53) return N.NAN_C;
        let a = Math.abs(acc);
        let b = Math.abs(y);
        while (b) [a, b] = [b, a % b];
        acc = op === "gcd" ? a : (a === 0 ? 0 : Math.abs(acc * y) / a);
        budget.tick();
      }
      return N.c(acc);
    }
  }
  return N.NAN_C;
}

/** Names of the free variables of a tree. */
export function freeVariables(node: AnswerNode, out: Set<string>, budget: Budget): Set<string> {
  budget.tick();
  switch (node.kind) {
    case "symbol":
      out.add(node.name);
      break;
    case "apply":
      for (const a of node.args) freeVariables(a, out, budget);
      break;
    case "tuple":
    case "set":
    case "union":
    case "and":
    case "or":
      for (const a of node.items) freeVariables(a, out, budget);
      break;
    case "interval":
      freeVariables(node.lo, out, budget);
      freeVariables(node.hi, out, budget);
      break;
    case "relation":
      freeVariables(node.lhs, out, budget);
      freeVariables(node.rhs, out, budget);
      break;
    case "pm":
      freeVariables(node.center, out, budget);
      freeVariables(node.delta, out, budget);
      break;
    case "matrix":
      for (const row of node.rows) for (const a of row) freeVariables(a, out, budget);
      break;
    case "element":
      freeVariables(node.variable, out, budget);
      freeVariables(node.set, out, budget);
      break;
  }
  return out;
}

/** Whether the tree contains a node that numeric evaluation cannot handle. */
export function isScalar(node: AnswerNode): boolean {
  return node.kind === "number" || node.kind === "symbol" || node.kind === "constant" ||
    node.kind === "apply";
}

/** A canonical structural key (commutative sums/products sorted). */
export function nodeKey(node: AnswerNode, budget: Budget): string {
  budget.tick();
  switch (node.kind) {
    case "number":
      return node.d === 1n ? `${node.n}` : `${node.n}/${node.d}`;
    case "symbol":
      return `$${node.name}`;
    case "constant":
      return `#${node.name}`;
    case "apply": {
      const parts = node.args.map((a) => nodeKey(a, budget));
      if (node.op === "add" || node.op === "mul") parts.sort();
      return `${node.op}(${parts.join(",")})`;
    }
    case "tuple":
      return `tuple${node.brackets}(${node.items.map((a) => nodeKey(a, budget)).join(",")})`;
    case "set":
    case "union":
    case "and":
    case "or":
      return `${node.kind}(${node.items.map((a) => nodeKey(a, budget)).sort().join(",")})`;
    case "interval":
      return `interval(${node.loOpen ? "(" : "["}${nodeKey(node.lo, budget)},${
        nodeKey(node.hi, budget)
      }${node.hiOpen ? ")" : "]"})`;
    case "relation":
      return `rel(${nodeKey(node.lhs, budget)}${node.op}${nodeKey(node.rhs, budget)})`;
    case "pm":
      return `pm(${nodeKey(node.center, budget)},${nodeKey(node.delta, budget)})`;
    case "matrix":
      return `matrix(${
        node.rows.map((r) => r.map((a) => nodeKey(a, budget)).join("&")).join(";")
      })`;
    case "text":
      return `text(${node.text})`;
    case "base":
      return `base(${node.value},${node.base})`;
    case "element":
      return `in(${nodeKey(node.variable, budget)},${nodeKey(node.set, budget)})`;
    case "opaque":
      return `opaque(${node.key})`;
  }
}
