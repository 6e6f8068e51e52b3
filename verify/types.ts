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
 * rationals / Gaussian rationals), `match-numeric` (closed forms equal within the
 * numeric tolerance), `match-random-points` (expressions with variables agree at seeded
 * random points), `match-structure` (same structure, e.g. two empty sets or identical
 * un-evaluable terms), `match-text` (same words, case and punctuation ignored).
 *
 * Negative: `mismatch`, `no-answer` (no extractor matched), `response-unparseable`,
 * `too-large` (size or nesting guard), `timeout` (budget spent), `invalid-input`,
 * `internal-error`.
 *
 * Skip (`correct: null`): `gold-unparseable`.
 */
export type VerifyReason =
  | "match-string"
  | "match-exact"
  | "match-numeric"
  | "match-random-points"
  | "match-structure"
  | "match-text"
  | "mismatch"
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
   * Wall-clock budget per call in milliseconds (default `100`). When it is spent the
   * answer is "not equal" with reason `timeout`. `Infinity` disables it.
   */
  budgetMs?: number;
  /**
   * Relative tolerance for closed-form values that are not both exact rationals, e.g.
   * `\sqrt{2}/2` against `1/\sqrt{2}` (default `1e-9`). Two exact rationals (integers,
   * terminating or repeating decimals, fractions) are always compared exactly, so `0.33`
   * never equals `1/3` and `13.0` always equals `13`.
   */
  relTol?: number;
  /**
   * Absolute tolerance next to zero: two such values that are both smaller than this in
   * magnitude are equal, e.g. `\sin\pi` (≈ 1.2e-16) and `0` (default `1e-12`).
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
