// Copyright 2025 the halo authors. MIT license.
/**
 * Parsing of a normalised answer: LaTeX → MathJSON with the Compute Engine's standalone
 * LaTeX parser, then MathJSON → a small typed answer tree ({@linkcode AnswerNode}).
 *
 * @module
 */

import "./_env_patch.ts"; // must stay before the Compute Engine import
import { LatexSyntax } from "@cortex-js/compute-engine/latex-syntax";
import "./_env_restore.ts";
import { nestingDepth } from "./_latex_scan.ts";
import { parseDecimal, rat, type Rational } from "./_rational.ts";
import { isUnitPhrase } from "./_units.ts";
import { type Budget, BudgetExceeded } from "./_budget.ts";

/** Arithmetic and function heads of an {@linkcode AnswerNode} of kind `"apply"`. */
export type ApplyOp =
  | "add"
  | "mul"
  | "div"
  | "neg"
  | "pow"
  | "sqrt"
  | "root"
  | "exp"
  | "ln"
  | "log"
  | "sin"
  | "cos"
  | "tan"
  | "cot"
  | "sec"
  | "csc"
  | "asin"
  | "acos"
  | "atan"
  | "acot"
  | "asec"
  | "acsc"
  | "sinh"
  | "cosh"
  | "tanh"
  | "abs"
  | "floor"
  | "ceil"
  | "round"
  | "factorial"
  | "binomial"
  | "gcd"
  | "lcm"
  | "max"
  | "min"
  | "mod"
  | "sign"
  | "deg";

/**
 * A parsed answer. Scalars are `number` (exact rational n/d), `symbol`, `constant` and
 * `apply`; composites are tuples (ordered), sets (unordered), intervals, unions,
 * relations, `and`/`or` of relations, `pm` (a ± b), matrices, text, numbers written in a
 * base (`52_8`), `x \in S` and `opaque` (anything else, compared structurally).
 */
export type AnswerNode =
  | {
    readonly kind: "number";
    readonly n: bigint;
    readonly d: bigint;
    /**
     * Decimals written when the number was written as a decimal (`0.1667`: 4); a
     * non-enumerable annotation, not part of the value.
     */
    readonly decimals?: number;
  }
  | { readonly kind: "symbol"; readonly name: string }
  | { readonly kind: "constant"; readonly name: "pi" | "e" | "i" | "infinity" }
  | { readonly kind: "apply"; readonly op: ApplyOp; readonly args: readonly AnswerNode[] }
  | {
    readonly kind: "tuple";
    readonly brackets: "()" | "[]" | "<>" | "" | ":";
    readonly items: readonly AnswerNode[];
  }
  | { readonly kind: "set"; readonly items: readonly AnswerNode[] }
  | {
    readonly kind: "interval";
    readonly lo: AnswerNode;
    readonly hi: AnswerNode;
    readonly loOpen: boolean;
    readonly hiOpen: boolean;
  }
  | { readonly kind: "union"; readonly items: readonly AnswerNode[] }
  | {
    readonly kind: "relation";
    readonly op: "=" | "<" | "<=" | "!=";
    readonly lhs: AnswerNode;
    readonly rhs: AnswerNode;
  }
  | { readonly kind: "and" | "or"; readonly items: readonly AnswerNode[] }
  | { readonly kind: "pm"; readonly center: AnswerNode; readonly delta: AnswerNode }
  | { readonly kind: "matrix"; readonly rows: readonly (readonly AnswerNode[])[] }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "base"; readonly value: bigint; readonly base: number }
  | { readonly kind: "element"; readonly variable: AnswerNode; readonly set: AnswerNode }
  | { readonly kind: "opaque"; readonly key: string };

/** Options for {@linkcode parseAnswer}. */
export interface ParseAnswerOptions {
  /** Longest input handed to the LaTeX parser, in characters. Default `512`. */
  maxLength?: number;
  /** Deepest bracket nesting handed to the LaTeX parser. Default `24`. */
  maxDepth?: number;
  /** Most answer-tree nodes built from one input. Default `2000`. */
  maxNodes?: number;
}

/** Result of {@linkcode parseAnswer}. */
export type ParseAnswerResult =
  | { readonly ok: true; readonly node: AnswerNode }
  | {
    readonly ok: false;
    /** `empty`, `too-large` (a guard tripped), `syntax` (the parser reported an error). */
    readonly reason: "empty" | "too-large" | "syntax";
  };

