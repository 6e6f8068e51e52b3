// Copyright 2025 the halo authors. MIT license.
/**
 * The summary of an evaluation, computed from its sample records alone: pass@k for
 * k = 1, 2, 4, … < n and n, avg@n and maj@k, each a mean over problems with a 95% confidence interval,
 * overall and per MATH-500 subject and level.
 *
 * @module
 */

import type { EvalSampleRecord } from "./eval_records.ts";
import { passAtK } from "./pass_at_k.ts";
import { majorityVote, type MajorityVoteOptions } from "./majority_vote.ts";
import { goldTakesNouns, stripProblemNouns } from "../verify/problem_nouns.ts";
import { type PreparedGold, prepareGold } from "../verify/prepare_gold.ts";
import {
  type ConfidenceInterval,
  confidenceInterval,
  type ConfidenceIntervalOptions,
} from "./confidence_interval.ts";

/**
 * One table of metrics over a set of problems. Keys of `passAtK` and `majAtK` are the k values
 * as decimal strings.
 *
 * @example Usage
 * ```ts
 * import type { EvalMetrics } from "./eval_summary.ts";
 *
 * const ci = { mean: 0.5, lower: 0.2, upper: 0.8, level: 0.95, method: "normal" as const, n: 10 };
 * const metrics: EvalMetrics = { problems: 10, passAtK: { "1": ci }, avg: ci, majAtK: { "1": ci } };
 * ```
 */
export interface EvalMetrics {
  /** Problems scored (skipped ones excluded). */
  problems: number;
  /** pass@k (unbiased estimator per problem), keyed by k. */
  passAtK: Record<string, ConfidenceInterval>;
  /** avg@n: the mean per-problem accuracy over all n samples. */
  avg: ConfidenceInterval;
  /** maj@k: whether the majority answer of the first k samples is correct, keyed by k. */
  majAtK: Record<string, ConfidenceInterval>;
}

/**
 * The summary of one evaluation (`summary.json`). A pure function of the records and the
 * config passed in: no times or dates, so equal samples give byte-equal JSON.
 *
 * @example Usage
 * ```ts
 * import type { EvalSummary } from "./eval_summary.ts";
 *
 * function headline(summary: EvalSummary): string {
 *   return `pass@1 ${summary.overall.passAtK["1"].mean.toFixed(3)} on ${summary.problems} problems`;
 * }
 * ```
 */
export interface EvalSummary {
  /** The format tag. */
  format: "halo-eval-summary/1";
  /** The evaluation settings (model, data, sampling), as given. */
  config: Record<string, unknown>;
  /** Samples per problem (n). */
  samplesPerProblem: number;
  /** The k values of the tables: by default 1, 2, 4, … < n, then n. */
  ks: number[];
  /** Problems scored. */
  problems: number;
  /** Ids of the problems skipped because their gold answer is unusable (`correct: null`). */
  skipped: string[];
  /** Metrics over all scored problems. */
  overall: EvalMetrics;
  /** Metrics per subject (MATH-500), sorted by name; absent when no record has a subject. */
  bySubject?: Record<string, EvalMetrics>;
  /** Metrics per level (MATH-500), sorted by level; absent when no record has a level. */
  byLevel?: Record<string, EvalMetrics>;
  /** How many samples got each verifier reason. */
  reasons: Record<string, number>;
  /** How many samples stopped for each reason (`eos`, `stop`, `length`). */
  stops: Record<string, number>;
  /** Mean generated tokens per sample. */
  meanTokens: number;
}

/**
 * Options of {@linkcode summarizeEval}.
 *
 * @example Usage
 * ```ts
 * import type { SummarizeEvalOptions } from "./eval_summary.ts";
 *
 * const options: SummarizeEvalOptions = { config: { data: "math500", k: 16 } };
 * ```
 */
