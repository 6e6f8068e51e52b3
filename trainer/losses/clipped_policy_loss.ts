/**
 * The PPO / DAPO clipped policy-gradient loss (verl's `compute_policy_loss_vanilla` with
 * decoupled clip ranges and the optional dual clip).
 *
 * @module
 */
import type { LossOutput } from "../types.ts";
import { aggLoss, type Aggregation, AGGREGATIONS } from "./agg_loss.ts";
import {
  checkCount,
  checkFinite,
  checkLength,
  checkMask,
  checkName,
  checkOption,
} from "./_validate.ts";

/**
 * Bound on `|logprobs − oldLogprobs|` before the exponential (verl clamps the log-ratio to
 * ±20 the same way): beyond it the ratio is held at `exp(±20)` and its gradient is 0.
 *
 * @example The largest ratio
 * ```ts
 * import { LOG_RATIO_CLAMP } from "./clipped_policy_loss.ts";
 * console.log(Math.exp(LOG_RATIO_CLAMP)); // ≈ 4.85e8
 * ```
 */
export const LOG_RATIO_CLAMP = 20;

/**
 * Options of {@linkcode clippedPolicyLoss}. Per-token arrays are `[batch, seqLen − 1]` like
 * `sftLoss`'s (position t is the log-prob of token t + 1).
 *
 * @example One sequence of two response tokens
 * ```ts
 * import type { ClippedPolicyLossOptions } from "./clipped_policy_loss.ts";
 * const options: ClippedPolicyLossOptions = {
 *   logprobs: [-1, -2],
 *   oldLogprobs: [-1, -2],
 *   advantages: [0.5, 0.5],
 *   lossMask: [1, 1],
 *   batch: 1,
 * };
 * ```
 */
export interface ClippedPolicyLossOptions {
  /** Log-probs under the current policy `[batch, seqLen − 1]`. */
  logprobs: ArrayLike<number>;
  /** Log-probs under the policy that sampled the rollouts, same layout. */
  oldLogprobs: ArrayLike<number>;
  /** Advantage of each token (a sequence's advantage repeated over its tokens), same layout. */
  advantages: ArrayLike<number>;
  /** 1 on response tokens that count, 0 elsewhere, same layout. */
  lossMask: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Lower clip range: the ratio is clipped below at `1 − clipLow`; default 0.2, in [0, 1). */
  clipLow?: number;
  /** Upper clip range: the ratio is clipped above at `1 + clipHigh`; default 0.28 (DAPO). */
  clipHigh?: number;
  /** Dual-clip constant `c > 1`: for `A < 0` the loss is capped at `−A·c`; default none. */
  dualClip?: number;
  /** How per-token losses are aggregated; default `"token-mean"`. */
  aggregation?: Aggregation;
  /** Replaces the token (or sequence) count of the aggregation; see `aggLoss`. */
  normalizer?: number;
  /** Token budget of `"seq-mean-token-sum-norm"`; default `seqLen − 1`. */
  maxResponseLength?: number;
  /**
   * A constant weight per token, same layout, multiplying the token's loss and gradient (no
   * gradient flows through it): the truncated importance-sampling weight
   * `min(π_old / π_sampler, C)` of off-policy rollouts (verl's `rollout_is`, TRL's
   * `vllm_importance_sampling_correction`). Finite and ≥ 0; default none (every weight 1, and
   * the same numbers bit for bit as without it).
   */
  tokenWeights?: ArrayLike<number>;
}

const WHERE = "Cannot compute the clipped policy loss";

/**
 * The clipped policy-gradient loss. Per token, with `r = exp(logprobs − oldLogprobs)` (log-ratio
 * clamped to ±{@linkcode LOG_RATIO_CLAMP}): `l1 = −A·r`, `l2 = −A·clip(r, 1 − clipLow,
 * 1 + clipHigh)`, `l = max(l1, l2)`, and with `dualClip = c` and `A < 0`, `l = min(l, −A·c)`;
 * then aggregated by `aggLoss`. The gradient at the log-probs is exact: `−A·r` times the
 * token's aggregation weight where `l1` is active, 0 where a clip is. With `tokenWeights`,
 * token i's `l` and its gradient are multiplied by `tokenWeights[i]` (a constant); the clip
 * fractions, `ppo_kl` and `ratio_max` do not change.
 *
 * Metrics (fractions and means over loss tokens, 0 when there is none): `"loss/pg"` (the value),
 * `"loss/pg_clipfrac"` (`l2 > l1`), `"loss/pg_clipfrac_low"` (clipped at `1 − clipLow`, i.e.
 * `A < 0`), `"loss/pg_clipfrac_high"` (clipped at `1 + clipHigh`, `A > 0`),
 * `"loss/pg_clipfrac_dual"` (capped by the dual clip), `"loss/ppo_kl"` (mean of
 * `oldLogprobs − logprobs`), `"loss/ratio_max"` (largest `r`) and `"loss/pg_tokens"`.
 *
 * @param options Log-probs, advantages, mask, clip ranges and aggregation.
 * @returns Value, `grad.dLogprobs` (`[batch, seqLen − 1]`) and metrics.
 * @throws {RangeError} On mismatched lengths, a mask value other than 0/1, a non-finite value,
 *   or an option out of range.
 * @throws {TypeError} On an unknown aggregation or a missing array.
 *
 * @example One token clipped above, one not
 * ```ts
 * import { clippedPolicyLoss } from "./clipped_policy_loss.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const out = clippedPolicyLoss({
 *   logprobs: [Math.log(2), 0],
 *   oldLogprobs: [0, 0],
 *   advantages: [1, 1],
 *   lossMask: [1, 1],
 *   batch: 1,
 * });
 * // Token 0: r = 2 is clipped to 1.28, so l = −1.28 and no gradient; token 1: r = 1, l = −1.
 * ok(Math.abs(out.value - (-1.28 - 1) / 2) < 1e-12);
 * strictEqual(out.grad.dLogprobs![0], 0);
 * strictEqual(out.grad.dLogprobs![1], -0.5);
 * strictEqual(out.metrics["loss/pg_clipfrac_high"], 0.5);
 * ```
 */
