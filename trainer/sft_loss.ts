/**
 * The supervised fine-tuning loss: token-level negative log-likelihood of the completion tokens.
 *
 * @module
 */
import type { LossOutput } from "./types.ts";

/**
 * Input of {@linkcode sftLoss}.
 *
 * @example Two sequences of three tokens, loss on the last target of each
 * ```ts
 * import type { SftLossInput } from "./sft_loss.ts";
 *
 * const input: SftLossInput = {
 *   logprobs: [-0.1, -2.3, -0.4, -1.2],
 *   lossMask: [0, 1, 0, 1],
 * };
 * ```
 */
export interface SftLossInput {
  /**
   * Token log-probs `[batch, seqLen − 1]`: position `t` is `log p(token t+1 | tokens ≤ t)`, as
   * `tokenLogprobs` and `cpuBackward` return them.
   */
  logprobs: ArrayLike<number>;
  /**
   * 1 where the target token is a completion token (the loss is on it), 0 elsewhere (prompt,
   * padding); same layout as `logprobs`.
   */
  lossMask: ArrayLike<number>;
  /**
   * What the summed NLL is divided by. Default: the number of loss tokens of this input (a
   * token mean). Pass the token count of the whole optimizer batch to sum micro-batches instead
   * of averaging them.
   */
  normalizer?: number;
}

/**
 * Token-level NLL of the completion tokens (`Σ_t mask_t · −logprob_t / normalizer`), as a loss
 * term: the value, its gradient at the token log-probs (`−mask_t / normalizer`, independent of
 * the log-probs: the loss is linear in them, so a backward can take this gradient before the
 * forward has run), and the metrics `"loss/nll"` (the value) and `"loss/tokens"` (the number of
 * loss tokens). With no loss token at all the value and gradient are 0.
 *
 * @param input Log-probs, loss mask and normalizer.
 * @returns Value, `grad.dLogprobs` and metrics.
 * @throws {RangeError} When `logprobs` and `lossMask` differ in length, a mask value is not 0 or 1,
 *   or `normalizer` is not a finite number > 0.
 *
 * @example Mean NLL of two completion tokens
 * ```ts
 * import { sftLoss } from "./sft_loss.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const out = sftLoss({ logprobs: [-0.1, -2, -0.4, -1], lossMask: [0, 1, 0, 1] });
 * strictEqual(out.value, 1.5);
 * deepStrictEqual(out.grad.dLogprobs, new Float64Array([0, -0.5, 0, -0.5]));
 * deepStrictEqual(out.metrics, { "loss/nll": 1.5, "loss/tokens": 2 });
 * ```
 */
export function sftLoss(input: SftLossInput): LossOutput {
  const { logprobs, lossMask } = input;
  const where = "Cannot compute the SFT loss";
  if (logprobs.length !== lossMask.length) {
    throw new RangeError(
      `${where}: "lossMask" must have the length of "logprobs" (${logprobs.length}): current ` +
        `length is ${lossMask.length}`,
    );
  }
  let tokens = 0;
  for (let i = 0; i < lossMask.length; i++) {
    const m = lossMask[i];
    if (m !== 0 && m !== 1) {
      throw new RangeError(`${where}: "lossMask[${i}]" must be 0 or 1: current value is ${m}`);
    }
    tokens += m;
  }
  const normalizer = input.normalizer ?? tokens;
  if (
    input.normalizer !== undefined &&
    (typeof normalizer !== "number" || !Number.isFinite(normalizer) || normalizer <= 0)
  ) {
    throw new RangeError(
      `${where}: option "normalizer" must be a finite number > 0: current value is ${normalizer}`,
    );
  }
  const dLogprobs = new Float64Array(logprobs.length);
  let sum = 0;
  if (normalizer > 0) {
    for (let i = 0; i < logprobs.length; i++) {
      if (lossMask[i] === 0) continue;
      sum -= logprobs[i];
      dLogprobs[i] = -1 / normalizer;
    }
  }
  const value = normalizer > 0 ? sum / normalizer : 0;
  return {
    value,
    grad: { dLogprobs },
    metrics: { "loss/nll": value, "loss/tokens": tokens },
  };
}