export interface SummarizeEvalOptions {
  /** The settings stored in the summary; default `{}`. */
  config?: Record<string, unknown>;
  /** The k values; default 1, 2, 4, … < n, then n ({@linkcode defaultKs}). */
  ks?: readonly number[];
  /** Interval settings; default normal approximation, 95%, clamped to [0, 1]. */
  ci?: ConfidenceIntervalOptions;
}

/**
 * The powers of two up to `n` (the pass@k tables use {@linkcode defaultKs}, which adds n).
 *
 * @param n Samples per problem (integer ≥ 1).
 * @returns `[1, 2, 4, …]`, each ≤ n.
 * @throws {RangeError} When `n` is not a positive integer.
 *
 * @example Usage
 * ```ts
 * import { powersOfTwoUpTo } from "./eval_summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(powersOfTwoUpTo(16), [1, 2, 4, 8, 16]);
 * assert.deepEqual(powersOfTwoUpTo(6), [1, 2, 4]);
 * ```
 */
export function powersOfTwoUpTo(n: number): number[] {
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `Cannot list k values: n must be a positive integer: current value is ${n}`,
    );
  }
  const ks: number[] = [];
  for (let k = 1; k <= n; k *= 2) ks.push(k);
  return ks;
}

/**
 * The default k values of the pass@k tables: the powers of two below `n`, then `n` itself, so
 * that every sample counts in the last column (pass@10 for 10 samples, not only pass@8).
 *
 * @param n Samples per problem (integer ≥ 1).
 * @returns `[1, 2, 4, …, n]`.
 * @throws {RangeError} When `n` is not a positive integer.
 *
 * @example Usage
 * ```ts
 * import { defaultKs } from "./eval_summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(defaultKs(16), [1, 2, 4, 8, 16]);
 * assert.deepEqual(defaultKs(10), [1, 2, 4, 8, 10]);
 * ```
 */
export function defaultKs(n: number): number[] {
  const ks = powersOfTwoUpTo(n);
  if (ks.at(-1) !== n) ks.push(n);
  return ks;
}

/**
 * The majority-vote class of each answer: the index of the first answer equivalent to it (so
 * equivalent answers share a number), or `null` for a missing answer. Classes are formed in order
 * as `majorityVote` forms them, so the classes of the first k answers are these numbers too, and
 * maj@k needs no further comparison.
 *
 * With `problem` and `gold`, a plain number followed by nouns the problem uses (`"12 bananas"`)
 * votes as the number alone, exactly where `verify` scores it so with that option: only when
 * the gold is a plain number ({@linkcode goldTakesNouns}, the gate both share). For any other
 * gold (`1{,}250`, `\frac{24}{2}`) or without `gold`, nouns are part of the answer, as `verify`
 * keeps them, so a vote never joins answers the scores tell apart. A string gold is prepared
 * as `deno task eval` prepares it (`prepareGold(gold, { mode: "eval" })`). With `nouns` (what
 * `verifyReadingNouns` read from each answer, `undefined` where it did not try), the rule runs
 * only on the answers it did not read: the classes are the same.
 *
 * @param answers Extracted answers in sample order (`null`: none).
 * @param options The equivalence (default: the verifier's `mathEqual`), the problem text,
 * the gold answer, and the noun rule's reading of each answer where already known.
 * @returns One class number (or `null`) per answer.
 *
 * @example Equivalent answers vote together
 * ```ts
 * import { voteClasses } from "./eval_summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(voteClasses(["7", "\\frac12", null, "0.5", "7"]), [0, 1, null, 1, 0]);
 * const problem = "How many bananas are left?";
 * assert.deepEqual(voteClasses(["12 bananas", "12", "13"], { problem, gold: "12" }), [0, 0, 2]);
 * ```
 */
