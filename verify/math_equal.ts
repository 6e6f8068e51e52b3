// Copyright 2025 the halo authors. MIT license.
/**
 * Equivalence of two answer strings.
 *
 * @module
 */

import { normalizeAnswer } from "./normalize_answer.ts";
import {
  compareParsed,
  guarded,
  literalDecision,
  literalValue,
  makeBudget,
  parseSide,
  percentDecision,
} from "./_decide.ts";
import type { EquivalenceOptions, VerifyReason } from "./types.ts";

/** Options for {@linkcode mathEqual}. */
export type MathEqualOptions = EquivalenceOptions;

/** Result of {@linkcode mathEqual}. */
export interface MathEqualResult {
  /** Whether the two answers denote the same mathematical object. */
  equal: boolean;
  /** How that was decided (see `VerifyReason`). */
  reason: VerifyReason;
}

/**
 * Decides whether two answers (already extracted, e.g. box contents) are equivalent.
 * Both are normalised, then compared: identical strings; exact rationals (`13.0` = `13`,
 * `0.5` = `\frac12`); a decimal that is an exact rational gold correctly rounded, with at
 * least 4 significant digits (`0.1667` = `\frac16`, reason `match-rounded`); a
 * percentage and its proportion (`25\%` = `0.25`); closed forms numerically in float64
 * with a tracked rounding-error bound (equal only when float64 cannot separate them and
 * the bound is within `relTol` = `1e-9`: `\sqrt2/2` = `1/\sqrt2`, `\sqrt2 + 10^{-12}` ≠
 * `\sqrt2`; a value that under- or overflows is never compared numerically: reason
 * `undecided`); expressions with variables at seeded random points (the same rule with
 * `pointRelTol` = `1e-8`); labelled answers (`(a,b)=(4,-1)`, `m+n=31`, chains and `≈`);
 * solution sets in any order (`x=1 or x=2`, lists of points); tuples in order,
 * sets and `\{…\}` in any order, intervals with their open/closed ends, `\pm`, equations
 * (`x=3` vs `3`, `y=2x+1` vs `2x-y+1=0`), inequalities (`a<2` vs `2>a`, `x>3` vs
 * `(3,\infty)`, `|x-1|<3` vs `(-2,4)`, unions merged), matrices (any environment), choice
 * letters and text. The relation is symmetric. It never throws: an unparseable side is
 * "not equal", a spent budget (counted steps, or the 100 ms deadline, which is consulted
 * only past 20,000 counted steps) is reason `timeout`.
 *
 * Unlike `verify`, an unparseable second argument is not special here; use `verify`
 * for graded rewards.
 *
 * @param a First answer.
 * @param b Second answer.
 * @param options Tolerances, time budget and size guards.
 * @returns `{ equal, reason }`.
 *
 * @example Usage
 * ```ts
 * import { mathEqual } from "./math_equal.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(mathEqual("\\dfrac{1}{2}", "0.5").equal, true);
 * assert.equal(mathEqual("\\{1, 2\\}", "\\{2, 1\\}").equal, true);
 * assert.equal(mathEqual("(x-1)(x+1)", "x^2-1").equal, true);
 * assert.equal(mathEqual("10, 4, -2", "4, 10, -2").equal, false);
 * ```
 */
export function mathEqual(a: string, b: string, options: MathEqualOptions = {}): MathEqualResult {
  const budget = makeBudget(options, "eval");
  const result = guarded((): MathEqualResult => {
    if (typeof a !== "string" || typeof b !== "string") {
      return { equal: false, reason: "invalid-input" };
    }
    const limit = 8 * (options.maxLength ?? 512);
    if (a.length > limit || b.length > limit) return { equal: false, reason: "too-large" };
    const na = normalizeAnswer(a);
    const nb = normalizeAnswer(b);
    if (na === "" || nb === "") return { equal: false, reason: "no-answer" };
    if (na === nb) return { equal: true, reason: "match-string" };
    const la = literalValue(na);
    const lb = literalValue(nb);
    if (la && lb) {
      const d = literalDecision(na, la, nb, lb, options);
      if (d.equal || options.percentAsProportion === false) return d;
      return percentDecision(a, na, b, nb) ?? d;
    }
    const pa = parseSide({ normalized: na }, options, budget);
    const pb = parseSide({ normalized: nb }, options, budget);
    if (!pa.ok || !pb.ok) {
      const tooLarge = (!pa.ok && pa.reason === "too-large") ||
        (!pb.ok && pb.reason === "too-large");
      return { equal: false, reason: tooLarge ? "too-large" : "response-unparseable" };
    }
    return compareParsed(pa.node, pb.node, na, nb, { options, budget });
  });
  return { equal: result.equal, reason: result.reason };
}
