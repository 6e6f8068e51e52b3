// Copyright 2025 the halo authors. MIT license.
/**
 * avg@k: mean accuracy over k samples of one problem.
 *
 * @module
 */

/**
 * avg@k of one problem: the fraction of its first `k` samples that are correct (all
 * samples when `k` is omitted). Averaged over problems this is the expected pass@1
 * estimated from k samples per problem.
 *
 * @param correct Per-sample correctness, in sampling order.
 * @param k Number of samples to use (integer, 1 ≤ k ≤ correct.length); default all.
 * @returns The fraction in [0, 1].
 * @throws {RangeError} When there are no samples or `k` is out of range.
 *
 * @example Usage
 * ```ts
 * import { avgAtK } from "./avg_at_k.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(avgAtK([true, false, true, true]), 0.75);
 * assert.equal(avgAtK([true, false, true, true], 2), 0.5);
 * ```
 */
export function avgAtK(correct: readonly boolean[], k: number = correct.length): number {
  if (!Array.isArray(correct) || correct.length === 0) {
    throw new RangeError(`avgAtK: expected at least one sample, got ${correct?.length ?? correct}`);
  }
  if (!Number.isInteger(k) || k < 1 || k > correct.length) {
    throw new RangeError(
      `avgAtK: expected an integer k with 1 <= k <= ${correct.length}, got k=${k}`,
    );
  }
  let hits = 0;
  for (let i = 0; i < k; i++) if (correct[i]) hits++;
  return hits / k;
}