export function voteClasses(
  answers: readonly (string | null)[],
  options: MajorityVoteOptions<string> & {
    problem?: string;
    gold?: string | PreparedGold;
    nouns?: readonly (string | null | undefined)[];
  } = {},
): (number | null)[] {
  const { problem, gold, nouns, ...vote } = options;
  const prepared = typeof gold === "string" ? prepareGold(gold, { mode: "eval" }) : gold;
  const keys = problem === undefined || prepared === undefined || !goldTakesNouns(prepared)
    ? answers
    : answers.map((a, i) => {
      if (a === null) return null;
      const known = nouns?.[i];
      return (known === undefined ? stripProblemNouns(a, problem) : known) ?? a;
    });
  const { classes } = majorityVote(keys, vote);
  const out: (number | null)[] = answers.map(() => null);
  for (const members of classes) for (const i of members) out[i] = members[0];
  return out;
}

/**
 * maj@k of one problem from its vote classes: the class with the most members among the first k
 * samples wins (ties: the class that appeared first), and its first member's correctness is the
 * result; `false` when none of the first k has an answer. Equals `majAtK` on the same samples.
 *
 * @param votes Class numbers (see {@linkcode voteClasses}).
 * @param correct Per-sample correctness.
 * @param k The number of samples voting (1 ≤ k ≤ votes.length).
 * @returns Whether the majority answer is correct.
 * @throws {RangeError} When `k` is out of range or the arrays differ in length.
 *
 * @example Usage
 * ```ts
 * import { majorityCorrect } from "./eval_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const votes = [0, 1, 1, null];
 * const correct = [false, true, true, false];
 * assert.equal(majorityCorrect(votes, correct, 1), false);
 * assert.equal(majorityCorrect(votes, correct, 3), true);
 * ```
 */
