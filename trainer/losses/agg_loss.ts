/**
 * The one aggregation of a per-token loss matrix into a scalar (verl's `agg_loss`), shared by the
 * policy loss on the CPU and mirrored by the `clipped_pg` kernel.
 *
 * @module
 */
import {
  checkCount,
  checkFinite,
  checkLength,
  checkMask,
  checkName,
  checkOption,
} from "./_validate.ts";

/**
 * How per-token losses become one number (verl's `loss_agg_mode`):
 * - `"token-mean"`: Σ mask·l / (`normalizer` ?? Σ mask);
 * - `"seq-mean-token-sum"`: Σ_b (Σ_t mask·l) / (`normalizer` ?? number of sequences with ≥ 1 loss
 *   token);
 * - `"seq-mean-token-mean"`: Σ_b (Σ_t mask·l / Σ_t mask) / (`normalizer` ?? that sequence count);
 * - `"seq-mean-token-sum-norm"` (Dr. GRPO): Σ mask·l / ((`normalizer` ?? `batch`) ·
 *   (`maxResponseLength` ?? tokens per sequence)).
 *
 * Unlike the other modes, the last one's default counts every row, fully masked ones included
 * (a Hidden-Align-only row of an RL batch, say); `rlUpdate` always passes the number of policy
 * rows as `normalizer`, so a direct caller with such rows should pass it too.
 *
 * @example A Dr. GRPO aggregation name
 * ```ts
 * import type { Aggregation } from "./agg_loss.ts";
 * const mode: Aggregation = "seq-mean-token-sum-norm";
 * console.log(mode);
 * ```
 */
export type Aggregation =
  | "token-mean"
  | "seq-mean-token-sum"
  | "seq-mean-token-mean"
  | "seq-mean-token-sum-norm";

/**
 * Every {@linkcode Aggregation}, in the order of their codes in the `clipped_pg` kernel.
 *
 * @example List the modes
 * ```ts
 * import { AGGREGATIONS } from "./agg_loss.ts";
 * console.log(AGGREGATIONS.length); // 4
 * ```
 */
export const AGGREGATIONS: readonly Aggregation[] = [
  "token-mean",
  "seq-mean-token-sum",
  "seq-mean-token-mean",
  "seq-mean-token-sum-norm",
];

/**
 * Options of {@linkcode aggLoss}.
 *
 * @example Two sequences of two tokens
 * ```ts
 * import type { AggLossOptions } from "./agg_loss.ts";
 * const options: AggLossOptions = {
 *   lossMat: [1, 2, 3, 4],
 *   lossMask: [1, 1, 1, 0],
 *   batch: 2,
 *   aggregation: "seq-mean-token-mean",
 * };
 * ```
 */
export interface AggLossOptions {
  /** Per-token losses `[batch, tokens]`, row-major (e.g. `[batch, seqLen − 1]`). */
  lossMat: ArrayLike<number>;
  /** 1 where the token counts, 0 elsewhere; same layout. */
  lossMask: ArrayLike<number>;
  /** Number of sequences (rows); the length must be a multiple of it. */
  batch: number;
  /** The aggregation; default `"token-mean"`. */
  aggregation?: Aggregation;
  /**
   * Replaces the denominator's count, so that micro-batches add up to their mini-batch's loss:
   * the token count (`"token-mean"`) or the sequence count (the `seq-mean-*` modes; `batch` for
   * `"seq-mean-token-sum-norm"`). A finite number > 0.
   */
  normalizer?: number;
  /** Token budget of `"seq-mean-token-sum-norm"`; default the tokens per sequence. */
  maxResponseLength?: number;
}

/**
 * What {@linkcode aggLoss} returns: the scalar and, since every mode is linear in the losses, the
 * weight of each token in it (so `value = Σ weights_t · lossMat_t` and `weights` is the gradient).
 *
 * @example Read the weight of the first token
 * ```ts
 * import { aggLoss } from "./agg_loss.ts";
 * const { weights } = aggLoss({ lossMat: [2, 4], lossMask: [1, 1], batch: 1 });
 * console.log(weights[0]); // 0.5
 * ```
 */
export interface AggLossResult {
  /** The aggregated loss (0 when no token counts). */
  value: number;
  /** d value / d lossMat, same layout (0 where the mask is 0). */
  weights: Float64Array;
}