/** @internal Budget hook used by the verifier; public callers leave it out. */
export interface ParseAnswerInternals {
  budget?: Budget;
}

// The standalone parser keeps no per-call state (its dictionary is built once, lazily, and
// never mutated afterwards); sharing one instance is safe and is checked in the tests.
const SYNTAX = new LatexSyntax();
// Build the parser's dictionary and warm its common paths now, rather than inside the
// first caller's time budget (a cold first parse takes tens of milliseconds).
for (
  const warm of [
    "\\frac{1}{2}+x^2",
    "(1,2)",
    "\\{1,2\\}\\cup\\{3\\}",
    "[1,2)\\cup(3,\\infty)",
    "2\\sqrt{3}\\pi-\\sin 30^\\circ",
    "y=2x+1",
    "1<x\\le3",
    "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
    "\\text{a}",
    "1\\pm\\sqrt{5}",
  ]
) {
  try {
    SYNTAX.parse(warm);
  } catch {
    // ignored: parseAnswer reports failures per call
  }
}

class ParseFailure extends Error {
  constructor(readonly reason: "empty" | "too-large" | "syntax") {
    super(reason);
  }
}

/**
 * Parses a normalised answer (see `normalizeAnswer`) into an {@linkcode AnswerNode}.
 * The input is refused (`too-large`) before parsing when it is longer than `maxLength`
 * or nested deeper than `maxDepth`, which bounds the parser's running time. Never throws.
 *
 * @param latex The normalised answer.
 * @param options Size guards.
 * @returns `{ ok: true, node }` or `{ ok: false, reason }`.
 *
 * @example Usage
 * ```ts
 * import { parseAnswer } from "./parse_answer.ts";
 * import assert from "node:assert/strict";
 *
 * const r = parseAnswer("\\{1,2\\}");
 * assert.ok(r.ok && r.node.kind === "set");
 * assert.equal(parseAnswer("\\frac{1}{").ok, false);
 * ```
 */
export function parseAnswer(
  latex: string,
  options: ParseAnswerOptions & ParseAnswerInternals = {},
): ParseAnswerResult {
  try {
    if (typeof latex !== "string") return { ok: false, reason: "empty" };
    const text = latex.trim();
    if (text === "") return { ok: false, reason: "empty" };
    if (text.length > (options.maxLength ?? 512)) return { ok: false, reason: "too-large" };
    if (nestingDepth(text) > (options.maxDepth ?? 24)) return { ok: false, reason: "too-large" };
    options.budget?.charge(text.length);
    options.budget?.check();
    const json = SYNTAX.parse(text);
    options.budget?.check();
    if (json === null || json === undefined) return { ok: false, reason: "empty" };
    const ctx: Ctx = { nodes: 0, maxNodes: options.maxNodes ?? 2000, budget: options.budget };
    return { ok: true, node: convert(json, 0, ctx, false) };
  } catch (e) {
    if (e instanceof BudgetExceeded) throw e;
    if (e instanceof ParseFailure) return { ok: false, reason: e.reason };
    return { ok: false, reason: "syntax" };
  }
}

interface Ctx {
  nodes: number;
  maxNodes: number;
  budget?: Budget;
}

const MAX_TREE_DEPTH = 200;

function num(r: Rational): AnswerNode {
  return { kind: "number", n: r.n, d: r.d };
}

/** A number written as a decimal; `decimals` is non-enumerable (not part of its value). */
function decimalNum(r: Rational, decimals: number): AnswerNode {
  const node = { kind: "number" as const, n: r.n, d: r.d };
  Object.defineProperty(node, "decimals", { value: decimals, enumerable: false });
  return node;
}

function unwrap(x: unknown): unknown {
  if (x !== null && typeof x === "object" && !Array.isArray(x)) {
    const o = x as Record<string, unknown>;
    if ("fn" in o) return o.fn;
    if ("sym" in o) return o.sym;
    if ("num" in o) return { num: o.num };
    if ("str" in o) return `'${String(o.str)}'`;
  }
  return x;
}

function isNumObj(x: unknown): x is { num: string } {
  return x !== null && typeof x === "object" && !Array.isArray(x) &&
    typeof (x as { num?: unknown }).num === "string";
}

