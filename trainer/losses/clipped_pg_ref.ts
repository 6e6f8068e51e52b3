/**
 * Float64 reference of the `clipped_pg` kernel: `clippedPolicyLoss` (the CPU loss) laid out as
 * the kernel's outputs.
 *
 * @module
 */
import { clippedPolicyLoss } from "./clipped_policy_loss.ts";
import type { Aggregation } from "./agg_loss.ts";
import { CLIPPED_PG_METRICS } from "../../kernels/clipped_pg/clipped_pg.ts";

/** Options of {@linkcode clippedPgRef}: `clippedPolicyLoss`'s plus the gradient's weight. */
export interface ClippedPgRefOptions {
  /** Current log-probs `[batch, width]`. */
  logprobs: ArrayLike<number>;
  /** Sampling-policy log-probs. */
  oldLogprobs: ArrayLike<number>;
  /** Per-token advantages. */
  advantages: ArrayLike<number>;
  /** Loss mask (0/1). */
  lossMask: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Default 0.2. */
  clipLow?: number;
  /** Default 0.28. */
  clipHigh?: number;
  /** Dual-clip constant. */
  dualClip?: number;
  /** Default `"token-mean"`. */
  aggregation?: Aggregation;
  /** Replaces the token (or sequence) count. */
  normalizer?: number;
  /** Token budget of `"seq-mean-token-sum-norm"`. */
  maxResponseLength?: number;
  /** Constant per-token weights of the loss (truncated importance sampling); default none. */
  tokenWeights?: ArrayLike<number>;
  /** Scale of the gradient; default 1. */
  weight?: number;
}

/**
 * The kernel's `out[0..8)` (value and metrics, in {@linkcode CLIPPED_PG_METRICS} order) and its
 * `dLogprobs`, in float64.
 *
 * @param options The loss inputs and options.
 * @returns `out` (8 values) and `dLogprobs`.
 *
 * @example One unclipped token
 * ```ts
 * import { clippedPgRef } from "./clipped_pg_ref.ts";
 * const ref = clippedPgRef({
 *   logprobs: [0], oldLogprobs: [0], advantages: [2], lossMask: [1], batch: 1, weight: 0.5,
 * });
 * console.log(ref.out[0], ref.dLogprobs[0]); // -2 -1
 * ```
 */
export function clippedPgRef(
  options: ClippedPgRefOptions,
): { out: Float64Array; dLogprobs: Float64Array } {
  const { weight = 1, ...rest } = options;
  const res = clippedPolicyLoss(rest);
  const out = Float64Array.from(CLIPPED_PG_METRICS, (k) => res.metrics[k]);
  const dLogprobs = res.grad.dLogprobs!.map((g) => weight * g);
  return { out, dLogprobs };
}
