// Copyright 2025 the halo authors. MIT license.
/**
 * pass@k, avg@k and maj@k over a set of problems, with confidence intervals.
 *
 * @module
 */

import { passAtK } from "./pass_at_k.ts";
import { avgAtK } from "./avg_at_k.ts";
import { majAtK } from "./maj_at_k.ts";
import {
  type ConfidenceInterval,
  confidenceInterval,
  type ConfidenceIntervalOptions,
} from "./confidence_interval.ts";

/** The samples of one problem. */
export interface ProblemSamples {
  /** Verifier decision for each sample, in sampling order. */
  correct: readonly boolean[];
  /** Extracted answer of each sample (`null` when none); needed for maj@k. */
  answers?: readonly (string | null)[];
}

/** Options for {@linkcode scoreProblems}. */
export interface ScoreProblemsOptions {
  /** The k values to report (each ≤ every problem's sample count); default `[1]`. */
  ks?: readonly number[];
  /** Interval settings (default: normal approximation, 95 %, clamped to [0, 1]). */
  ci?: ConfidenceIntervalOptions;
  /** Answer equivalence for maj@k (default: the verifier's `mathEqual`). */
  equal?: (a: string, b: string) => boolean;
}

/** Per-metric estimates, each a mean over problems with its interval. */
export interface ScoreReport {
  /** Number of problems. */
  problems: number;
  /** pass@k (unbiased estimator per problem, then averaged), keyed by k. */
  passAtK: Record<number, ConfidenceInterval>;
  /** avg@n: mean per-problem accuracy over all samples. */
  avg: ConfidenceInterval;
  /** maj@k keyed by k, present when every problem has `answers`. */
  majAtK?: Record<number, ConfidenceInterval>;
}

/**
 * Scores a set of problems: pass@k (unbiased estimator, see `passAtK`), avg@n and, when
 * answers are given, maj@k (first k samples), each averaged over problems with a
 * confidence interval over problems (normal approximation by default; see
 * `confidenceInterval`).
 *
 * @param problems Per-problem samples.
 * @param options The k values, interval settings and answer equivalence.
 * @returns The report.
 * @throws {RangeError} When there are no problems, a problem has no samples, or a k
 * exceeds a problem's sample count.
 *
 * @example Usage
 * ```ts
 * import { scoreProblems } from "./score_problems.ts";
 * import assert from "node:assert/strict";
 *
 * const report = scoreProblems([
 *   { correct: [true, false, false, false], answers: ["2", "3", "3", null] },
 *   { correct: [true, true, false, true], answers: ["0.5", "\\frac12", "1", "1/2"] },
 * ], { ks: [1, 4] });
 * assert.equal(report.passAtK[1].mean, (0.25 + 0.75) / 2);
 * assert.equal(report.passAtK[4].mean, 1);
 * assert.equal(report.majAtK?.[4].mean, 0.5);
 * ```
 */
export function scoreProblems(
  problems: readonly ProblemSamples[],
  options: ScoreProblemsOptions = {},
): ScoreReport {
  if (!Array.isArray(problems) || problems.length === 0) {
    throw new RangeError(`scoreProblems: expected at least one problem, got ${problems?.length}`);
  }
  const ks = options.ks ?? [1];
  const ci: ConfidenceIntervalOptions = { bounds: [0, 1], ...options.ci };
  const passAt: Record<number, ConfidenceInterval> = {};
  for (const k of ks) {
    const scores = problems.map((p, i) => {
      const n = p.correct.length;
      if (k > n) {
        throw new RangeError(
          `scoreProblems: expected k <= samples of every problem, got k=${k} for problem ${i} with ${n} samples`,
        );
      }
      return passAtK(n, p.correct.filter(Boolean).length, k);
    });
    passAt[k] = confidenceInterval(scores, ci);
  }
  const avg = confidenceInterval(problems.map((p) => avgAtK(p.correct)), ci);
  const report: ScoreReport = { problems: problems.length, passAtK: passAt, avg };
  if (problems.every((p) => p.answers !== undefined && p.answers.length === p.correct.length)) {
    const maj: Record<number, ConfidenceInterval> = {};
    for (const k of ks) {
      const scores = problems.map((p) => {
        const samples = p.correct.map((c: boolean, i: number) => ({
          answer: p.answers?.[i] ?? null,
          correct: c,
        }));
        return majAtK(samples, k, options.equal ? { equal: options.equal } : {}) ? 1 : 0;
      });
      maj[k] = confidenceInterval(scores, ci);
    }
    report.majAtK = maj;
  }
  return report;
}
