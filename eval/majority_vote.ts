// Copyright 2025 the halo authors. MIT license.
/**
 * Majority vote over equivalence classes of answers.
 *
 * @module
 */

import { mathEqual } from "../verify/math_equal.ts";

/** Options for {@linkcode majorityVote}. */
export interface MajorityVoteOptions<T> {
  /**
   * Equivalence of two answers. Default: the verifier's `mathEqual` on strings (so
   * `0.5`, `\frac12` and `\dfrac{1}{2}` vote together). Must be symmetric.
   */
  equal?: (a: T, b: T) => boolean;
}

/** Result of {@linkcode majorityVote}. */
export interface MajorityVoteResult {
  /** Index (into the input) of the representative of the winning class, or `null`. */
  index: number | null;
  /** Size of the winning class. */
  count: number;
  /** The classes as lists of input indices, in order of first appearance. */
  classes: number[][];
}

/**
 * Groups answers into equivalence classes (each answer joins the first class whose
 * representative — its first member — it equals) and returns the largest class. Ties go
 * to the class that appeared first. `null` answers (nothing extracted) do not vote.
 *
 * @param answers Answers in sampling order; `null` for "no answer".
 * @param options The equivalence used.
 * @returns The winning class and all classes.
 *
 * @example Usage
 * ```ts
 * import { majorityVote } from "./majority_vote.ts";
 * import assert from "node:assert/strict";
 *
 * const r = majorityVote(["3", "\\frac12", "0.5", null, "3", "1/2"]);
 * assert.equal(r.index, 1);
 * assert.equal(r.count, 3);
 * ```
 */
export function majorityVote<T = string>(
  answers: readonly (T | null)[],
  options: MajorityVoteOptions<T> = {},
): MajorityVoteResult {
  const equal = options.equal ??
    ((a: T, b: T) =>
      typeof a === "string" && typeof b === "string" ? mathEqual(a, b).equal : Object.is(a, b));
  const classes: number[][] = [];
  for (let i = 0; i < answers.length; i++) {
    const a = answers[i];
    if (a === null || a === undefined) continue;
    const cls = classes.find((c) => equal(answers[c[0]] as T, a));
    if (cls) cls.push(i);
    else classes.push([i]);
  }
  let best: number[] | null = null;
  for (const c of classes) if (best === null || c.length > best.length) best = c;
  return { index: best ? best[0] : null, count: best ? best.length : 0, classes };
}
