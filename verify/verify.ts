// Copyright 2025 the halo authors. MIT license.
/**
 * Verification of a model response against a gold answer.
 *
 * @module
 */

import { extractAnswer, type ExtractorName } from "./extract_answer.ts";
import { normalizeAnswer } from "./normalize_answer.ts";
import { type PreparedGold, prepareGoldWithin } from "./prepare_gold.ts";
import { decide, guarded, makeBudget, percentDecision } from "./_decide.ts";
import { goldTakesNouns, stripProblemNouns } from "./problem_nouns.ts";
import type { EquivalenceOptions, VerifyMode, VerifyReason } from "./types.ts";

/** Options for {@linkcode verify}. */
export interface VerifyOptions extends EquivalenceOptions {
  /**
   * `"reward"` (default): the answer must sit behind a marker (`\boxed{}`, `Answer:`,
   * `####`, "The final answer is"); a response without one is incorrect (`no-answer`).
   * `"eval"`: like Math-Verify, an answer is also taken from the last LaTeX block
   * (`$…$`, `\(…\)`, `\[…\]`) or the final line, and a gold written as text is
   * extracted the same way.
   */
  mode?: VerifyMode;
  /**
   * Extractor priority (see `ExtractAnswerOptions.extractors`). `last_number` is only
   * honoured in `eval` mode: it must never be used to compute rewards.
   */
  extractors?: readonly ExtractorName[];
  /**
   * The problem text (optional). When given, and the gold is a plain number, an answer
   * written as a plain number followed by at most three letter-only words is also read as
   * that number when the problem's prose writes all those words together right after a
   * count (within three words after a number, "how many", "how much" or "number of":
   * "5 red apples" licenses "red apples"; case-insensitive, up to a simple singular/plural
   * variant such as apple/apples, box/boxes, puppy/puppies) and none of them changes the
   * value or meaning: comparatives ("less", "more", "sooner"), operations ("reciprocal",
   * "squared"), multipliers and scale words ("dozen", "pair", "hundred", "doz"), fractions
   * and ordinals ("half", "sixths"), number words, "true"/"false"/"not", rates ("per",
   * "each", "biennially"), signs and directions ("early", "westward", "downhill",
   * "overpaid"), changes ("added", "declined"), coins of another value ("centimes") and the
   * like are never dropped; a prefixed unit ("milliliters") only where the problem asks in
   * it and uses no other scale of it (see `stripProblemNouns`). So `#### 12 bananas` is 12
   * for a problem about bananas, but `#### 12 dozen` or `#### 12 sixths` never is. This
   * rule is separate from the normaliser's unit-word list (`verify/_units.ts`), which drops
   * its own words after a number with or without `problem`, before this rule is tried:
   * among them "times", "square", "cubic", "sq", "cents", "percent", "min", "dollars" (so
   * `#### 12 times` is 12, right for "How many times…"). Without `problem` (the default)
   * trailing words other than those units are part of the answer, as before.
   */
  problem?: string;
}

/** Result of {@linkcode verify}. */
export interface VerifyResult {
  /**
   * `true` / `false`, or `null` when the gold itself is unusable (empty, unparseable or
   * over the size guards): such a problem should be skipped, never scored 0.
   */
  correct: boolean | null;
  /** Why (see `VerifyReason`). */
  reason: VerifyReason;
  /** The answer text extracted from the response, or `null`. */
  extracted: string | null;
  /**
   * The normalised response answer, or `null` (the number alone when the nouns after it
   * were read with `problem`).
   */
  normalized: string | null;
  /** The normalised gold answer (`""` when the gold is empty). */
  goldNormalized: string;
  /** The extractor that found the response answer, or `null`. */
  extractor: ExtractorName | null;
  /**
   * Offset in the response of the marker of the graded answer (see
   * `ExtractedAnswer.markerOffset`), or `null` when nothing was extracted. Hidden-Align
   * anchors on the token right before this offset.
   */
  markerOffset: number | null;
}

/**
 * Verifies a model response against a gold answer: extracts the final answer (reported
 * with its extractor and marker offset), normalises both sides and decides equivalence
 * (see `mathEqual`). Bounded work (`budgetSteps` counted steps, then reason `timeout`;
 * in `"eval"` mode also a 100 ms deadline, `budgetMs`, consulted only once the call has
 * counted 20,000 steps, which no MATH-500 or GSM8K answer comes near): in the default
 * `"reward"` mode no clock is read, so the same input always gets the same decision, on
 * any machine and under any load; in `"eval"` mode that holds for every answer below
 * 20,000 steps. The gold (string or `prepareGold`) is never under the deadline. Pure (no
 * global mutable state: calls can run in parallel) and it never throws.
 *
 * An unusable gold gives `correct: null` (reason `gold-unparseable`) — skip that
 * problem; do not score it 0.
 *
 * @param response The model response.
 * @param gold The gold answer, or a gold prepared once with `prepareGold`.
 * @param options Mode, extractors, tolerances, budget and size guards.
 * @returns The decision with the extracted and normalised answers and the reason.
 *
 * @example Usage
 * ```ts
 * import { verify } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const response = "… so the total is \\boxed{\\dfrac{1}{2}}.";
 * const r = verify(response, "0.5");
 * assert.equal(r.correct, true);
 * assert.equal(r.extractor, "boxed");
 * assert.equal(r.markerOffset, response.indexOf("\\boxed"));
 *
 * assert.equal(verify("The answer is 13.", "13").correct, false); // no marker
 * assert.equal(verify("The answer is 13.", "13", { mode: "eval" }).correct, true);
 * assert.equal(verify("Answer: 13.0", "13").correct, true);
 * assert.equal(verify("\\boxed{5}", "\\frac{1}{").correct, null); // skip
 * ```
 */