export function majorityCorrect(
  votes: readonly (number | null)[],
  correct: readonly boolean[],
  k: number,
): boolean {
  if (votes.length !== correct.length || !Number.isInteger(k) || k < 1 || k > votes.length) {
    throw new RangeError(
      `Cannot take maj@k: expected 1 <= k <= ${votes.length} and ${votes.length} correctness ` +
        `values: current k is ${k}, ${correct.length} values`,
    );
  }
  const counts = new Map<number, number>();
  for (let i = 0; i < k; i++) {
    const v = votes[i];
    if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  let best = -1;
  let bestCount = 0;
  for (const [cls, count] of counts) {
    if (count > bestCount || (count === bestCount && cls < best)) {
      best = cls;
      bestCount = count;
    }
  }
  return best >= 0 && correct[best];
}

interface Problem {
  id: string;
  correct: boolean[];
  votes: (number | null)[];
  subject?: string;
  level?: number;
}

function metrics(
  problems: readonly Problem[],
  ks: readonly number[],
  ci: ConfidenceIntervalOptions,
): EvalMetrics {
  const passAt: Record<string, ConfidenceInterval> = {};
  const majAt: Record<string, ConfidenceInterval> = {};
  for (const k of ks) {
    passAt[k] = confidenceInterval(
      problems.map((p) => passAtK(p.correct.length, p.correct.filter(Boolean).length, k)),
      ci,
    );
  }
  const avg = confidenceInterval(
    problems.map((p) => p.correct.filter(Boolean).length / p.correct.length),
    ci,
  );
  for (const k of ks) {
    majAt[k] = confidenceInterval(
      problems.map((p) => majorityCorrect(p.votes, p.correct, k) ? 1 : 0),
      ci,
    );
  }
  return { problems: problems.length, passAtK: passAt, avg, majAtK: majAt };
}

function count(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of [...values].sort()) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/**
 * Summarizes the records of an evaluation (whole prompts, each with the same number n of
 * samples, in any order): pass@k for k = 1, 2, 4, … ≤ n (the unbiased estimator), avg@n and maj@k
 * (majority of the first k samples by their `vote` classes), each averaged over problems with a
 * 95% confidence interval (normal approximation over problems, clamped to [0, 1]), overall and
 * per `subject` and `level` when the records have them. A prompt whose gold is unusable
 * (`correct: null`) is skipped and listed. Problems are ordered by id before averaging, so the
 * result does not depend on the order of the records.
 *
 * @param records The sample records.
 * @param options The config to store, the k values and the interval settings.
 * @returns The summary.
 * @throws {RangeError} When there are no records, the prompts have different sample counts, a
 * prompt's samples are not 0..n-1, or no problem is left to score.
 *
 * @example Two problems, two samples each
 * ```ts
 * import { summarizeEval } from "./eval_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const r = { gold: "1", text: "", reason: "match-string" as const, tokens: 4, stop: "eos" };
 * const summary = summarizeEval([
 *   { ...r, id: "a", sample: 0, answer: "1", correct: true, vote: 0 },
 *   { ...r, id: "a", sample: 1, answer: "2", correct: false, vote: 1 },
 *   { ...r, id: "b", sample: 0, answer: "3", correct: false, vote: 0 },
 *   { ...r, id: "b", sample: 1, answer: "3", correct: false, vote: 0 },
 * ]);
 * assert.deepEqual(summary.ks, [1, 2]);
 * assert.equal(summary.overall.passAtK["1"].mean, 0.25);
 * assert.equal(summary.overall.passAtK["2"].mean, 0.5);
 * assert.equal(summary.overall.majAtK["2"].mean, 0.5);
 * ```
 */
export function summarizeEval(
  records: readonly EvalSampleRecord[],
  options: SummarizeEvalOptions = {},
): EvalSummary {
  if (records.length === 0) {
    throw new RangeError("Cannot summarize the evaluation: there are no sample records");
  }
  const byId = new Map<string, EvalSampleRecord[]>();
  for (const r of records) {
    const list = byId.get(r.id);
    if (list) list.push(r);
    else byId.set(r.id, [r]);
  }
  const ids = [...byId.keys()].sort();
  const n = byId.get(ids[0])!.length;
  const problems: Problem[] = [];
  const skipped: string[] = [];
  for (const id of ids) {
    const list = [...byId.get(id)!].sort((a, b) => a.sample - b.sample);
    if (list.length !== n || list.some((r, i) => r.sample !== i)) {
      throw new RangeError(
        `Cannot summarize the evaluation: prompt "${id}" must have samples 0..${n - 1} like ` +
          `prompt "${ids[0]}": current samples are ${list.map((r) => r.sample).join(", ")}`,
      );
    }
    if (list.some((r) => r.correct === null)) {
      skipped.push(id);
      continue;
    }
    problems.push({
      id,
      correct: list.map((r) => r.correct as boolean),
      votes: list.map((r) => r.vote),
      subject: list[0].subject,
      level: list[0].level,
    });
  }
  if (problems.length === 0) {
    throw new RangeError(
      `Cannot summarize the evaluation: all ${ids.length} prompts were skipped (unusable gold)`,
    );
  }
  const ks = [...(options.ks ?? defaultKs(n))];
  const ci: ConfidenceIntervalOptions = { bounds: [0, 1], ...options.ci };
  const summary: EvalSummary = {
    format: "halo-eval-summary/1",
    config: options.config ?? {},
    samplesPerProblem: n,
    ks,
    problems: problems.length,
    skipped,
    overall: metrics(problems, ks, ci),
    reasons: count(records.map((r) => r.reason)),
    stops: count(records.map((r) => r.stop)),
    meanTokens: records.reduce((s, r) => s + r.tokens, 0) / records.length,
  };
  const subjects = [...new Set(problems.flatMap((p) => p.subject ?? []))].sort();
  if (subjects.length > 0) {
    summary.bySubject = {};
    for (const s of subjects) {
      summary.bySubject[s] = metrics(problems.filter((p) => p.subject === s), ks, ci);
    }
  }
  const levels = [...new Set(problems.flatMap((p) => p.level ?? []))].sort((a, b) => a - b);
  if (levels.length > 0) {
    summary.byLevel = {};
    for (const l of levels) {
      summary.byLevel[l] = metrics(problems.filter((p) => p.level === l), ks, ci);
    }
  }
  return summary;
}
