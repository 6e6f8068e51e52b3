// Copyright 2025 the halo authors. MIT license.
/**
 * Answer verification for RL from verifiable rewards and for evaluation.
 *
 * Pipeline: {@linkcode extractAnswer} (last `\boxed{}` — or several adjacent boxes as one
 * list — / `Answer:` / `####` / "The final answer is", plus LaTeX blocks and the last
 * line in `eval` mode; reports the extractor and the marker offset) →
 * {@linkcode normalizeAnswer} → {@linkcode parseAnswer} (LaTeX → MathJSON with the
 * Compute Engine's standalone LaTeX parser, then a small typed tree) → equivalence:
 * identical strings, exact rationals and Gaussian rationals (bigint), rounded decimals
 * against exact rationals, closed forms numerically in float64 with tracked rounding
 * error, expressions with variables at 6 seeded random points, and structural rules for
 * tuples (ordered), sets (unordered), intervals, unions, `\pm`, equations, inequalities,
 * matrices, choice letters, text and numbers in a base. Two equations (or inequalities) are
 * equal when (lhs₁ − rhs₁)/(lhs₂ − rhs₂) is the same constant at the random points and moving
 * each variable alone moves both differences in that ratio (so `y = 10^{-9}x` and
 * `y = 2\cdot 10^{-9}x` differ), within `pointRelTol` and the tracked rounding error.
 *
 * ## Accepted answer forms (issue #13), in both modes unless said otherwise
 *
 * - Several answers: adjacent boxes `\boxed{4}, \boxed{9}` / `\boxed{4} and \boxed{9}`
 *   are the list `4, 9` (boxes separated by other words: the last one counts);
 *   `(1,4) and (4,1)`, `x = -2 or x = 7`, `\text{ and }`, `\quad` and `;` separate list
 *   items.
 * - Solution sets compare unordered: `\{…\}` against a bare list, `x = a or x = b`,
 *   `a or b or c` (also boxes joined by "or": `\boxed{-2} or \boxed{1}`), a list of two
 *   or more points `(5,2,1),(2,5,1)`, a list with `\pm`. A bare list of
 *   values stays ordered (`10, 4, -2` ≠ `4, 10, -2`, the Hendrycks rule; option
 *   `unorderedLists`), and so do the items of a tuple.
 * - Labelled answers: `(a,b)=(4,-1)` is `(4,-1)`; `b_2 = 5, b_7 = 11` matches the same
 *   labels in any order; `y = 9`, `m+n = 31`, `P(A) = \frac16`, `AB = 5\sqrt2` are their
 *   value (the label has no numbers: `2x = 6` stays an equation); a chain
 *   `y = 3\cdot 4 - 3 = 9` is its last side; `\frac27 \approx 0.29` is its exact side.
 * - Number formats: thousands separators (`2,000`, `10,\!080`, `12\,500`, also with
 *   units and currency: `2,000.5 kg`, `€1,250`, `\$1,250.75`, `12,500 cm^2`); a decimal
 *   comma only next to a currency with 1–2 decimals (`3,50 €`); a bare `1,5` is a list,
 *   never 1.5. A percentage equals its number (`25\%` = `25`) and, in eval mode and for
 *   `mathEqual`, its proportion (`25\%` = `0.25`, either side; not in reward mode, where
 *   `2\%` would match both 2 and 0.02); a plain `25` is not `0.25`.
 * - Rounded decimals (option `roundedDigits`, default 4 significant digits): a decimal
 *   equals an exact rational with a non-terminating expansion when it is that rational
 *   correctly rounded to the decimals written (`0.1667` = `\frac16`, `1.4286` =
 *   `\frac{10}{7}`), inside tuples, intervals and matrices too. Refused: truncations
 *   (`0.1666`), fewer digits (`0.333`), a terminating gold (`0.13` for `\frac18`), and an
 *   irrational gold unless within `relTol` (about 10 digits: `3.141592654` = `\pi`,
 *   `3.14159` ≠ `\pi`).
 * - Matrices: `pmatrix`, `bmatrix`, `Bmatrix`, `vmatrix` (read as the matrix, not its
 *   determinant), `matrix`, `smallmatrix` and `\begin{array}{…}` in `\left[…\right]` or
 *   `\left(…\right)` are the same matrix; the shape must match.
 * - Intervals and inequalities, in both directions: `t \in [0,4]` = `0 \le t \le 4` =
 *   `[0,4]`; `x \le -2 or x \ge 2` = `(-\infty,-2]\cup[2,\infty)`; bounds on `|L|` with L
 *   linear in one variable (`2 \le |w| \le 5` = `[-5,-2]\cup[2,5]`, `|x-1| < 3` =
 *   `(-2,4)`); unions with exact ends are merged (`[0,2]\cup[2,5]` = `[0,5]`, but
 *   `(0,9)\cup(9,36)` ≠ `(0,36)`). Open and closed ends must match (except at ±∞).
 * - Extraction from long solutions (`eval` mode): "Final answer: the smallest k is 17."
 *   (also in reward mode, after its `Answer:` marker), the last `$…$` formula
 *   (`$c = \sqrt{3^2+4^2} = 5$` → `5`), `\boxed` inside `$$…$$` (any mode); "the answer
 *   is 13, where $x$ is …" is read before any formula, and "$5 for apples and $3" is
 *   currency, not a formula.
 * - Markers: `\boxed` first (a box inside a box is the answer: `\boxed{\boxed{7}}` = `7`);
 *   then of `Answer:` (as verl's unanchored regex), `####` and "the final answer is" the
 *   one latest in the response, whatever its type ("The final answer is 3 … Answer: 7"
 *   answers 7; "Let me check my answer: 72 … #### 70" answers 70).
 * - Choice letters: `\text{(D)}`, `(D)`, `D)`, `\textbf{(D)} 17` are choice D.
 * - Nouns of the problem (option `problem`, the problem text): for a plain-number gold, a
 *   plain number followed by at most three letter-only words is that number when every
 *   word occurs in the problem's prose (up to singular/plural: apple/apples, puppy/puppies)
 *   and none changes the value or meaning — comparatives, operations, multipliers, fractions
 *   and ordinals, number words, true/false/not, rates ("less", "times", "dozen", "pairs",
 *   "sixths", "per", …) are never dropped: `#### 12 bananas` is 12 for a problem about
 *   bananas; `#### 12 dozen` or `#### 12 less` never is. Without `problem`, words after a
 *   number other than units stay part of the answer.
 *
 * ## Deliberate refusals (scored as not equal)
 *
 * Equations that need solving (`x^2 = 4` against `\pm 2`), other inequalities than
 * linear bounds on one variable or on `|L|`, an ambiguous decimal comma (`1,5`), a
 * percentage that needs the problem text to decide, unordered bare value lists, values
 * that float64 under- or overflows (reason `undecided`: `\frac{1}{2004!}` vs
 * `\frac{1}{2006!}`, `e^{-1000}` vs `e^{-1001}`), closed forms that float64 separates
 * however close they are (`\sqrt2 + 10^{-12}` ≠ `\sqrt2`).
 *
 * ## Tolerance policy
 *
 * Exact rationals compare exactly. Closed forms are evaluated in float64 with a running
 * rounding-error bound; they are equal (reason `match-numeric`, a numeric, not an exact,
 * decision) only when they are no further apart than that bound and the bound is within
 * `relTol` (1e-9) of their size, and two values count as 0 only when both are within
 * their rounding error (≤ `absTol`, 1e-12) of 0 (`\sin\pi` = `0`, `e^{-40}` ≠ `0`).
 * A value that under- or overflows, or a sum in which a term known to be non-zero is
 * lost in rounding (`\sqrt2 + 10^{-20}`), is never compared numerically: reason
 * `undecided`, not equal. What remains undetectable is two different closed forms whose
 * float64 values agree within their rounding error (about 1e-16 relative) without any
 * such visible loss. Random points (and the ratio test of equations) use `pointRelTol`
 * the same way and skip points where a value is lost.
 *
 * ## Guarantees
 *
 * {@linkcode verify}, {@linkcode mathEqual} and the rewards never throw and are pure: no
 * global mutable state, no `Math.random`, no `eval`. Their work is bounded by a counted
 * step budget (`budgetSteps`, default 200000; a MATH-500 or GSM8K answer needs at most a
 * few hundred) — in reward mode by that alone, so the same input always gets the same
 * reward, on any machine and under any load (bit-exact resume of RL runs). Eval mode and
 * `mathEqual` also keep a wall-clock deadline (`budgetMs`, default 100 ms) against
 * runaway work, consulted only once a call has counted 20,000 steps (measured: valid
 * answers use at most about a thousand), so ordinary answers are decided the same under
 * any load there too; a gold is never under the deadline (a timed-out gold would skip its
 * whole problem). A spent budget is reason `timeout`. The one non-interruptible step, the LaTeX parser, only sees
 * inputs of at most 512 characters and nesting depth 24, and is charged one step per
 * character. Only the Compute Engine's stateless LaTeX parser is used, not a shared
 * `ComputeEngine`, whose parsing declares symbols in the engine (state that would leak
 * between calls) and whose simplification cannot be interrupted.
 *
 * An unusable gold gives `correct: null` (skip the sample), never 0.
 *
 * ```ts
 * import { verify } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(verify("Thus \\boxed{\\dfrac{1}{2}}.", "0.5").correct, true);
 * assert.equal(verify("\\boxed{4}, \\boxed{9}", "\\{9, 4\\}").correct, true);
 * assert.equal(verify("\\boxed{0.1667}", "\\frac16").reason, "match-rounded");
 * assert.equal(verify("\\boxed{e^{-1000}}", "e^{-1001}").reason, "undecided");
 * ```
 *
 * @module
 */

export * from "./extract_answer.ts";
export * from "./normalize_answer.ts";
export * from "./parse_answer.ts";
export * from "./math_equal.ts";
export { type PreparedGold, prepareGold, type PrepareGoldOptions } from "./prepare_gold.ts";
export { stripProblemNouns } from "./problem_nouns.ts";
export * from "./verify.ts";
export * from "./reward.ts";
export * from "./types.ts";
