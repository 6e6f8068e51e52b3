/**
 * Off-policy correction of rollouts whose sampler is not exactly the trainer: the
 * sampler–trainer mismatch over the policy tokens (KL estimates, percentiles of the ratio
 * `π_old / π_sampler`) and the token-level truncated importance-sampling weights
 * `w = min(exp(log π_old − log π_sampler), cap)` (verl's `rollout_is: token`, TRL's
 * `vllm_importance_sampling_correction`). `π_old` is halo's recomputed log-prob of the token
 * (`rl.oldLogprobs: recompute`), `π_sampler` the one the sampler reported.
 *
 * @module
 */
import { quantile } from "../../internal/quantile.ts";

/**
 * Options of {@linkcode rolloutCorrection}.
 *
 * @example Usage
 * ```ts
 * import type { RolloutCorrectionOptions } from "./rollout_correction.ts";
 *
 * const options: RolloutCorrectionOptions = { cap: 2, policy: [true, false] };
 * ```
 */
export interface RolloutCorrectionOptions {
  /** The truncation C of the weights (> 0). */
  cap: number;
  /** Per sequence, whether its tokens count in the policy loss (and so in the metrics). */
  policy: readonly boolean[];
}

/**
 * Result of {@linkcode rolloutCorrection}.
 *
 * @example Usage
 * ```ts ignore
 * import type { RolloutCorrection } from "./rollout_correction.ts";
 * declare const c: RolloutCorrection;
 * console.log(c.metrics["rollout/tis_capped_frac"], c.weights[0][0]);
 * ```
 */
export interface RolloutCorrection {
  /** Per sequence, the weight of each token (every sequence, policy or not). */
  weights: Float64Array[];
  /**
   * Over the policy sequences' tokens (n = `rollout/tokens`), with `d = log π_old − log
   * π_sampler` and `ρ = exp(d)`: `rollout/kl_k1` = mean(−d) and `rollout/kl_k3` =
   * mean(ρ − 1 − d) (estimates of KL(π_sampler ‖ π_old) from the sampler's draws),
   * `rollout/max_abs_diff` = max |d|, `rollout/ratio_p05|p50|p95` (linear interpolation between
   * order statistics; 1 with no token), `rollout/tis_capped_frac` = share of tokens with
   * ρ > cap, `rollout/tis_weight_mean` = mean w.
   */
  metrics: Record<string, number>;
}

/**
 * The truncated importance-sampling weights of each sequence's tokens and the mismatch metrics
 * of the policy sequences (see {@linkcode RolloutCorrection}).
 *
 * @param sampler Per sequence, the sampler's log-prob of each response token.
 * @param trainer Per sequence, halo's recomputed log-probs of the same tokens.
 * @param options The cap and which sequences count.
 * @returns The weights and the metrics.
 * @throws {RangeError} When the sequences or their lengths do not match, a log-prob is not
 *   finite, or the cap is not > 0.
 *
 * @example A token the trainer finds 3 times likelier than the sampler is capped at 2
 * ```ts
 * import { rolloutCorrection } from "./rollout_correction.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const c = rolloutCorrection([[Math.log(0.1), Math.log(0.5)]], [[Math.log(0.3), Math.log(0.5)]], {
 *   cap: 2, policy: [true],
 * });
 * strictEqual(c.weights[0][0], 2);
 * strictEqual(c.weights[0][1], 1);
 * strictEqual(c.metrics["rollout/tis_capped_frac"], 0.5);
 * ok(Math.abs(c.metrics["rollout/max_abs_diff"] - Math.log(3)) < 1e-12);
 * ```
 */
export function rolloutCorrection(
  sampler: readonly ArrayLike<number>[],
  trainer: readonly ArrayLike<number>[],
  options: RolloutCorrectionOptions,
): RolloutCorrection {
  const where = "Cannot compute the rollout correction";
  const { cap, policy } = options;
  if (!(Number.isFinite(cap) && cap > 0)) {
    throw new RangeError(`${where}: "cap" must be a finite number > 0: current value is ${cap}`);
  }
  if (sampler.length !== trainer.length || policy.length !== sampler.length) {
    throw new RangeError(
      `${where}: expected as many trainer sequences and policy flags as sampler sequences ` +
        `(${sampler.length}): got ${trainer.length} and ${policy.length}`,
    );
  }
  const ratios: number[] = [];
  let k1 = 0;
  let k3 = 0;
  let maxAbs = 0;
  let capped = 0;
  let weightSum = 0;
  const weights = sampler.map((s, i) => {
    const t = trainer[i];
    if (s.length !== t.length) {
      throw new RangeError(
        `${where}: sequence ${i} has ${s.length} sampler and ${t.length} trainer log-probs`,
      );
    }
    const w = new Float64Array(s.length);
    for (let k = 0; k < s.length; k++) {
      const d = t[k] - s[k];
      if (!Number.isFinite(d)) {
        throw new RangeError(
          `${where}: sequence ${i} token ${k}: log-probs must be finite: sampler ${s[k]}, ` +
            `trainer ${t[k]}`,
        );
      }
      const r = Math.exp(d);
      w[k] = Math.min(r, cap);
      if (!policy[i]) continue;
      ratios.push(r);
      k1 -= d;
      k3 += r - 1 - d;
      maxAbs = Math.max(maxAbs, Math.abs(d));
      if (r > cap) capped++;
      weightSum += w[k];
    }
    return w;
  });
  const n = ratios.length;
  const sorted = Float64Array.from(ratios).sort();
  const mean = (x: number) => (n === 0 ? 0 : x / n);
  return {
    weights,
    metrics: {
      "rollout/tokens": n,
      "rollout/kl_k1": mean(k1),
      "rollout/kl_k3": mean(k3),
      "rollout/max_abs_diff": maxAbs,
      "rollout/ratio_p05": quantile(sorted, 0.05, 1),
      "rollout/ratio_p50": quantile(sorted, 0.5, 1),
      "rollout/ratio_p95": quantile(sorted, 0.95, 1),
      "rollout/tis_capped_frac": mean(capped),
      "rollout/tis_weight_mean": n === 0 ? 1 : weightSum / n,
    },
  };
}