export function verify(
  response: string,
  gold: string | PreparedGold,
  options: VerifyOptions = {},
): VerifyResult {
  return verifyReadingNouns(response, gold, options).result;
}

/**
 * Result of {@linkcode verifyReadingNouns}.
 *
 * @example Usage
 * ```ts
 * import type { VerifyReadingNouns } from "./verify.ts";
 *
 * function vote(v: VerifyReadingNouns): string | null {
 *   return v.nouns ?? v.result.extracted;
 * }
 * ```
 */
export interface VerifyReadingNouns {
  /** What {@linkcode verify} returns. */
  result: VerifyResult;
  /**
   * What the problem-noun rule (`stripProblemNouns`, see `VerifyOptions.problem`) read from
   * the extracted answer: the number alone (`"12"` for `"12 bananas"`), or `null` when it does
   * not apply to that answer; `undefined` when `verify` did not try it (no `problem`, a gold
   * that is not a plain number, an answer already equal to the gold or out of budget, or none
   * extracted).
   */
  nouns: string | null | undefined;
}

/**
 * {@linkcode verify}, also giving what the problem-noun rule read from the answer where it
 * ran: the maj@k votes of `deno task eval` (`voteClasses`) group answers by it, and reuse it
 * instead of running the rule a second time.
 *
 * @param response The model response.
 * @param gold The gold answer, or a gold prepared once with `prepareGold`.
 * @param options As for {@linkcode verify}.
 * @returns `verify`'s result and the rule's reading.
 *
 * @example A wrong count of the problem's nouns
 * ```ts
 * import { verifyReadingNouns } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const problem = "Tom has 5 bananas and buys 7 more. How many bananas does he have?";
 * const wrong = verifyReadingNouns("Answer: 13 bananas", "12", { problem });
 * assert.equal(wrong.result.correct, false);
 * assert.equal(wrong.nouns, "13");
 * assert.equal(verifyReadingNouns("Answer: 12", "12", { problem }).nouns, undefined);
 * ```
 */
export function verifyReadingNouns(
  response: string,
  gold: string | PreparedGold,
  options: VerifyOptions = {},
): VerifyReadingNouns {
  const reading: { nouns: string | null | undefined } = { nouns: undefined };
  const result = verifyInto(response, gold, options, reading);
  return { result, nouns: reading.nouns };
}

/** The body of {@linkcode verify}; sets `reading.nouns` where the noun rule ran. */
function verifyInto(
  response: string,
  gold: string | PreparedGold,
  options: VerifyOptions,
  reading: { nouns: string | null | undefined },
): VerifyResult {
  const mode: VerifyMode = options.mode ?? "reward";
  const budget = makeBudget(options, mode === "eval" ? "eval" : "reward");
  const result: VerifyResult = {
    correct: false,
    reason: "internal-error",
    extracted: null,
    normalized: null,
    goldNormalized: "",
    extractor: null,
    markerOffset: null,
  };
  try {
    const prepared = typeof gold === "string"
      ? prepareGoldWithin(gold, { ...options, mode }, budget)
      : isPrepared(gold)
      ? gold
      : null;
    if (prepared === null) {
      result.correct = null;
      result.reason = "invalid-input";
      return result;
    }
    result.goldNormalized = prepared.normalized;
    if (prepared.node === null) {
      result.correct = null;
      result.reason = "gold-unparseable";
      return result;
    }
    if (typeof response !== "string") {
      result.reason = "invalid-input";
      return result;
    }
    const found = extractAnswer(response, { mode, extractors: options.extractors });
    if (found === null) {
      result.reason = "no-answer";
      return result;
    }
    result.extracted = found.answer;
    result.extractor = found.extractor;
    result.markerOffset = found.markerOffset;
    // Normalisation is linear but not free: refuse answers far beyond the parser's limit.
    if (found.answer.length > 8 * (options.maxLength ?? 512)) {
      result.reason = "too-large";
      return result;
    }
    const normalized = normalizeAnswer(found.answer);
    result.normalized = normalized;
    const goldSide = {
      normalized: prepared.normalized,
      literal: prepared.literal,
      parsed: { ok: true as const, node: prepared.node },
    };
    let decision = guarded(() => decide({ normalized }, goldSide, options, budget));
    // The problem text licenses the nouns after a plain-number answer ("12 bananas").
    const bare = decision.equal || decision.reason === "timeout" ||
        typeof options.problem !== "string" || !goldTakesNouns(prepared)
      ? undefined
      : stripProblemNouns(found.answer, options.problem);
    reading.nouns = bare;
    if (bare !== null && bare !== undefined) {
      const number = normalizeAnswer(bare);
      const again = guarded(() => decide({ normalized: number }, goldSide, options, budget));
      if (again.equal) {
        decision = again;
        result.normalized = number;
      }
    }
    const percent = decision.equal || decision.reason === "timeout" ||
        !(options.percentAsProportion ?? mode === "eval")
      ? null
      : percentDecision(found.answer, normalized, prepared.answer, prepared.normalized);
    result.correct = (percent ?? decision).equal;
    result.reason = (percent ?? decision).reason;
    return result;
  } catch {
    result.correct = false;
    result.reason = "internal-error";
    return result;
  }
}

function isPrepared(x: unknown): x is PreparedGold {
  return x !== null && typeof x === "object" &&
    (x as { kind?: unknown }).kind === "prepared-gold";
}
