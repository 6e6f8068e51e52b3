// Copyright 2025 the halo authors. MIT license.
/**
 * Parsing a gold answer once, for many verifications.
 *
 * A gold is prepared under counted steps only (`budgetSteps`), never a wall-clock
 * deadline, in either mode and whatever `budgetMs` says; `verify` with a gold given as a
 * string does the same for its gold part. A gold is trusted data, bounded by the size
 * guards and the step budget like any input, and its preparation is deterministic. A
 * clock there would make a gold's fate depend on machine load: one timed-out gold gives
 * `node: null`, so every sample of that problem is `correct: null` and the evaluation
 * silently skips the whole problem, which is worse than one slow parse (measured: a
 * MATH-500 solution or GSM8K worked answer prepares in at most 57 steps).
 *
 * @module
 */

import { extractAnswer, type ExtractorName } from "./extract_answer.ts";
import { normalizeAnswer } from "./normalize_answer.ts";
import { type AnswerNode, parseAnswer } from "./parse_answer.ts";
import { literalValue, makeBudget } from "./_decide.ts";
import { type Budget, BudgetExceeded } from "./_budget.ts";
import type { EquivalenceOptions, VerifyMode } from "./types.ts";

/** Options for {@linkcode prepareGold}. */
export interface PrepareGoldOptions extends EquivalenceOptions {
  /**
   * `"reward"` (default): the gold is the answer itself; a `\boxed{…}` or `#### N` inside
   * it is extracted. `"eval"`: the gold may be written as text (a worked solution, "The
   * answer is $5$."), and the same extractors as for responses are applied to it.
   */
  mode?: VerifyMode;
}

/** A gold answer, normalised and parsed once. Immutable; safe to share across calls. */
export interface PreparedGold {
  /** Brand, so that `verify` can tell a prepared gold from a string. */
  readonly kind: "prepared-gold";
  /** The gold as given. */
  readonly raw: string;
  /** The answer part of the gold (after extraction, before normalisation). */
  readonly answer: string;
  /** Which extractor found the answer in the gold, or `null` when the gold is the answer. */
  readonly extractor: ExtractorName | null;
  /** The normalised answer. */
  readonly normalized: string;
  /** The parsed answer, or `null` when the gold is unparseable (verify then gives `null`). */
  readonly node: AnswerNode | null;
  /** Why the gold is unusable, or `null`. */
  readonly error: "empty" | "too-large" | "syntax" | "timeout" | null;
  /** @internal Exact value when the gold is a plain numeric literal. */
  readonly literal: { readonly n: bigint; readonly d: bigint } | null;
  /** The options the gold was prepared with. */
  readonly mode: VerifyMode;
}

/**
 * Extracts, normalises and parses a gold answer once so that many responses can be
 * verified against it cheaply (pass the result to `verify` instead of the string).
 * Never throws; an unusable gold has `node: null` and an `error`.
 *
 * @param gold The gold answer (or, in `eval` mode, a gold solution text).
 * @param options Mode, size guards and step budget (`budgetMs` does not apply: a gold is
 * prepared without a clock, see the module doc).
 * @returns The prepared gold.
 *
 * @example Usage
 * ```ts
 * import { prepareGold } from "./prepare_gold.ts";
 * import { verify } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const gold = prepareGold("\\frac{1}{2}");
 * assert.equal(gold.error, null);
 * assert.equal(verify("so \\boxed{0.5}", gold).correct, true);
 * assert.equal(prepareGold("\\frac{1}{").node, null);
 * ```
 */
export function prepareGold(gold: string, options: PrepareGoldOptions = {}): PreparedGold {
  return prepareGoldWithin(gold, options, makeBudget({ ...options, budgetMs: Infinity }, "reward"));
}

/**
 * @internal `prepareGold` charged to an existing budget (used by `verify`): its steps
 * count, its deadline is suspended.
 */
export function prepareGoldWithin(
  gold: string,
  options: PrepareGoldOptions,
  budget: Budget,
): PreparedGold {
  return budget.withoutDeadline(() => prepareGoldSteps(gold, options, budget));
}

function prepareGoldSteps(
  gold: string,
  options: PrepareGoldOptions,
  budget: Budget,
): PreparedGold {
  const mode: VerifyMode = options.mode ?? "reward";
  const base = {
    kind: "prepared-gold" as const,
    raw: typeof gold === "string" ? gold : "",
    mode,
  };
  try {
    if (typeof gold !== "string" || gold.trim() === "") {
      return fail(base, "", null, "", "empty");
    }
    const found = extractGold(gold, mode);
    const answer = found ? found.answer : gold.trim();
    const extractor = found ? found.extractor : null;
    if (answer.length > 8 * (options.maxLength ?? 512)) {
      return fail(base, answer, extractor, "", "too-large");
    }
    const normalized = normalizeAnswer(answer);
    if (normalized === "") return fail(base, answer, extractor, normalized, "empty");
    const parsed = parseAnswer(normalized, {
      maxLength: options.maxLength,
      maxDepth: options.maxDepth,
      budget,
    });
    if (!parsed.ok) return fail(base, answer, extractor, normalized, parsed.reason);
    return {
      ...base,
      answer,
      extractor,
      normalized,
      node: parsed.node,
      error: null,
      literal: literalValue(normalized),
    };
  } catch (e) {
    return fail(base, "", null, "", e instanceof BudgetExceeded ? "timeout" : "syntax");
  }
}

function fail(
  base: { kind: "prepared-gold"; raw: string; mode: VerifyMode },
  answer: string,
  extractor: ExtractorName | null,
  normalized: string,
  error: "empty" | "too-large" | "syntax" | "timeout",
): PreparedGold {
  return { ...base, answer, extractor, normalized, node: null, error, literal: null };
}

function extractGold(gold: string, mode: VerifyMode) {
  // Explicit markers are unambiguous in any mode.
  const marked = extractAnswer(gold, { mode: "reward", extractors: ["boxed", "gsm8k"] });
  if (marked || mode === "reward") return marked;
  const inText = extractAnswer(gold, {
    mode: "eval",
    extractors: ["minerva", "answer_line", "latex"],
  });
  if (inText) return inText;
  // Prose ("The answer is 5.") — three or more plain words outside LaTeX commands.
  if (/(?:^|\s)[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}/.test(gold.replace(/\\[a-zA-Z]+/g, ""))) {
    return extractAnswer(gold, { mode: "eval", extractors: ["plain"] });
  }
  return null;
}
