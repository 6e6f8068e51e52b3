// Copyright 2025 the halo authors. MIT license.
/**
 * Shared types of the verifier.
 *
 * @module
 */

/**
 * Why a verification came out as it did.
 *
 * Positive: `match-string` (identical after normalisation), `match-exact` (equal exact
 * rationals / Gaussian rationals), `match-rounded` (a decimal that is the exact rational
 * gold correctly rounded to the digits written, at least 4 significant digits),
 * `match-numeric` (closed forms that float64 evaluation with tracked rounding error cannot
 * separate — a numeric, not an exact, decision; see `mathEqual`), `match-random-points` (expressions with variables agree at seeded
 * random points), `match-structure` (same structure, e.g. two empty sets or identical
 * un-evaluable terms), `match-text` (same words, case and punctuation ignored).
 *
 * Negative: `mismatch`, `undecided` (the values could neither be proved equal nor
 * separated: float64 under- or overflowed, as for `\frac{1}{2004!}` against
 * `\frac{1}{2006!}`, or its rounding error was too large; scored as not equal),
 * `no-answer` (no extractor matched), `response-unparseable`, `too-large` (size or nesting
 * guard), `timeout` (work or time budget spent), `invalid-input`, `internal-error`.
 *
 * Skip (`correct: null`): `gold-unparseable`.
 */
export type VerifyReason =
  | "match-string"
  | "match-exact"
  | "match-rounded"
  | "match-numeric"
  | "match-random-points"
  | "match-structure"
  | "match-text"
  | "mismatch"
  | "undecided"
  | "no-answer"
  | "response-unparseable"
  | "too-large"
  | "timeout"
  | "invalid-input"
  | "internal-error"
  | "gold-unparseable";

/** Verification modes: see `verify`. */
export type VerifyMode = "reward" | "eval";

/**
 * Options of the equivalence check, shared by `mathEqual`, `prepareGold` and `verify`.
 * Every tolerance is stated with its default.
 */
export interface EquivalenceOptions {
  /**
   * Wall-clock budget per call in milliseconds, a safety net against runaway work: it is
   * consulted only once the call has counted 20,000 steps (see `budgetSteps`), which no
   * MATH-500 or GSM8K answer comes near, so below that the clock is never read and the
   * decision cannot depend on load. When it is spent the answer is "not equal" with
   * reason `timeout`; `Infinity` disables it. Default: none (`Infinity`) for `verify` and
   * the rewards in `"reward"` mode, so that a reward never depends on the machine's speed
   * or load (only `budgetSteps` applies there), and `100` in `"eval"` mode and for
   * `mathEqual`. `prepareGold` (and the gold part of `verify`) ignores it: a gold is
   * prepared under `budgetSteps` only. Setting it in reward mode makes the reward depend
   * on the clock again (for answers past 20,000 steps): do that only outside training.
   */
  budgetMs?: number;
  /**
   * Work budget per call in counted steps (default `200000`): every recursion and loop of
   * the comparison counts one step and the LaTeX parser one per input character. When it
   * is spent the answer is "not equal" with reason `timeout`. The count depends only on
   * the inputs, so the decision is the same on every machine; no MATH-500 or GSM8K answer
   * needs more than a few hundred steps.
   */
  budgetSteps?: number;
  /**
   * Relative tolerance of the numeric comparison of closed forms that are not both exact
   * rationals (default `1e-9`). Values are evaluated in float64 with a running bound on
   * their rounding error: they are equal (`match-numeric`) only when they are no further
   * apart than that bound AND the bound is within `relTol` of their magnitude, so
   * `\sqrt{2}/2` equals `1/\sqrt{2}` but `\sqrt{2}+10^{-12}` does not equal `\sqrt{2}`
   * (float64 separates them). A value that under- or overflows (`e^{-1000}`,
   * `\frac{1}{2004!}`) is never compared numerically (`undecided`, not equal). The one
   * place where `relTol` is a real tolerance: a decimal written against an irrational
   * value (`3.141592654` vs `\pi`) is equal when within `relTol`, so about 10 significant
   * digits are needed. Two exact rationals (integers, terminating or repeating decimals,
   * fractions) are always compared exactly (see `roundedDigits` for rounded decimals).
   */
  relTol?: number;
  /**
   * Rounded decimals: a decimal equals an exact rational whose decimal expansion does not
   * terminate when it is that rational correctly rounded to the decimals written and has
   * at least this many significant digits (default `4`): `0.1667` = `\frac16`,
   * `1.4286` = `\frac{10}{7}`, `142.857` = `\frac{1000}{7}`, but not `0.333` (3 digits),
   * `0.1666` (truncated) or `0.13` for `\frac18` (a terminating gold must be exact).
   * Applies inside tuples, sets, intervals and matrices. `Infinity` turns the rule off.
   */
  roundedDigits?: number;
  /**
   * Also read a plain number with a percent sign as its proportion (`25\%` = `0.25`, in
   * either argument) — besides its number (`25\%` = `25`, always). Default `true` for
   * `mathEqual` and in `"eval"` mode, `false` in `"reward"` mode: there `2\%` would match
   * two different golds (2 and 0.02), a hedge a policy could learn.
   */
  percentAsProportion?: boolean;
  /**
   * Zero: two values that are both within their float64 rounding error of 0, with that
   * error below this bound, are equal, e.g. `\sin\pi` (≈ 1.2e-16) and `0` (default
   * `1e-12`). A small value that float64 represents exactly enough is not zero:
   * `e^{-40}` ≠ `0`.
   */
  absTol?: number;
  /**
   * Relative tolerance at the random points used for expressions with variables
   * (default `1e-8`; absolute `1e-10`).
   */
  pointRelTol?: number;
  /** Seed of the random points (default `0x5eed`); the points never use `Math.random`. */
  seed?: number;
  /** Number of random points (default `6`, at least 3 must be defined). */
  points?: number;
  /** Longest normalised answer handed to the parser (default `512` characters). */
  maxLength?: number;
  /** Deepest bracket nesting handed to the parser (default `24`). */
  maxDepth?: number;
  /**
   * Compare bare comma lists (`1, 2`) as unordered. Default `false`: like Hendrycks'
   * checker, `10, 4, -2` and `4, 10, -2` differ. Tuples in parentheses are always
   * ordered and `\{…\}` sets always unordered.
   */
  unorderedLists?: boolean;
}