const WHERE = "Cannot aggregate the loss";

/**
 * Aggregates a per-token loss matrix into a scalar by one of the four {@linkcode Aggregation}
 * modes, returning the value and each token's weight in it (its gradient). With no loss token
 * (or no contributing sequence) the value and all weights are 0.
 *
 * @param options Loss matrix, mask, batch and mode.
 * @returns The value and the per-token weights.
 * @throws {RangeError} On a length that is not `batch` rows, different lengths, a mask value
 *   other than 0/1, a non-finite loss, or a `normalizer`/`maxResponseLength` ≤ 0.
 * @throws {TypeError} On an unknown aggregation.
 *
 * @example The four modes on the same losses
 * ```ts
 * import { aggLoss } from "./agg_loss.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const lossMat = [1, 2, 3, 4];
 * const lossMask = [1, 1, 1, 0]; // sequence 0: tokens 1 and 2; sequence 1: token 3
 * const agg = (aggregation: Parameters<typeof aggLoss>[0]["aggregation"]) =>
 *   aggLoss({ lossMat, lossMask, batch: 2, aggregation }).value;
 * strictEqual(agg("token-mean"), 2); // (1 + 2 + 3) / 3
 * strictEqual(agg("seq-mean-token-sum"), 3); // (3 + 3) / 2
 * strictEqual(agg("seq-mean-token-mean"), 2.25); // (1.5 + 3) / 2
 * strictEqual(agg("seq-mean-token-sum-norm"), 1.5); // 6 / (2 · 2)
 * ```
 */
export function aggLoss(options: AggLossOptions): AggLossResult {
  const { lossMat, lossMask } = options;
  const batch = checkCount(WHERE, "batch", options.batch, 1);
  const aggregation = checkName(
    WHERE,
    "aggregation",
    options.aggregation ?? "token-mean",
    AGGREGATIONS,
  );
  checkLength(WHERE, "lossMat", lossMat, lossMat?.length ?? 0, "[batch, tokens]");
  if (lossMat.length % batch !== 0) {
    throw new RangeError(
      `${WHERE}: "lossMat" must have batch · tokens values, a multiple of "batch" (${batch}): ` +
        `current length is ${lossMat.length}`,
    );
  }
  checkLength(WHERE, "lossMask", lossMask, lossMat.length, "[batch, tokens]");
  checkMask(WHERE, "lossMask", lossMask);
  checkFinite(WHERE, "lossMat", lossMat);
  checkOption(WHERE, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
  checkOption(
    WHERE,
    "maxResponseLength",
    options.maxResponseLength,
    (x) => x > 0,
    "a finite number > 0",
  );
  const width = lossMat.length / batch;
  const weights = new Float64Array(lossMat.length);
  // Per-sequence token counts and the counts the modes divide by.
  const seqTokens = new Float64Array(batch);
  let tokens = 0;
  let seqs = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < width; t++) seqTokens[b] += lossMask[b * width + t];
    tokens += seqTokens[b];
    if (seqTokens[b] > 0) seqs++;
  }
  let denom: number;
  switch (aggregation) {
    case "token-mean":
      denom = options.normalizer ?? tokens;
      break;
    case "seq-mean-token-sum":
    case "seq-mean-token-mean":
      denom = options.normalizer ?? seqs;
      break;
    case "seq-mean-token-sum-norm":
      denom = (options.normalizer ?? batch) * (options.maxResponseLength ?? width);
      break;
  }
  if (tokens === 0 || denom === 0) return { value: 0, weights };
  // The value as the formulas read (sums first, one division), the weights per token.
  let total = 0;
  for (let b = 0; b < batch; b++) {
    if (seqTokens[b] === 0) continue;
    const perSeq = aggregation === "seq-mean-token-mean";
    const w = perSeq ? 1 / (denom * seqTokens[b]) : 1 / denom;
    let seqSum = 0;
    for (let t = 0; t < width; t++) {
      const i = b * width + t;
      if (lossMask[i] === 0) continue;
      weights[i] = w;
      seqSum += lossMat[i];
    }
    total += perSeq ? seqSum / seqTokens[b] : seqSum;
  }
  const value = total / denom;
  return { value, weights };
}
