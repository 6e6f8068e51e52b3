// Copyright 2025 the halo authors. MIT license.
/**
 * maj@k: correctness of the majority answer among k samples.
 *
 * @module
 */

import { majorityVote, type MajorityVoteOptions } from "./majority_vote.ts";

/** One sample: its extracted answer (or `null`) and whether it was verified correct. */
export interface MajSample {
  /** Extracted answer, `null` when none. */
  answer: string | null;
  /** Verifier decision for this sample. */
  correct: boolean;
}

/** Options for {@linkcode majAtK}. */
export type MajAtKOptions = MajorityVoteOptions<string>;

/**
 * maj@k of one problem: majority vote (see `majorityVote`) over the answers of the first
 * `k` samples; the result is the correctness of the winning class's representative
 * (members of a class are equivalent, so any member would do). `false` when no sample
 * has an answer.
 *
 * @param samples Samples in sampling order.
 * @param k Number of samples to vote over (integer, 1 ≤ k ≤ samples.length).
 * @param options The equivalence used for voting (default: the verifier's).
 * @returns Whether the majority answer is correct.
 * @throws {RangeError} When `k` is out of range.
 *
 * @example Usage
 * ```ts
 * import { majAtK } from "./maj_at_k.ts";
 * import assert from "node:assert/strict";
 *
 * const samples = [
 *   { answer: "7", correct: false },
 *   { answer: "\\frac12", correct: true },
 *   { answer: "0.5", correct: true },
 * ];
 * assert.equal(majAtK(samples, 3), true);
 * assert.equal(majAtK(samples, 1), false);
 * ```
 */
export function majAtK(
  samples: readonly MajSample[],
  k: number,
  options: MajAtKOptions = {},
): boolean {
  if (!Number.isInteger(k) || k < 1 || k > samples.length) {
    throw new RangeError(
      `majAtK: expected an integer k with 1 <= k <= ${samples.length}, got k=${k}`,
    );
  }
  const first = samples.slice(0, k);
  const vote = majorityVote(first.map((s) => s.answer), options);
  return vote.index === null ? false : first[vote.index].correct;
}
