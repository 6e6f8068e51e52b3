// Copyright 2025 the halo authors. MIT license.
// Internal: structural + exact + numeric comparison of two answer trees.

import type { AnswerNode } from "./parse_answer.ts";
import type { Budget } from "./_budget.ts";
import { exactValue, freeVariables, isScalar, nodeKey } from "./_evaluate.ts";
import * as R from "./_rational.ts";
import * as N from "./_numeric.ts";
import { type Bounded, boundedValue } from "./_bounded.ts";
import { mulberry32 } from "../internal/random.ts";

/** How a scalar comparison was decided. */
export type Method = "exact" | "rounded" | "numeric" | "random-points" | "structure" | "text";

/** Comparison settings; every tolerance is stated here. */
export interface CompareContext {
  budget: Budget;
  /** Relative tolerance for closed-form values that are not both exact rationals (1e-9). */
  relTol: number;
  /** Values both smaller than this in magnitude are equal (1e-12). */
  absTol: number;
  /** Relative tolerance at random points for expressions with variables (1e-8). */
  pointRelTol: number;
  /** Values both smaller than this at a random point are equal there (1e-10). */
  pointAbsTol: number;
  /** Seed of the random points. */
  seed: number;
  /** Number of random points (6). */
  points: number;
  /** Compare bare comma lists "1, 2" as unordered (default false, the Hendrycks rule). */
  unorderedLists: boolean;
  /** Methods used by positive scalar decisions (for the reason). */
  methods: Set<Method>;
  /** Fewest significant digits of a rounded decimal (4; `Infinity`: no rounding rule). */
  roundedDigits: number;
  /** Set when a numeric comparison could neither prove equality nor separate the values. */
  undecided: boolean;
}

const MAX_ITEMS = 64;
const MAX_VARS = 12;
/** Unit roundoff of float64. */
const U = 2 ** -53;

function pmItems(n: AnswerNode & { kind: "pm" }): AnswerNode[] {
  return [
    { kind: "apply", op: "add", args: [n.center, n.delta] },
    { kind: "apply", op: "add", args: [n.center, { kind: "apply", op: "neg", args: [n.delta] }] },
  ];
}

/** Expands ± inside unordered collections. */
function expandPm(items: readonly AnswerNode[]): AnswerNode[] {
  const out: AnswerNode[] = [];
  for (const it of items) {
    if (it.kind === "pm") out.push(...pmItems(it));
    else out.push(it);
  }
  return out;
}

function containsSymbol(node: AnswerNode, name: string, ctx: CompareContext): boolean {
  return freeVariables(node, new Set(), ctx.budget).has(name);
}

/** Word spelled by a product of single letters ("Evelyn" parsed as E·v·e·l·y·n). */
function wordOf(node: AnswerNode): string | null {
  if (node.kind === "symbol") return node.name;
  if (node.kind === "constant" && node.name !== "infinity") return node.name;
  if (node.kind === "text") return node.text;
  if (node.kind === "apply" && node.op === "mul") {
    let s = "";
    for (const a of node.args) {
      const w = wordOf(a);
      if (w === null || a.kind === "apply") return null;
      s += w;
    }
    return s;
  }
  return null;
}

