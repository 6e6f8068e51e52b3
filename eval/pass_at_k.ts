// Copyright 2025 the halo authors. MIT license.
/**
 * The unbiased pass@k estimator.
 *
 * @module
 */

/**
 * Unbiased estimator of pass@k from `n` samples of which `c` are correct (Chen et al.,
 * 2021): `1 − C(n−c, k) / C(n, k)`, computed in the numerically stable product form
 * `1 − ∏_{i=n−c+1}^{n} (1 − k/i)`. It is `1` when `n − c < k`, and exactly `c / n` for
 * `k = 1`.
 *
 * @param n Number of samples (integer ≥ 1).
 * @param c Number of correct samples (integer, 0 ≤ c ≤ n).
 * @param k The k of pass@k (integer, 1 ≤ k ≤ n).
 * @returns The estimate in [0, 1].
 * @throws {RangeError} When the arguments are not integers with 0 ≤ c ≤ n and
 * 1 ≤ k ≤ n (in particular when n < k).
 *
 * @example Usage
 * ```ts
 * import { passAtK } from "./pass_at_k.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(passAtK(10, 3, 1), 0.3);
 * assert.equal(passAtK(10, 8, 5), 1); // n − c < k
 * assert.ok(Math.abs(passAtK(10, 3, 2) - (1 - 21 / 45)) < 1e-12);
 * assert.throws(() => passAtK(3, 1, 5), RangeError);
 * ```
 */
export function passAtK(n: number, c: number, k: number): number {
  if (
    !Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 ||
    c > n || k < 1 || k > n
  ) {
    throw new RangeError(
      `passAtK: expected integers with 0 <= c <= n and 1 <= k <= n, got n=${n}, c=${c}, k=${k}`,
    );
  }
  if (n - c < k) return 1;
  if (k === 1) return c / n; // exact, and what the product below equals up to rounding
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}