/** Integer literal value of a raw MathJSON item (also `Negate(int)`), or null. */
function rawInteger(x: unknown): bigint | null {
  x = unwrap(x);
  if (typeof x === "number") return Number.isSafeInteger(x) ? BigInt(x) : null;
  if (isNumObj(x)) {
    const r = parseDecimal(x.num);
    return r && r.d === 1n ? r.n : null;
  }
  if (Array.isArray(x) && x[0] === "Negate" && x.length === 2) {
    const v = rawInteger(x[1]);
    return v === null ? null : -v;
  }
  return null;
}

function isTextLiteral(x: unknown): x is string {
  return typeof x === "string" && x.length >= 2 && x.startsWith("'") && x.endsWith("'");
}

/** Items of an InvisibleOperator that are units or spacing (dropped). */
function isDroppable(x: unknown): boolean {
  x = unwrap(x);
  if (x === "Nothing") return true;
  if (isTextLiteral(x)) return isUnitPhrase(x.slice(1, -1));
  if (Array.isArray(x)) {
    const h = x[0];
    if (h === "__unit__" || h === "HorizontalSpacing") return true;
    if (h === "Power" && x.length === 3) return isDroppable(x[1]);
  }
  return false;
}

const TRIG = new Map<string, ApplyOp>([
  ["Sin", "sin"],
  ["Cos", "cos"],
  ["Tan", "tan"],
  ["Cot", "cot"],
  ["Sec", "sec"],
  ["Csc", "csc"],
  ["Arcsin", "asin"],
  ["Arccos", "acos"],
  ["Arctan", "atan"],
  ["Arccot", "acot"],
  ["Arcsec", "asec"],
  ["Arccsc", "acsc"],
  ["Sinh", "sinh"],
  ["Cosh", "cosh"],
  ["Tanh", "tanh"],
]);

const SIMPLE = new Map<string, ApplyOp>([
  ["Sqrt", "sqrt"],
  ["Exp", "exp"],
  ["Ln", "ln"],
  ["Abs", "abs"],
  ["Floor", "floor"],
  ["Ceil", "ceil"],
  ["Ceiling", "ceil"],
  ["Round", "round"],
  ["Factorial", "factorial"],
  ["Binomial", "binomial"],
  ["Choose", "binomial"],
  ["GCD", "gcd"],
  ["LCM", "lcm"],
  ["Max", "max"],
  ["Min", "min"],
  ["Mod", "mod"],
  ["Sign", "sign"],
]);

const RELATIONS = new Set(["Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual"]);

function bracketsOf(meta: unknown): "()" | "[]" | "<>" | "" {
  const m = unwrap(meta);
  if (typeof m !== "string") return "()";
  const s = m.replace(/^'|'$/g, "");
  if (s === "" || s === "," || s === ";") return "";
  if (s.startsWith("[") && s.endsWith("]")) return "[]";
  if (s.startsWith("(") && s.endsWith(")")) return "()";
  if (s.startsWith("\\langle") || s.startsWith("<")) return "<>";
  return "()";
}

function stableKey(x: unknown): string {
  try {
    return JSON.stringify(x) ?? "null";
  } catch {
    return "?";
  }
}