export function looseText(s: string): string {
  return s.replace(/\\text\{([^{}]*)\}/g, "$1").toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** Whether two answer trees denote the same answer. */
export function compareNodes(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  ctx.budget.tick();

  // x \in S answers compare by S.
  if (a.kind === "element" && b.kind === "element") return compareNodes(a.set, b.set, ctx);
  if (a.kind === "element") return compareNodes(a.set, b, ctx);
  if (b.kind === "element") return compareNodes(a, b.set, ctx);

  if (a.kind === "text" || b.kind === "text") {
    const wa = wordOf(a);
    const wb = wordOf(b);
    if (wa === null || wb === null) return false;
    const ok = looseText(wa) !== "" && looseText(wa) === looseText(wb);
    if (ok) ctx.methods.add("text");
    return ok;
  }

  // Assignments "x = 3" against a non-relation.
  // "x = 1 or x = 2" against a list of values.
  const sa = solutionList(a);
  const sb = solutionList(b);
  if (sa && !isLogicalKind(b)) return compareNodes(sa, b, ctx);
  if (sb && !isLogicalKind(a)) return compareNodes(a, sb, ctx);

  // {1,2} ∪ {3} is the finite set {1,2,3}.
  const fa = finiteUnion(a);
  const fb = finiteUnion(b);
  if (fa || fb) return compareNodes(fa ?? a, fb ?? b, ctx);

  if (a.kind === "relation" && a.op === "=" && !isLogicalKind(b)) {
    return compareAssignment(a, b, ctx);
  }
  if (b.kind === "relation" && b.op === "=" && !isLogicalKind(a)) {
    return compareAssignment(b, a, ctx);
  }

  if (a.kind === "relation" && b.kind === "relation") {
    if (relationEqual(a, b, ctx)) return true;
    return compareAsIntervals(a, b, ctx);
  }
  if (isLogicalKind(a) || isLogicalKind(b) || isIntervalKind(a) || isIntervalKind(b)) {
    if ((a.kind === "and" || a.kind === "or") && a.kind === b.kind) {
      if (unorderedMatch(a.items, b.items, ctx)) return true;
    }
    return compareAsIntervals(a, b, ctx);
  }

  if (a.kind === "pm" || b.kind === "pm") return comparePm(a, b, ctx);

  if (a.kind === "set" || b.kind === "set") return compareSets(a, b, ctx);

  if (a.kind === "tuple" && b.kind === "tuple") return compareTuples(a, b, ctx);
  if (a.kind === "matrix" && b.kind === "matrix") {
    if (a.rows.length !== b.rows.length || a.rows[0].length !== b.rows[0].length) return false;
    for (let i = 0; i < a.rows.length; i++) {
      if (!orderedMatch(a.rows[i], b.rows[i], ctx)) return false;
    }
    return true;
  }
  if (a.kind === "matrix" && b.kind === "tuple") return matrixVsTuple(a, b, ctx);
  if (b.kind === "matrix" && a.kind === "tuple") return matrixVsTuple(b, a, ctx);

  if (a.kind === "base" || b.kind === "base") return compareBase(a, b);

  if (a.kind === "opaque" || b.kind === "opaque") {
    const ok = nodeKey(a, ctx.budget) === nodeKey(b, ctx.budget);
    if (ok) ctx.methods.add("structure");
    return ok;
  }
  if (isScalar(a) && isScalar(b)) return scalarEqual(a, b, ctx);
  return false;
}

function finiteUnion(n: AnswerNode): AnswerNode | null {
  if (n.kind !== "union" || !n.items.every((it) => it.kind === "set")) return null;
  return { kind: "set", items: n.items.flatMap((it) => it.kind === "set" ? it.items : []) };
}

/**
 * `x = 1 or x = 2` is the solution set {1, 2} (unordered); `x = 1 and y = 2` is the point
 * (1, 2) (a bare list, ordered).
 */
function solutionList(n: AnswerNode): AnswerNode | null {
  if (n.kind !== "and" && n.kind !== "or") return null;
  const values: AnswerNode[] = [];
  for (const it of n.items) {
    if (it.kind !== "relation" || it.op !== "=") return null;
    if (it.lhs.kind === "symbol") values.push(it.rhs);
    else if (it.rhs.kind === "symbol") values.push(it.lhs);
    else return null;
  }
  if (n.kind === "or") return { kind: "set", items: values };
  // Keep the assignments: "x = 2 and y = -3" is the point (2, -3).
  return { kind: "tuple", brackets: "", items: n.items };
}

function isLogicalKind(n: AnswerNode): boolean {
  return n.kind === "relation" || n.kind === "and" || n.kind === "or";
}

function isIntervalKind(n: AnswerNode): boolean {
  return n.kind === "interval" || n.kind === "union";
}

function compareAssignment(
  rel: AnswerNode & { kind: "relation" },
  other: AnswerNode,
  ctx: CompareContext,
): boolean {
  if (rel.lhs.kind === "symbol" && !containsSymbol(rel.rhs, rel.lhs.name, ctx)) {
    return compareNodes(rel.rhs, other, ctx);
  }
  if (rel.rhs.kind === "symbol" && !containsSymbol(rel.lhs, rel.rhs.name, ctx)) {
    return compareNodes(rel.lhs, other, ctx);
  }
  // "(a, b) = (4, -1)" against "(4, -1)": a tuple of names on the left.
  if (
    rel.lhs.kind === "tuple" && rel.lhs.items.length > 0 &&
    rel.lhs.items.every((it) => it.kind === "symbol") && other.kind === "tuple" &&
    freeVariables(rel.rhs, new Set(), ctx.budget).size === 0
  ) {
    return compareNodes(rel.rhs, other, ctx);
  }
  // "m + n = 31", "P(A) = \frac16" against a constant: a labelled value, the constant
  // side is the answer (only when exactly one side is constant and the other names
  // something).
  if (isScalar(other) && freeVariables(other, new Set(), ctx.budget).size === 0) {
    const lc = isConstant(rel.lhs, ctx);
    const rc = isConstant(rel.rhs, ctx);
    if (lc !== rc) {
      if (isLabel(lc ? rel.rhs : rel.lhs)) {
        return compareNodes(lc ? rel.lhs : rel.rhs, other, ctx);
      }
    }
  }
  // "f(x) = x^2" against "x^2": a named function on the left.
  if (
    rel.lhs.kind === "apply" && rel.lhs.op === "mul" && rel.lhs.args.length === 2 &&
    rel.lhs.args[0].kind === "symbol" && rel.lhs.args[1].kind === "symbol" && isScalar(other)
  ) {
    return compareNodes(rel.rhs, other, ctx);
  }
  return false;
}

/**
 * A name for a value: `m + n`, `AB`, `P(A)`, `b_7` — symbols, function applications
 * and sums/products of them, without numbers (so `2x = 6` is an equation, not a label).
 */
function isLabel(n: AnswerNode): boolean {
  if (n.kind === "symbol" || n.kind === "opaque") return true;
  if (n.kind === "apply" && (n.op === "add" || n.op === "mul")) return n.args.every(isLabel);
  return false;
}

function isConstant(n: AnswerNode, ctx: CompareContext): boolean {
  return isScalar(n) && freeVariables(n, new Set(), ctx.budget).size === 0;
}

function orderedMatch(
  xs: readonly AnswerNode[],
  ys: readonly AnswerNode[],
  ctx: CompareContext,
): boolean {
  if (xs.length !== ys.length || xs.length > MAX_ITEMS * 4) return false;
  for (let i = 0; i < xs.length; i++) if (!compareNodes(xs[i], ys[i], ctx)) return false;
  return true;
}

/** Set equality: every item of one side equals some item of the other, both ways. */
function unorderedMatch(
  xs: readonly AnswerNode[],
  ys: readonly AnswerNode[],
  ctx: CompareContext,
): boolean {
  if (xs.length > MAX_ITEMS || ys.length > MAX_ITEMS) return false;
  if (xs.length === 0 || ys.length === 0) return xs.length === ys.length;
  const matchedY = new Array<boolean>(ys.length).fill(false);
  for (const x of xs) {
    let found = false;
    for (let j = 0; j < ys.length; j++) {
      if (compareNodes(x, ys[j], ctx)) {
        matchedY[j] = true;
        found = true;
      }
    }
    if (!found) return false;
  }
  for (let j = 0; j < ys.length; j++) {
    if (matchedY[j]) continue;
    if (!xs.some((x) => compareNodes(x, ys[j], ctx))) return false;
  }
  return true;
}

function comparePm(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  const items = (n: AnswerNode): AnswerNode[] | null => {
    if (n.kind === "pm") return pmItems(n);
    if (n.kind === "set") return expandPm(n.items);
    if (n.kind === "tuple" && n.brackets === "") return expandPm(n.items);
    return null;
  };
  const xa = items(a);
  const xb = items(b);
  if (xa === null || xb === null) return false;
  return unorderedMatch(xa, xb, ctx);
}

function compareSets(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  const items = (n: AnswerNode): AnswerNode[] | null => {
    if (n.kind === "set") return expandPm(n.items);
    if (n.kind === "tuple" && n.brackets === "") return expandPm(n.items);
    return null;
  };
  const xa = items(a);
  const xb = items(b);
  if (xa !== null && xb !== null) return unorderedMatch(xa, xb, ctx);
  // A one-element solution set against a bare value: {3} vs 3.
  const single = a.kind === "set" ? a : b.kind === "set" ? b : null;
  const other = single === a ? b : a;
  if (single && single.kind === "set" && single.items.length === 1 && isScalar(other)) {
    return compareNodes(single.items[0], other, ctx);
  }
  return false;
}

function bracketsCompatible(
  a: AnswerNode & { kind: "tuple" },
  b: AnswerNode & { kind: "tuple" },
): boolean {
  const x = a.brackets;
  const y = b.brackets;
  if (x === y) return true;
  if (x === ":" || y === ":") return false;
  // A bare list "1, 2, 3" may stand for a tuple, but a pair "(a, b)" / "[a, b]" may be an
  // interval, so a bare pair is identified with it only when it is made of assignments
  // ("x = 1, y = 2" is the point (1, 2)).
  if (x === "" || y === "") {
    const bare = x === "" ? a : b;
    return a.items.length !== 2 ||
      bare.items.every((it) => it.kind === "relation" && it.op === "=");
  }
  return (x === "()" && y === "<>") || (x === "<>" && y === "()");
}

function compareTuples(
  a: AnswerNode & { kind: "tuple" },
  b: AnswerNode & { kind: "tuple" },
  ctx: CompareContext,
): boolean {
  if (!bracketsCompatible(a, b)) return false;
  if (a.brackets === "" && b.brackets === "") {
    // Labelled values in any order: "b_2 = 5, b_7 = 11" vs "b_7 = 11, b_2 = 5".
    const la = labelled(a.items);
    const lb = labelled(b.items);
    if (la && lb) {
      if (la.size !== lb.size) return false;
      for (const [name, v] of la) {
        const w = lb.get(name);
        if (w === undefined || !compareNodes(v, w, ctx)) return false;
      }
      return true;
    }
    // A list of two or more points is a set of solutions: (5,2,1),(2,5,1) in any order.
    if (isPointList(a.items) && isPointList(b.items)) {
      return a.items.length === b.items.length && unorderedMatch(a.items, b.items, ctx);
    }
    // A list with ± is a set of solutions: -2, 1 \pm \sqrt3.
    if (a.items.some((it) => it.kind === "pm") || b.items.some((it) => it.kind === "pm")) {
      return unorderedMatch(expandPm(a.items), expandPm(b.items), ctx);
    }
  }
  if (ctx.unorderedLists && a.brackets === "" && b.brackets === "") {
    return a.items.length === b.items.length && unorderedMatch(a.items, b.items, ctx);
  }
  return orderedMatch(a.items, b.items, ctx);
}

/** `name = value` items with distinct names, as a map; null otherwise. */
function labelled(items: readonly AnswerNode[]): Map<string, AnswerNode> | null {
  const out = new Map<string, AnswerNode>();
  for (const it of items) {
    if (it.kind !== "relation" || it.op !== "=" || it.lhs.kind !== "symbol") return null;
    if (out.has(it.lhs.name)) return null;
    out.set(it.lhs.name, it.rhs);
  }
  return out.size >= 2 ? out : null;
}

function isPointList(items: readonly AnswerNode[]): boolean {
  return items.length >= 2 &&
    items.every((it) => it.kind === "tuple" && it.brackets === "()" && it.items.length >= 2);
}

function matrixVsTuple(
  m: AnswerNode & { kind: "matrix" },
  t: AnswerNode & { kind: "tuple" },
  ctx: CompareContext,
): boolean {
  let flat: AnswerNode[] | null = null;
  if (m.rows.length === 1) flat = [...m.rows[0]];
  else if (m.rows[0].length === 1) flat = m.rows.map((r) => r[0]);
  if (flat === null || t.brackets === ":") return false;
  return orderedMatch(flat, t.items, ctx);
}

function compareBase(a: AnswerNode, b: AnswerNode): boolean {
  // A number written in a base equals only the same number in the same base: "52_8" is
  // neither "42" (wrong base for the question) nor "52" (a different value).
  return a.kind === "base" && b.kind === "base" && a.value === b.value && a.base === b.base;
}

// ---- intervals -----------------------------------------------------------------------

interface Iv {
  lo: AnswerNode;
  hi: AnswerNode;
  loOpen: boolean;
  hiOpen: boolean;
}

const NEG_INF: AnswerNode = {
  kind: "apply",
  op: "neg",
  args: [{ kind: "constant", name: "infinity" }],
};
const POS_INF: AnswerNode = { kind: "constant", name: "infinity" };

function variableOf(rel: AnswerNode & { kind: "relation" }, ctx: CompareContext) {
  const lv = rel.lhs.kind === "symbol" && freeVariables(rel.rhs, new Set(), ctx.budget).size === 0;
  const rv = rel.rhs.kind === "symbol" && freeVariables(rel.lhs, new Set(), ctx.budget).size === 0;
  if (lv && rel.lhs.kind === "symbol") return { name: rel.lhs.name, varOnLeft: true };
  if (rv && rel.rhs.kind === "symbol") return { name: rel.rhs.name, varOnLeft: false };
  return null;
}

/** Interval form of a node, or null. `allowTuple` reads (a, b) / [a, b] as intervals. */
function asIntervals(n: AnswerNode, ctx: CompareContext, allowTuple: boolean): Iv[] | null {
  ctx.budget.tick();
  switch (n.kind) {
    case "interval":
      return [{ lo: n.lo, hi: n.hi, loOpen: n.loOpen, hiOpen: n.hiOpen }];
    case "union": {
      const out: Iv[] = [];
      for (const it of n.items) {
        const x = asIntervals(it, ctx, true);
        if (x === null) return null;
        out.push(...x);
      }
      return out;
    }
    case "element":
      return asIntervals(n.set, ctx, true);
    case "set":
      return n.items.length === 0 ? [] : null;
    case "tuple":
      if (!allowTuple || n.items.length !== 2) return null;
      if (n.brackets === "()") {
        return [{ lo: n.items[0], hi: n.items[1], loOpen: true, hiOpen: true }];
      }
      if (n.brackets === "[]") {
        return [{ lo: n.items[0], hi: n.items[1], loOpen: false, hiOpen: false }];
      }
      return null;
    case "relation": {
      if (n.op !== "<" && n.op !== "<=") return null;
      const v = variableOf(n, ctx);
      if (v === null) return absIntervals([n], ctx);
      const open = n.op === "<";
      // x < c  → (-∞, c);  c < x → (c, ∞)
      return v.varOnLeft
        ? [{ lo: NEG_INF, hi: n.rhs, loOpen: true, hiOpen: open }]
        : [{ lo: n.lhs, hi: POS_INF, loOpen: open, hiOpen: true }];
    }
    case "and": {
      const viaAbs = absIntervals(n.items, ctx);
      if (viaAbs !== null) return viaAbs;
      // intersection of one-sided bounds on the same variable: 1 < x \le 3
      let name: string | null = null;
      let lo: AnswerNode = NEG_INF;
      let hi: AnswerNode = POS_INF;
      let loOpen = true;
      let hiOpen = true;
      let seenLo = false;
      let seenHi = false;
      for (const it of n.items) {
        if (it.kind !== "relation" || (it.op !== "<" && it.op !== "<=")) return null;
        const v = variableOf(it, ctx);
        if (v === null || (name !== null && v.name !== name)) return null;
        name = v.name;
        if (v.varOnLeft) {
          if (seenHi) return null;
          seenHi = true;
          hi = it.rhs;
          hiOpen = it.op === "<";
        } else {
          if (seenLo) return null;
          seenLo = true;
          lo = it.lhs;
          loOpen = it.op === "<";
        }
      }
      return [{ lo, hi, loOpen, hiOpen }];
    }
    case "or": {
      const out: Iv[] = [];
      for (const it of n.items) {
        const x = asIntervals(it, ctx, false);
        if (x === null) return null;
        out.push(...x);
      }
      return out;
    }
    default:
      return null;
  }
}

function isInfinite(n: AnswerNode): boolean {
  return (n.kind === "constant" && n.name === "infinity") ||
    (n.kind === "apply" && n.op === "neg" && n.args[0].kind === "constant" &&
      n.args[0].name === "infinity");
}

function intervalEqual(x: Iv, y: Iv, ctx: CompareContext): boolean {
  // Openness at an infinite end is irrelevant ("[2, \infty]" is a common slip).
  if (!isInfinite(x.lo) && x.loOpen !== y.loOpen) return false;
  if (!isInfinite(x.hi) && x.hiOpen !== y.hiOpen) return false;
  return compareNodes(x.lo, y.lo, ctx) && compareNodes(x.hi, y.hi, ctx);
}

// ---- |L| bounds and merged unions ------------------------------------------------------

function numberNode(r: R.Rational): AnswerNode {
  return { kind: "number", n: r.n, d: r.d };
}

function substitute(
  n: AnswerNode,
  name: string,
  value: AnswerNode,
  ctx: CompareContext,
): AnswerNode {
  ctx.budget.tick();
  if (n.kind === "symbol") return n.name === name ? value : n;
  if (n.kind === "apply") {
    return { kind: "apply", op: n.op, args: n.args.map((a) => substitute(a, name, value, ctx)) };
  }
  return n;
}

/** L = a·v + b with exact rationals a ≠ 0, b, or null. */
function linearIn(
  l: AnswerNode,
  ctx: CompareContext,
): { v: string; a: R.Rational; b: R.Rational } | null {
  const vars = freeVariables(l, new Set(), ctx.budget);
  if (vars.size !== 1) return null;
  const [v] = vars;
  const at = (k: bigint) => {
    const e = exactValue(substitute(l, v, { kind: "number", n: k, d: 1n }, ctx), ctx.budget);
    return e && R.isReal(e) ? e.re : null;
  };
  const l0 = at(0n);
  const l1 = at(1n);
  const l2 = at(2n);
  if (!l0 || !l1 || !l2) return null;
  const a = R.sub(l1, l0);
  if (!a || a.n === 0n) return null;
  const twoA = R.add(a, a);
  const check = twoA && R.add(twoA, l0);
  if (!check || !R.eq(check, l2)) return null;
  return { v, a, b: l0 };
}

/**
 * Bounds on |L| with L linear in one variable, as intervals of that variable:
 * `2 \le |w| \le 5` → [-5,-2] ∪ [2,5]; `|x-1| < 3` → (-2, 4); `|x| > 1` → two rays.
 */
function absIntervals(items: readonly AnswerNode[], ctx: CompareContext): Iv[] | null {
  let key: string | null = null;
  let inner: AnswerNode | null = null;
  let lower: { c: R.Rational; open: boolean } | null = null;
  let upper: { c: R.Rational; open: boolean } | null = null;
  for (const it of items) {
    if (it.kind !== "relation" || (it.op !== "<" && it.op !== "<=")) return null;
    const absLeft = it.lhs.kind === "apply" && it.lhs.op === "abs";
    const absRight = it.rhs.kind === "apply" && it.rhs.op === "abs";
    if (absLeft === absRight) return null;
    const absNode = (absLeft ? it.lhs : it.rhs) as AnswerNode & { kind: "apply" };
    const cv = exactValue(absLeft ? it.rhs : it.lhs, ctx.budget);
    if (!cv || !R.isReal(cv)) return null;
    const k = nodeKey(absNode, ctx.budget);
    if (key !== null && k !== key) return null;
    key = k;
    inner = absNode.args[0];
    const bound = { c: cv.re, open: it.op === "<" };
    if (absLeft) {
      if (upper) return null;
      upper = bound; // |L| < c
    } else {
      if (lower) return null;
      lower = bound; // c < |L|
    }
  }
  if (inner === null) return null;
  const lin = linearIn(inner, ctx);
  if (lin === null) return null;
  // Intervals of L.
  const ivs: { lo: R.Rational | null; hi: R.Rational | null; loOpen: boolean; hiOpen: boolean }[] =
    [];
  if (upper && upper.c.n < 0n) return [];
  if (upper && (!lower || lower.c.n < 0n)) {
    ivs.push({ lo: R.neg(upper.c), hi: upper.c, loOpen: upper.open, hiOpen: upper.open });
  } else if (lower) {
    if (lower.c.n < 0n) return null; // |L| > negative: every real number
    const c1 = lower.c;
    ivs.push({
      lo: upper ? R.neg(upper.c) : null,
      hi: R.neg(c1),
      loOpen: upper?.open ?? true,
      hiOpen: lower.open,
    });
    ivs.push({
      lo: c1,
      hi: upper ? upper.c : null,
      loOpen: lower.open,
      hiOpen: upper?.open ?? true,
    });
  } else {
    return null;
  }
  // Map L-intervals to v = (L - b) / a.
  const map = (x: R.Rational | null) => {
    if (x === null) return null;
    const t = R.sub(x, lin.b);
    return t && R.div(t, lin.a);
  };
  const flip = lin.a.n < 0n;
  const out: Iv[] = [];
  for (const iv of ivs) {
    const lo = map(iv.lo);
    const hi = map(iv.hi);
    if ((iv.lo && !lo) || (iv.hi && !hi)) return null;
    const [l, h, lOpen, hOpen] = flip
      ? [hi, lo, iv.hiOpen, iv.loOpen]
      : [lo, hi, iv.loOpen, iv.hiOpen];
    out.push({
      lo: l ? numberNode(l) : NEG_INF,
      hi: h ? numberNode(h) : POS_INF,
      loOpen: l ? lOpen : true,
      hiOpen: h ? hOpen : true,
    });
  }
  return out;
}

/** Exact value of an interval end (±∞ as ±Infinity), or null. */
function endValue(n: AnswerNode, ctx: CompareContext): R.Rational | number | null {
  if (isInfinite(n)) return n.kind === "constant" ? Infinity : -Infinity;
  const e = exactValue(n, ctx.budget);
  return e && R.isReal(e) ? e.re : null;
}

function cmpEnd(x: R.Rational | number, y: R.Rational | number): number {
  if (typeof x === "number" || typeof y === "number") {
    const fx = typeof x === "number" ? x : 0;
    const fy = typeof y === "number" ? y : 0;
    if (typeof x === "number" && typeof y === "number") return fx === fy ? 0 : fx < fy ? -1 : 1;
    return typeof x === "number" ? (fx < 0 ? -1 : 1) : (fy < 0 ? 1 : -1);
  }
  return R.cmp(x, y);
}

/**
 * A union with exact (rational or infinite) ends, sorted and merged where the pieces
 * overlap or touch at a closed end: [0,2] ∪ [2,5] = [0,5], (-∞,1) ∪ [1,3] = (-∞,3];
 * (0,9) ∪ (9,36) stays two pieces. Returns the input when some end is not exact.
 */
function mergeIntervals(ivs: Iv[], ctx: CompareContext): Iv[] {
  if (ivs.length < 2) return ivs;
  const keyed: { iv: Iv; lo: R.Rational | number; hi: R.Rational | number }[] = [];
  for (const iv of ivs) {
    const lo = endValue(iv.lo, ctx);
    const hi = endValue(iv.hi, ctx);
    if (lo === null || hi === null) return ivs;
    const c = cmpEnd(lo, hi);
    if (c > 0 || (c === 0 && (iv.loOpen || iv.hiOpen))) continue; // empty piece
    keyed.push({ iv, lo, hi });
  }
  keyed.sort((x, y) =>
    cmpEnd(x.lo, y.lo) || (x.iv.loOpen === y.iv.loOpen ? 0 : x.iv.loOpen ? 1 : -1)
  );
  const out: typeof keyed = [];
  for (const k of keyed) {
    const last = out[out.length - 1];
    if (last) {
      const c = cmpEnd(k.lo, last.hi);
      if (c < 0 || (c === 0 && !(k.iv.loOpen && last.iv.hiOpen))) {
        const d = cmpEnd(k.hi, last.hi);
        if (d > 0 || (d === 0 && last.iv.hiOpen && !k.iv.hiOpen)) {
          last.hi = k.hi;
          last.iv = { ...last.iv, hi: k.iv.hi, hiOpen: k.iv.hiOpen };
        }
        continue;
      }
    }
    out.push({ ...k });
  }
  return out.map((k) => k.iv);
}

function compareAsIntervals(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  const ra = asIntervals(a, ctx, isIntervalLike(b, ctx));
  const rb = asIntervals(b, ctx, isIntervalLike(a, ctx));
  if (ra === null || rb === null) return false;
  const ia = mergeIntervals(ra, ctx);
  const ib = mergeIntervals(rb, ctx);
  if (ia.length !== ib.length || ia.length > MAX_ITEMS) return false;
  const used = new Array<boolean>(ib.length).fill(false);
  for (const x of ia) {
    const j = ib.findIndex((y, k) => !used[k] && intervalEqual(x, y, ctx));
    if (j < 0) return false;
    used[j] = true;
  }
  return true;
}

function isIntervalLike(n: AnswerNode, ctx: CompareContext): boolean {
  return n.kind !== "tuple" && asIntervals(n, ctx, false) !== null;
}

// ---- relations -----------------------------------------------------------------------

function relationEqual(
  a: AnswerNode & { kind: "relation" },
  b: AnswerNode & { kind: "relation" },
  ctx: CompareContext,
): boolean {
  if (a.op !== b.op) {
    return false;
  }
  if (compareNodes(a.lhs, b.lhs, ctx) && compareNodes(a.rhs, b.rhs, ctx)) return true;
  if (
    (a.op === "=" || a.op === "!=") && compareNodes(a.lhs, b.rhs, ctx) &&
    compareNodes(a.rhs, b.lhs, ctx)
  ) {
    return true;
  }
  if (![a.lhs, a.rhs, b.lhs, b.rhs].every(isScalar)) return false;
  // Same solution set: (lhs₁ − rhs₁) = k·(lhs₂ − rhs₂) with a constant k ≠ 0
  // (k > 0 for inequalities), checked at seeded random points.
  const d1: AnswerNode = {
    kind: "apply",
    op: "add",
    args: [a.lhs, { kind: "apply", op: "neg", args: [a.rhs] }],
  };
  const d2: AnswerNode = {
    kind: "apply",
    op: "add",
    args: [b.lhs, { kind: "apply", op: "neg", args: [b.rhs] }],
  };
  const vars = freeVariables(d1, new Set(), ctx.budget);
  freeVariables(d2, vars, ctx.budget);
  if (vars.size === 0 || vars.size > MAX_VARS) return false;
  const names = [...vars].sort();
  const rand = mulberry32(ctx.seed ^ 0x9e3779b9);
  let ratio: N.Complex | null = null;
  let ratioErr = 0;
  let valid = 0;
  for (let p = 0; p < ctx.points * 2 && valid < ctx.points; p++) {
    const env = samplePoint(names, rand);
    const b1 = boundedValue(d1, env, ctx.budget);
    const b2 = boundedValue(d2, env, ctx.budget);
    // Under/overflow or a term lost in rounding at this point: no information.
    if (b1.lost || b2.lost) continue;
    const v1 = b1.z;
    const v2 = b2.z;
    if (!N.isFiniteC(v1) || !N.isFiniteC(v2)) continue;
    if (N.absC(v2) < 1e-12 || N.absC(v1) < 1e-12) return false;
    const r = N.divC(v1, v2);
    if (ratio === null) {
      ratio = r;
      ratioErr = b1.err / N.absC(v1) + b2.err / N.absC(v2);
    } else if (!close(ratio, r, ctx.pointRelTol, ctx.pointAbsTol)) return false;
    valid++;
  }
  if (ratio === null || valid < 3) return false;
  if (a.op !== "=" && a.op !== "!=" && !(N.isRealC(ratio) && ratio.re > 0)) return false;
  if (!partialDifferencesAgree(d1, d2, names, ratio, ratioErr, rand, ctx)) return false;
  ctx.methods.add("random-points");
  return true;
}

/**
 * If d₁ = k·d₂ everywhere then, for each variable v, moving v alone from one value to another
 * changes d₁ by exactly k times the change of d₂: the terms without v cancel. The ratio test
 * alone misses a term that is ~1e-9 of the others (`y = 10⁻⁹x` vs `y = 2·10⁻⁹x`: d₁/d₂ ≈ 1
 * at every point); its change when only x moves is not swamped by y. Rejects only a mismatch
 * beyond the tracked rounding bounds and twice `pointRelTol`; a point with a lost,
 * non-finite or within-error-of-0 change carries no information and is skipped.
 */
function partialDifferencesAgree(
  d1: AnswerNode,
  d2: AnswerNode,
  names: readonly string[],
  k: N.Complex,
  kRelErr: number,
  rand: () => number,
  ctx: CompareContext,
): boolean {
  const kAbs = N.absC(k);
  for (const name of names) {
    for (let t = 0; t < 2; t++) {
      const p = samplePoint(names, rand);
      const q = new Map(p);
      q.set(name, samplePoint([name], rand).get(name)!);
      const b1p = boundedValue(d1, p, ctx.budget);
      const b1q = boundedValue(d1, q, ctx.budget);
      const b2p = boundedValue(d2, p, ctx.budget);
      const b2q = boundedValue(d2, q, ctx.budget);
      const all = [b1p, b1q, b2p, b2q];
      if (all.some((b) => b.lost || !N.isFiniteC(b.z) || !Number.isFinite(b.err))) continue;
      const delta1 = N.addC(b1q.z, N.negC(b1p.z));
      const delta2 = N.addC(b2q.z, N.negC(b2p.z));
      const e1 = b1p.err + b1q.err + U * N.absC(delta1);
      const e2 = b2p.err + b2q.err + U * N.absC(delta2);
      const kDelta2 = N.mulC(k, delta2);
      if (!N.isFiniteC(kDelta2) || !N.isFiniteC(delta1)) continue;
      const mismatch = N.absC(N.addC(delta1, N.negC(kDelta2)));
      // Bound on |Δ₁ − k·Δ₂| when the two equations are the same, from rounding alone.
      const roundingBound = e1 + kAbs * e2 + N.absC(kDelta2) * kRelErr +
        4 * U * (N.absC(delta1) + N.absC(kDelta2));
      const scale = Math.max(N.absC(delta1), N.absC(kDelta2));
      if (!Number.isFinite(roundingBound) || scale <= 4 * roundingBound) continue;
      if (mismatch > 4 * roundingBound + 2 * ctx.pointRelTol * scale) return false;
    }
  }
  return true;
}

// ---- scalars -------------------------------------------------------------------------

function samplePoint(names: readonly string[], rand: () => number): Map<string, number> {
  const env = new Map<string, number>();
  for (const name of names) {
    const magnitude = 0.5 + 2 * rand(); // |x| in [0.5, 2.5)
    env.set(name, rand() < 0.5 ? -magnitude : magnitude);
  }
  return env;
}

function close(a: N.Complex, b: N.Complex, rel: number, abs: number): boolean {
  if (!N.isFiniteC(a) || !N.isFiniteC(b)) {
    return a.re === b.re && a.im === b.im && !Number.isNaN(a.re) && !Number.isNaN(a.im);
  }
  // Relative tolerance; the absolute one only applies when both values are that small
  // (so sin(π) ≈ 1.2e-16 equals 0, but 3.2e-15 apart at magnitude 3 is a real difference).
  const scale = Math.max(N.absC(a), N.absC(b));
  if (scale <= abs) return true;
  return Math.hypot(a.re - b.re, a.im - b.im) <= rel * scale;
}

/** Outcome of a numeric comparison with tracked rounding error. */
type NumericOutcome = "equal" | "different" | "undecided";

/**
 * Compares two float64 values with error bounds. Different when they are further apart
 * than their error bounds (plus `slack`); equal when they are not and their error bounds
 * are within `rel` of their magnitude, or both are within their (≤ `abs`) error of 0;
 * undecided otherwise (under/overflow, too much rounding error).
 */
function compareBounded(
  a: Bounded,
  b: Bounded,
  rel: number,
  abs: number,
  slack: number,
): NumericOutcome {
  if (a.lost || b.lost) return "undecided";
  const diff = Math.hypot(a.z.re - b.z.re, a.z.im - b.z.im);
  const err = a.err + b.err;
  const scale = Math.max(N.absC(a.z), N.absC(b.z));
  if (!(diff <= err + slack)) return "different";
  if (err <= rel * scale) return "equal";
  if (scale <= err && err <= abs) return "equal";
  return "undecided";
}

/** A number written as a decimal (`0.1667`): its value and the decimals written. */
function writtenDecimal(n: AnswerNode): { v: R.Rational; decimals: number } | null {
  if (n.kind === "number" && n.decimals !== undefined) {
    return { v: { n: n.n, d: n.d }, decimals: n.decimals };
  }
  if (n.kind === "apply" && n.op === "neg" && n.args.length === 1) {
    const inner = writtenDecimal(n.args[0]);
    return inner && { v: R.neg(inner.v), decimals: inner.decimals };
  }
  return null;
}

/** Whether the decimal expansion of a rational terminates (its denominator is 2^a·5^b). */
function terminates(r: R.Rational): boolean {
  let d = r.d;
  while (d % 2n === 0n) d /= 2n;
  while (d % 5n === 0n) d /= 5n;
  return d === 1n;
}

/**
 * The rounding rule: `dec` is `gold` correctly rounded (half away from zero; a
 * non-terminating gold never sits on a tie) to the decimals written, with at least
 * `minDigits` significant digits, and `gold` is a rational whose decimal expansion does
 * not terminate (a terminating gold must be written exactly).
 */
export function roundedMatch(
  dec: { v: R.Rational; decimals: number },
  gold: R.Rational,
  minDigits: number,
): boolean {
  if (terminates(gold) || dec.decimals > 60) return false;
  const scale = 10n ** BigInt(dec.decimals);
  const written = dec.v.n * scale;
  if (written % dec.v.d !== 0n) return false;
  const w = written / dec.v.d; // the digits written, as an integer
  const digits = (w < 0n ? -w : w).toString().replace(/^0+/, "").length;
  if (digits < minDigits) return false;
  const an = gold.n < 0n ? -gold.n : gold.n;
  const rounded = (2n * an * scale + gold.d) / (2n * gold.d);
  return (gold.n < 0n ? -rounded : rounded) === w;
}

/** Scalar equality: exact, then rounded decimals, then closed-form numeric with error bounds, then random points, then structure. */
export function scalarEqual(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  const ea = exactValue(a, ctx.budget);
  const eb = exactValue(b, ctx.budget);
  if (ea && eb) {
    const ok = R.ceq(ea, eb);
    if (ok) {
      ctx.methods.add("exact");
      return true;
    }
    if (R.isReal(ea) && R.isReal(eb) && Number.isFinite(ctx.roundedDigits)) {
      const da = writtenDecimal(a);
      const db = writtenDecimal(b);
      if (
        (da !== null && db === null && roundedMatch(da, eb.re, ctx.roundedDigits)) ||
        (db !== null && da === null && roundedMatch(db, ea.re, ctx.roundedDigits))
      ) {
        ctx.methods.add("rounded");
        return true;
      }
    }
    return false;
  }
  const vars = freeVariables(a, new Set(), ctx.budget);
  freeVariables(b, vars, ctx.budget);
  if (vars.size === 0) {
    const va = boundedValue(a, new Map(), ctx.budget);
    const vb = boundedValue(b, new Map(), ctx.budget);
    // Infinite or undefined values (\infty, 10^{3000} is "lost", 1/0) fall through to the
    // structural comparison.
    if (!va.lost && !vb.lost && (!N.isFiniteC(va.z) || !N.isFiniteC(vb.z))) {
      return structural(a, b, ctx);
    }
    // A decimal written against an irrational value: equal within relTol (by default
    // about 10 significant digits: 3.141592654 = \pi, 3.14159 and 1.414 are not).
    const approx = (ea !== null && writtenDecimal(a) !== null) ||
      (eb !== null && writtenDecimal(b) !== null);
    const slack = approx ? ctx.relTol * Math.max(N.absC(va.z), N.absC(vb.z)) : 0;
    const outcome = compareBounded(va, vb, ctx.relTol, ctx.absTol, slack);
    if (outcome === "equal") {
      ctx.methods.add("numeric");
      return true;
    }
    if (outcome === "different") return false;
    if (structural(a, b, ctx)) return true;
    ctx.undecided = true;
    return false;
  }
  if (vars.size > MAX_VARS) return structural(a, b, ctx);
  const names = [...vars].sort();
  const rand = mulberry32(ctx.seed);
  let valid = 0;
  for (let p = 0; p < ctx.points * 2 && valid < ctx.points; p++) {
    const env = samplePoint(names, rand);
    const va = boundedValue(a, env, ctx.budget);
    const vb = boundedValue(b, env, ctx.budget);
    if (va.lost || vb.lost) continue; // under/overflow at this point: no information
    const fa = N.isFiniteC(va.z);
    const fb = N.isFiniteC(vb.z);
    if (!fa && !fb) continue;
    if (fa !== fb) return false;
    const outcome = compareBounded(va, vb, ctx.pointRelTol, ctx.pointAbsTol, 0);
    if (outcome === "different") return false;
    if (outcome === "equal") valid++;
  }
  if (valid >= 3) {
    ctx.methods.add("random-points");
    return true;
  }
  if (structural(a, b, ctx)) return true;
  ctx.undecided = true;
  return false;
}

function structural(a: AnswerNode, b: AnswerNode, ctx: CompareContext): boolean {
  const ok = nodeKey(a, ctx.budget) === nodeKey(b, ctx.budget);
  if (ok) ctx.methods.add("structure");
  return ok;
}
