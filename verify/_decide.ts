// Copyright 2025 the halo authors. MIT license.
// Internal: the decision procedure shared by mathEqual() and verify().
//   1. identical normalised strings            → match-string
//   2. both plain numeric literals             → exact rational comparison (no parser)
//   3. parse (size-guarded), compare trees     → exact / numeric / random points / structure

import { type AnswerNode, parseAnswer, type ParseAnswerResult } from "./parse_answer.ts";
import { Budget, BudgetExceeded, DEFAULT_BUDGET_STEPS } from "./_budget.ts";
import {
  type CompareContext,
  compareNodes,
  looseText,
  type Method,
  roundedMatch,
} from "./_compare.ts";
import { parseDecimal, rat, type Rational } from "./_rational.ts";
import type { EquivalenceOptions, VerifyReason } from "./types.ts";

/** One side of a comparison: its normalised text and, when known, its parse. */
export interface Side {
  normalized: string;
  parsed?: ParseAnswerResult;
  literal?: Rational | null;
}

export interface Decision {
  equal: boolean;
  reason: VerifyReason;
}

/** Exact value of a plain numeric literal ("-12", "0.5", "3/4", "\frac{3}{4}"), else null. */
export function literalValue(s: string): Rational | null {
  if (s.length > 64) return null;
  if (/^[-+]?(?:\d+\.?\d*|\.\d+)$/.test(s)) return parseDecimal(s);
  const m = /^([-+]?)(?:(\d+)\/(\d+)|\\frac\{(\d+)\}\{(\d+)\})$/.exec(s);
  if (m === null) return null;
  const n = BigInt(m[2] ?? m[4]);
  const d = BigInt(m[3] ?? m[5]);
  return rat(m[1] === "-" ? -n : n, d);
}

/**
 * The budget of one call: counted steps always; a wall-clock deadline only when
 * `budgetMs` is given or, by default, outside reward mode (see `budgetMs`), and consulted
 * only past `CLOCK_AFTER_STEPS` counted steps (see verify/_budget.ts).
 */
export function makeBudget(options: EquivalenceOptions, mode: "reward" | "eval"): Budget {
  const ms = options.budgetMs ?? (mode === "reward" ? Infinity : 100);
  const steps = options.budgetSteps ?? DEFAULT_BUDGET_STEPS;
  return new Budget(ms, undefined, Number.isNaN(steps) ? DEFAULT_BUDGET_STEPS : steps);
}

export function parseSide(side: Side, options: EquivalenceOptions, budget: Budget) {
  return side.parsed ?? parseAnswer(side.normalized, {
    maxLength: options.maxLength,
    maxDepth: options.maxDepth,
    budget,
  });
}

export function makeContext(options: EquivalenceOptions, budget: Budget): CompareContext {
  return {
    budget,
    relTol: options.relTol ?? 1e-9,
    absTol: options.absTol ?? 1e-12,
    pointRelTol: options.pointRelTol ?? 1e-8,
    pointAbsTol: 1e-10,
    seed: options.seed ?? 0x5eed,
    points: Math.max(3, Math.min(64, options.points ?? 6)),
    unorderedLists: options.unorderedLists ?? false,
    methods: new Set<Method>(),
    roundedDigits: options.roundedDigits ?? 4,
    undecided: false,
  };
}

/**
 * Decision for two plain numeric literals: exact equality, else the rounding rule when
 * exactly one of them is written as a decimal (see `roundedDigits`).
 */
export function literalDecision(
  textA: string,
  a: Rational,
  textB: string,
  b: Rational,
  options: EquivalenceOptions,
): Decision {
  if (a.n === b.n && a.d === b.d) return { equal: true, reason: "match-exact" };
  const digits = options.roundedDigits ?? 4;
  if (Number.isFinite(digits)) {
    const da = DECIMAL.exec(textA);
    const db = DECIMAL.exec(textB);
    if (
      (da && !db && roundedMatch({ v: a, decimals: da[1].length }, b, digits)) ||
      (db && !da && roundedMatch({ v: b, decimals: db[1].length }, a, digits))
    ) {
      return { equal: true, reason: "match-rounded" };
    }
  }
  return { equal: false, reason: "mismatch" };
}