function convert(raw: unknown, depth: number, ctx: Ctx, inTrig: boolean): AnswerNode {
  if (depth > MAX_TREE_DEPTH || ++ctx.nodes > ctx.maxNodes) throw new ParseFailure("too-large");
  ctx.budget?.tick();
  const x = unwrap(raw);
  const sub = (y: unknown, trig = inTrig) => convert(y, depth + 1, ctx, trig);

  if (typeof x === "number") {
    if (Number.isSafeInteger(x)) return { kind: "number", n: BigInt(x), d: 1n };
    if (Number.isFinite(x)) {
      const r = parseDecimal(String(x));
      const dec = /^[+-]?\d*\.(\d+)$/.exec(String(x));
      if (r) return dec ? decimalNum(r, dec[1].length) : num(r);
    }
    if (x === Infinity) return { kind: "constant", name: "infinity" };
    if (x === -Infinity) {
      return { kind: "apply", op: "neg", args: [{ kind: "constant", name: "infinity" }] };
    }
    return { kind: "opaque", key: "NaN" };
  }
  if (isNumObj(x)) {
    const s = x.num.trim();
    if (/^\+?infinity$/i.test(s)) return { kind: "constant", name: "infinity" };
    if (/^-infinity$/i.test(s)) {
      return { kind: "apply", op: "neg", args: [{ kind: "constant", name: "infinity" }] };
    }
    const r = parseDecimal(s);
    if (r === null) return { kind: "opaque", key: `num:${s}` };
    const dec = /^[+-]?\d*\.(\d+)$/.exec(s);
    return dec ? decimalNum(r, dec[1].length) : num(r);
  }
  if (typeof x === "string") return convertSymbol(x);
  if (!Array.isArray(x) || x.length === 0) throw new ParseFailure("syntax");

  const head = unwrap(x[0]);
  const args = x.slice(1);
  if (typeof head !== "string") return { kind: "opaque", key: stableKey(x) };

  switch (head) {
    case "Error":
      throw new ParseFailure("syntax");
    case "Annotated":
    case "Hold":
      return args.length > 0 ? sub(args[0]) : fail();
    case "Delimiter": {
      const body = unwrap(args[0]);
      const brackets = bracketsOf(args[1]);
      if (body === undefined || body === "Nothing") return { kind: "tuple", brackets, items: [] };
      if (Array.isArray(body) && body[0] === "Sequence") {
        const items = body.slice(1).map((y) => sub(y));
        if (items.length === 1) return items[0];
        return { kind: "tuple", brackets, items };
      }
      return sub(body);
    }
    case "Sequence": {
      if (args.length === 0) fail();
      if (args.length === 1) return sub(args[0]);
      return { kind: "tuple", brackets: "", items: args.map((y) => sub(y)) };
    }
    case "List":
      return { kind: "tuple", brackets: "[]", items: args.map((y) => sub(y)) };
    case "Tuple":
    case "Pair":
      return { kind: "tuple", brackets: "()", items: args.map((y) => sub(y)) };
    case "AngleBracket":
      return { kind: "tuple", brackets: "<>", items: args.map((y) => sub(y)) };
    case "Colon":
      return { kind: "tuple", brackets: ":", items: args.map((y) => sub(y)) };
    case "Matrix": {
      const body = unwrap(args[0]);
      if (!Array.isArray(body) || body[0] !== "List") return opaque(x);
      const rows = body.slice(1).map((row) => {
        const r = unwrap(row);
        if (!Array.isArray(r) || r[0] !== "List") return [sub(r)];
        return r.slice(1).map((y) => sub(y));
      });
      if (rows.length === 0 || rows.some((r) => r.length !== rows[0].length)) return opaque(x);
      return { kind: "matrix", rows };
    }
    case "Set": {
      if (
        args.some((a) => Array.isArray(unwrap(a)) && (unwrap(a) as unknown[])[0] === "Condition")
      ) {
        return opaque(x);
      }
      return { kind: "set", items: args.map((y) => sub(y)) };
    }
    case "Interval": {
      if (args.length !== 2) return opaque(x);
      const [lo, loOpen] = endpoint(args[0]);
      const [hi, hiOpen] = endpoint(args[1]);
      return { kind: "interval", lo: sub(lo), hi: sub(hi), loOpen, hiOpen };
    }
    case "Union":
      return { kind: "union", items: args.map((y) => sub(y)) };
    case "Element":
      if (args.length !== 2) return opaque(x);
      return { kind: "element", variable: sub(args[0]), set: sub(args[1]) };
    case "Measurement":
    case "PlusMinus":
      if (args.length !== 2) return opaque(x);
      return { kind: "pm", center: sub(args[0]), delta: sub(args[1]) };
    case "BaseForm": {
      const v = rawInteger(args[0]);
      const b = rawInteger(args[1]);
      if (v === null || b === null || b < 2n || b > 36n) return opaque(x);
      return { kind: "base", value: v, base: Number(b) };
    }
    case "And":
    case "Or": {
      // "a or b or c" parses as Or(a, Or(b, c)): one list of three items.
      const flat = flattenHead(head, args);
      const items = flat.map((y) => sub(y));
      if (items.length > 0 && items.every(isLogical)) {
        return { kind: head === "And" ? "and" : "or", items };
      }
      // "1 or 2" lists alternatives: a set, unordered ("2 or 1" is "1, 2"); "1 and 2"
      // stays a bare list.
      if (head === "Or" && items.length > 1) return { kind: "set", items };
      return { kind: "tuple", brackets: "", items };
    }
    case "Approx":
      return relation("Equal", args, depth, ctx, inTrig);
    case "Add":
      return { kind: "apply", op: "add", args: args.map((y) => sub(y)) };
    case "Subtract":
      if (args.length === 1) return negate(sub(args[0]));
      if (args.length !== 2) return opaque(x);
      return { kind: "apply", op: "add", args: [sub(args[0]), negate(sub(args[1]))] };
    case "Negate":
      if (args.length !== 1) return opaque(x);
      return negate(sub(args[0]));
    case "Multiply":
      return { kind: "apply", op: "mul", args: args.map((y) => sub(y)) };
    case "InvisibleOperator":
      return invisible(args, x, depth, ctx, inTrig);
    case "Divide":
    case "Rational":
      if (args.length !== 2) return opaque(x);
      return { kind: "apply", op: "div", args: [sub(args[0]), sub(args[1])] };
    case "Power": {
      if (args.length !== 2) return opaque(x);
      const base = sub(args[0]);
      const exp = sub(args[1]);
      if (base.kind === "constant" && base.name === "e") {
        return { kind: "apply", op: "exp", args: [exp] };
      }
      return { kind: "apply", op: "pow", args: [base, exp] };
    }
    case "Square":
      return { kind: "apply", op: "pow", args: [sub(args[0]), { kind: "number", n: 2n, d: 1n }] };
    case "Root":
      if (args.length !== 2) return opaque(x);
      return { kind: "apply", op: "root", args: [sub(args[0]), sub(args[1])] };
    case "Log": {
      if (args.length === 1) {
        return {
          kind: "apply",
          op: "log",
          args: [sub(args[0]), { kind: "number", n: 10n, d: 1n }],
        };
      }
      if (args.length === 2) {
        return { kind: "apply", op: "log", args: [sub(args[0]), sub(args[1])] };
      }
      return opaque(x);
    }
    case "Lb":
      return { kind: "apply", op: "log", args: [sub(args[0]), { kind: "number", n: 2n, d: 1n }] };
    case "Lg":
      return { kind: "apply", op: "log", args: [sub(args[0]), { kind: "number", n: 10n, d: 1n }] };
    case "Degrees": {
      if (args.length !== 1) return opaque(x);
      const v = sub(args[0]);
      return inTrig ? { kind: "apply", op: "deg", args: [v] } : v;
    }
    case "Complex":
      if (args.length !== 2) return opaque(x);
      return {
        kind: "apply",
        op: "add",
        args: [sub(args[0]), {
          kind: "apply",
          op: "mul",
          args: [sub(args[1]), { kind: "constant", name: "i" }],
        }],
      };
    case "__unit__":
      return { kind: "text", text: stableKey(args[0]).replace(/"/g, "") };
    case "Subscript":
    case "Prime":
      return { kind: "symbol", name: `${head}:${stableKey(args)}` };
  }
  if (RELATIONS.has(head)) return relation(head, args, depth, ctx, inTrig);
  const trig = TRIG.get(head);
  if (trig) return { kind: "apply", op: trig, args: args.map((y) => sub(y, true)) };
  const simple = SIMPLE.get(head);
  if (simple) return { kind: "apply", op: simple, args: args.map((y) => sub(y)) };
  return opaque(x);
}

function fail(): never {
  throw new ParseFailure("empty");
}

function opaque(x: unknown): AnswerNode {
  return { kind: "opaque", key: stableKey(x) };
}

function isLogical(n: AnswerNode): boolean {
  return n.kind === "relation" || n.kind === "and" || n.kind === "or";
}

function negate(n: AnswerNode): AnswerNode {
  if (n.kind === "number") {
    const out = { kind: "number" as const, n: -n.n, d: n.d };
    return n.decimals === undefined ? out : decimalNum(out, n.decimals);
  }
  return { kind: "apply", op: "neg", args: [n] };
}

function endpoint(raw: unknown): [unknown, boolean] {
  const x = unwrap(raw);
  if (Array.isArray(x) && x[0] === "Open" && x.length === 2) return [x[1], true];
  if (Array.isArray(x) && x[0] === "Closed" && x.length === 2) return [x[1], false];
  return [x, false];
}

function convertSymbol(x: string): AnswerNode {
  if (isTextLiteral(x)) return { kind: "text", text: x.slice(1, -1) };
  switch (x) {
    case "Pi":
      return { kind: "constant", name: "pi" };
    case "ExponentialE":
    case "e":
      return { kind: "constant", name: "e" };
    case "ImaginaryUnit":
    case "i":
      return { kind: "constant", name: "i" };
    case "PositiveInfinity":
      return { kind: "constant", name: "infinity" };
    case "NegativeInfinity":
      return { kind: "apply", op: "neg", args: [{ kind: "constant", name: "infinity" }] };
    case "EmptySet":
      return { kind: "set", items: [] };
    case "RealNumbers":
      return {
        kind: "interval",
        lo: { kind: "apply", op: "neg", args: [{ kind: "constant", name: "infinity" }] },
        hi: { kind: "constant", name: "infinity" },
        loOpen: true,
        hiOpen: true,
      };
    case "Half":
      return { kind: "number", n: 1n, d: 2n };
    case "Nothing":
      return fail();
    case "ContinuationPlaceholder":
    case "ComplexInfinity":
    case "NaN":
      return { kind: "opaque", key: x };
    // The parser maps some Greek letters to constants; as answers they are variables.
    case "GoldenRatio":
      return { kind: "symbol", name: "varphi" };
    case "EulerGamma":
      return { kind: "symbol", name: "gamma" };
  }
  return { kind: "symbol", name: x };
}

function relation(
  head: string,
  args: unknown[],
  depth: number,
  ctx: Ctx,
  inTrig: boolean,
): AnswerNode {
  if (args.length < 2) return opaque([head, ...args]);
  const op: "=" | "<" | "<=" | "!=" = head === "Equal"
    ? "="
    : head === "NotEqual"
    ? "!="
    : head === "Less" || head === "Greater"
    ? "<"
    : "<=";
  const flip = head === "Greater" || head === "GreaterEqual";
  const make = (a: AnswerNode, b: AnswerNode): AnswerNode =>
    flip ? { kind: "relation", op, lhs: b, rhs: a } : { kind: "relation", op, lhs: a, rhs: b };
  const sub = (y: unknown) => convert(y, depth + 1, ctx, inTrig);

  // Chains: the parser nests "1 < x \le 3" as LessEqual(Less(1, x), 3).
  const first = unwrap(args[0]);
  if (
    args.length === 2 && Array.isArray(first) && typeof first[0] === "string" &&
    RELATIONS.has(first[0]) && first.length === 3 && head !== "Equal" && head !== "NotEqual" &&
    first[0] !== "Equal" && first[0] !== "NotEqual"
  ) {
    const left = sub(first);
    const middle = sub(first[2]);
    const items = left.kind === "and" ? [...left.items] : [left];
    items.push(make(middle, sub(args[1])));
    return { kind: "and", items };
  }
  const nodes = args.map(sub);
  if (nodes.length === 2) return make(nodes[0], nodes[1]);
  const items: AnswerNode[] = [];
  for (let i = 0; i + 1 < nodes.length; i++) items.push(make(nodes[i], nodes[i + 1]));
  return { kind: "and", items };
}

function invisible(
  args: unknown[],
  whole: unknown,
  depth: number,
  ctx: Ctx,
  inTrig: boolean,
): AnswerNode {
  const kept = args.filter((a) => !isDroppable(a));
  if (kept.length === 0) return fail();
  const sub = (y: unknown) => convert(y, depth + 1, ctx, inTrig);
  if (kept.length === 1) return sub(kept[0]);
  // Mixed number: "1\frac{4}{5}" = 9/5, "-1\frac12" = -3/2.
  if (kept.length === 2) {
    const whole = rawInteger(kept[0]);
    const frac = unwrap(kept[1]);
    if (whole !== null && Array.isArray(frac) && frac[0] === "Divide" && frac.length === 3) {
      const p = rawInteger(frac[1]);
      const q = rawInteger(frac[2]);
      if (p !== null && q !== null && p > 0n && q > p) {
        const sign = whole < 0n || (whole === 0n && isNegatedZero(kept[0])) ? -1n : 1n;
        const absWhole = whole < 0n ? -whole : whole;
        const r = rat(sign * (absWhole * q + p), q);
        if (r) return num(r);
      }
    }
  }
  if (kept.some((a) => isTextLiteral(unwrap(a)))) return opaque(whole);
  return { kind: "apply", op: "mul", args: kept.map(sub) };
}

function isNegatedZero(x: unknown): boolean {
  const u = unwrap(x);
  return Array.isArray(u) && u[0] === "Negate";
}

/** The arguments of nested `head` expressions, flattened: Or(a, Or(b, c)) → [a, b, c]. */
function flattenHead(head: string, args: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const y of args) {
    if (Array.isArray(y) && y.length > 1 && unwrap(y[0]) === head) {
      out.push(...flattenHead(head, y.slice(1)));
    } else out.push(y);
  }
  return out;
}