export function clippedPolicyLoss(options: ClippedPolicyLossOptions): LossOutput {
  const { logprobs, oldLogprobs, advantages, lossMask } = options;
  const batch = checkCount(WHERE, "batch", options.batch, 1);
  checkLength(WHERE, "logprobs", logprobs, logprobs?.length ?? 0, "[batch, seqLen − 1]");
  if (logprobs.length % batch !== 0) {
    throw new RangeError(
      `${WHERE}: "logprobs" must have batch · (seqLen − 1) values, a multiple of "batch" ` +
        `(${batch}): current length is ${logprobs.length}`,
    );
  }
  const n = logprobs.length;
  const shape = "[batch, seqLen − 1]";
  checkLength(WHERE, "oldLogprobs", oldLogprobs, n, shape);
  checkLength(WHERE, "advantages", advantages, n, shape);
  checkLength(WHERE, "lossMask", lossMask, n, shape);
  checkMask(WHERE, "lossMask", lossMask);
  checkFinite(WHERE, "logprobs", logprobs);
  checkFinite(WHERE, "oldLogprobs", oldLogprobs);
  checkFinite(WHERE, "advantages", advantages);
  const tokenWeights = options.tokenWeights;
  if (tokenWeights !== undefined) {
    checkLength(WHERE, "tokenWeights", tokenWeights, n, shape);
    for (let i = 0; i < n; i++) {
      const w = tokenWeights[i];
      if (!(Number.isFinite(w) && w >= 0)) {
        throw new RangeError(
          `${WHERE}: "tokenWeights" must be finite and ≥ 0: current value at index ${i} is ${w}`,
        );
      }
    }
  }
  const aggregation = checkName(
    WHERE,
    "aggregation",
    options.aggregation ?? "token-mean",
    AGGREGATIONS,
  );
  const clipLow = options.clipLow ?? 0.2;
  const clipHigh = options.clipHigh ?? 0.28;
  checkOption(WHERE, "clipLow", clipLow, (x) => x >= 0 && x < 1, "a number in [0, 1)");
  checkOption(WHERE, "clipHigh", clipHigh, (x) => x >= 0, "a finite number ≥ 0");
  checkOption(WHERE, "dualClip", options.dualClip, (x) => x > 1, "a finite number > 1");
  checkOption(WHERE, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
  checkOption(
    WHERE,
    "maxResponseLength",
    options.maxResponseLength,
    (x) => x > 0,
    "a finite number > 0",
  );
  const dual = options.dualClip;

  const lossMat = new Float64Array(n);
  const dLoss = new Float64Array(n); // d l / d logprobs per token
  let tokens = 0;
  let clipLowCount = 0;
  let clipHighCount = 0;
  let dualCount = 0;
  let kl = 0;
  let ratioMax = 0;
  for (let i = 0; i < n; i++) {
    if (lossMask[i] === 0) continue;
    const a = advantages[i];
    const logRatio = logprobs[i] - oldLogprobs[i];
    const clamped = Math.min(Math.max(logRatio, -LOG_RATIO_CLAMP), LOG_RATIO_CLAMP);
    const r = Math.exp(clamped);
    const dr = clamped === logRatio ? r : 0;
    const l1 = -a * r;
    const l2 = -a * Math.min(Math.max(r, 1 - clipLow), 1 + clipHigh);
    let l = l1;
    let g = -a * dr;
    if (l2 > l1) {
      l = l2;
      g = 0;
      if (a < 0) clipLowCount++;
      else clipHighCount++;
    }
    if (dual !== undefined && a < 0 && l > -a * dual) {
      l = -a * dual;
      g = 0;
      dualCount++;
    }
    if (tokenWeights !== undefined) {
      // A constant factor (no gradient through it): the loss and its derivative scale alike.
      l *= tokenWeights[i];
      g *= tokenWeights[i];
    }
    lossMat[i] = l;
    dLoss[i] = g;
    tokens++;
    kl += -logRatio;
    ratioMax = Math.max(ratioMax, r);
  }
  const { value, weights } = aggLoss({
    lossMat,
    lossMask,
    batch,
    aggregation,
    normalizer: options.normalizer,
    maxResponseLength: options.maxResponseLength,
  });
  const dLogprobs = new Float64Array(n);
  for (let i = 0; i < n; i++) dLogprobs[i] = weights[i] * dLoss[i];
  const frac = (count: number) => (tokens > 0 ? count / tokens : 0);
  return {
    value,
    grad: { dLogprobs },
    metrics: {
      "loss/pg": value,
      "loss/pg_clipfrac": frac(clipLowCount + clipHighCount),
      "loss/pg_clipfrac_low": frac(clipLowCount),
      "loss/pg_clipfrac_high": frac(clipHighCount),
      "loss/pg_clipfrac_dual": frac(dualCount),
      "loss/ppo_kl": frac(kl),
      "loss/ratio_max": ratioMax,
      "loss/pg_tokens": tokens,
    },
  };
}
