/**
 * How far the sampler's log-probs are from the trainer's on the same tokens: the
 * sampler–trainer mismatch that off-policy correction (truncated importance sampling) has to
 * absorb. Per token, `r = exp(trainer − sampler)`; the KL of the sampler from the trainer is
 * estimated from the sampler's own draws with k1 = mean(sampler − trainer) and the non-negative
 * k3 = mean(r − 1 − log r).
 *
 * @module
 */
import { quantile } from "../internal/quantile.ts";

/**
 * Mismatch metrics, namespaced `mismatch/…`.
 *
 * @example Usage
 * ```ts
 * import type { MismatchMetrics } from "./logprob_mismatch.ts";
 *
 * function summary(m: MismatchMetrics): string {
 *   return `KL ${m["mismatch/kl_k3"]}, ratio p99 ${m["mismatch/ratio_p99"]}`;
 * }
 * ```
 */
export type MismatchMetrics = Record<
  | "mismatch/tokens"
  | "mismatch/kl_k1"
  | "mismatch/kl_k3"
  | "mismatch/max_abs_diff"
  | "mismatch/ratio_min"
  | "mismatch/ratio_p01"
  | "mismatch/ratio_p05"
  | "mismatch/ratio_p50"
  | "mismatch/ratio_p95"
  | "mismatch/ratio_p99"
  | "mismatch/ratio_max",
  number
>;

/**
 * The mismatch metrics of sequences scored by the sampler and by the trainer.
 *
 * @param sampler Per sequence, the sampler's log-prob of each generated token.
 * @param trainer Per sequence, the trainer's log-prob of the same tokens.
 * @returns KL estimates, the largest |difference|, ratio percentiles (linear interpolation).
 * @throws {RangeError} When a sequence's two arrays differ in length.
 *
 * @example Identical log-probs give ratio 1 and KL 0
 * ```ts
 * import { logprobMismatch } from "./logprob_mismatch.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const m = logprobMismatch([[-0.5, -1]], [[-0.5, -1]]);
 * strictEqual(m["mismatch/kl_k3"], 0);
 * strictEqual(m["mismatch/ratio_p50"], 1);
 * ```
 */
export function logprobMismatch(
  sampler: readonly ArrayLike<number>[],
  trainer: readonly ArrayLike<number>[],
): MismatchMetrics {
  if (sampler.length !== trainer.length) {
    throw new RangeError(
      `Cannot compare log-probs: expected as many trainer sequences as sampler ones ` +
        `(${sampler.length}): got ${trainer.length}`,
    );
  }
  const ratios: number[] = [];
  let k1 = 0;
  let k3 = 0;
  let maxAbs = 0;
  sampler.forEach((s, i) => {
    const t = trainer[i];
    if (s.length !== t.length) {
      throw new RangeError(
        `Cannot compare log-probs: sequence ${i} has ${s.length} sampler and ${t.length} trainer ` +
          `log-probs`,
      );
    }
    for (let k = 0; k < s.length; k++) {
      const d = t[k] - s[k];
      const r = Math.exp(d);
      ratios.push(r);
      k1 -= d;
      k3 += r - 1 - d;
      maxAbs = Math.max(maxAbs, Math.abs(d));
    }
  });
  const n = ratios.length;
  const sorted = Float64Array.from(ratios).sort();
  return {
    "mismatch/tokens": n,
    "mismatch/kl_k1": n === 0 ? 0 : k1 / n,
    "mismatch/kl_k3": n === 0 ? 0 : k3 / n,
    "mismatch/max_abs_diff": maxAbs,
    "mismatch/ratio_min": n === 0 ? 1 : sorted[0],
    "mismatch/ratio_p01": quantile(sorted, 0.01, 1),
    "mismatch/ratio_p05": quantile(sorted, 0.05, 1),
    "mismatch/ratio_p50": quantile(sorted, 0.5, 1),
    "mismatch/ratio_p95": quantile(sorted, 0.95, 1),
    "mismatch/ratio_p99": quantile(sorted, 0.99, 1),
    "mismatch/ratio_max": n === 0 ? 1 : sorted[n - 1],
  };
}