const DECIMAL = /^[-+]?\d*\.(\d+)$/;

const PERCENT = /\d\s*(?:\\%|%|\\text\{\s*percent\s*\}|percent)[\s.}$]*$/;

/**
 * Percentages in both directions: when exactly one raw answer is a plain number written
 * with a percent sign, it also stands for that number / 100 (`25\%` = `0.25`); `25\%` =
 * `25` holds anyway (units are dropped). Only plain numeric literals; null when the rule
 * does not apply.
 */
export function percentDecision(
  rawA: string,
  normA: string,
  rawB: string,
  normB: string,
): Decision | null {
  const pa = PERCENT.test(rawA);
  const pb = PERCENT.test(rawB);
  if (pa === pb) return null;
  const la = literalValue(normA);
  const lb = literalValue(normB);
  if (la === null || lb === null) return null;
  const [p, other] = pa ? [la, lb] : [lb, la];
  const scaled = rat(p.n, p.d * 100n);
  if (scaled && scaled.n === other.n && scaled.d === other.d) {
    return { equal: true, reason: "match-exact" };
  }
  return null;
}

/** The least certain method that a positive decision relied on. */
function reasonOf(methods: ReadonlySet<Method>): VerifyReason {
  if (methods.has("random-points")) return "match-random-points";
  if (methods.has("numeric")) return "match-numeric";
  if (methods.has("rounded")) return "match-rounded";
  if (methods.has("text")) return "match-text";
  if (methods.has("structure")) return "match-structure";
  if (methods.has("exact")) return "match-exact";
  return "match-structure";
}

/**
 * Decides whether `response` and `gold` are the same answer. The gold must already be
 * known to parse (callers check that first). Throws nothing except BudgetExceeded, which
 * callers convert to "timeout".
 */
export function decide(
  response: Side,
  gold: Side & { parsed: ParseAnswerResult & { ok: true } },
  options: EquivalenceOptions,
  budget: Budget,
): Decision {
  if (response.normalized === "") return { equal: false, reason: "no-answer" };
  if (response.normalized === gold.normalized) return { equal: true, reason: "match-string" };

  const la = response.literal !== undefined ? response.literal : literalValue(response.normalized);
  const lb = gold.literal !== undefined ? gold.literal : literalValue(gold.normalized);
  if (la && lb) return literalDecision(response.normalized, la, gold.normalized, lb, options);

  budget.check();
  const parsed = parseSide(response, options, budget);
  if (!parsed.ok) {
    return {
      equal: false,
      reason: parsed.reason === "too-large" ? "too-large" : "response-unparseable",
    };
  }
  return compareParsed(parsed.node, gold.parsed.node, response.normalized, gold.normalized, {
    options,
    budget,
  });
}

export function compareParsed(
  a: AnswerNode,
  b: AnswerNode,
  textA: string,
  textB: string,
  env: { options: EquivalenceOptions; budget: Budget },
): Decision {
  if (a.kind === "text" || b.kind === "text") {
    const la = looseText(textA);
    if (la !== "" && la === looseText(textB)) return { equal: true, reason: "match-text" };
  }
  const ctx = makeContext(env.options, env.budget);
  const equal = compareNodes(a, b, ctx);
  return {
    equal,
    reason: equal ? reasonOf(ctx.methods) : ctx.undecided ? "undecided" : "mismatch",
  };
}

/** Runs `fn`, converting a spent budget into "timeout" and any other error into a reason. */
export function guarded<T extends Decision>(fn: () => T): T | Decision {
  try {
    return fn();
  } catch (e) {
    if (e instanceof BudgetExceeded) return { equal: false, reason: "timeout" };
    if (e instanceof RangeError) return { equal: false, reason: "too-large" };
    return { equal: false, reason: "internal-error" };
  }
}

export { Budget };
