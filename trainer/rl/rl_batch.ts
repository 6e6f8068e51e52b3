/**
 * Collation of RL rows (prompt + response) into a right-padded batch with the per-token arrays
 * the policy loss reads, in `sftLoss`'s layout: position `t` of `[batch, seqLen − 1]` is the
 * log-prob of token `t + 1`.
 *
 * @module
 */

/**
 * One row to train on.
 *
 * @example Usage
 * ```ts
 * import type { RlRow } from "./rl_batch.ts";
 *
 * const row: RlRow = {
 *   promptIds: [1, 2], tokens: [3, 4], oldLogprobs: new Float64Array([-0.5, -0.1]),
 *   advantage: 1, policy: true, anchor: 2, group: 0, correct: true,
 * };
 * ```
 */
export interface RlRow {
  /** The prompt's ids. */
  promptIds: readonly number[];
  /** The response's ids. */
  tokens: readonly number[];
  /** Old log-prob of each response token. */
  oldLogprobs: Float64Array;
  /**
   * A constant weight per response token of the policy loss (truncated importance sampling,
   * `min(π_old / π_sampler, C)`); default none (1).
   */
  tokenWeights?: Float64Array;
  /** The sequence's advantage (repeated over its tokens). */
  advantage: number;
  /** Whether its tokens count in the policy loss (`false`: align only, or filtered). */
  policy: boolean;
  /** Position in the whole sequence (prompt + response) of its anchor token, or `-1`. */
  anchor: number;
  /** Its group (prompt) number. */
  group: number;
  /** The verifier's correctness. */
  correct: boolean;
}

/**
 * A collated batch.
 *
 * @example Usage
 * ```ts ignore
 * import type { RlBatch } from "./rl_batch.ts";
 * declare const batch: RlBatch;
 * console.log(batch.lossTokens);
 * ```
 */
export interface RlBatch {
  /** Token ids, right-padded. */
  inputIds: number[][];
  /** 1 on real tokens, 0 on padding. */
  attentionMask: number[][];
  /** Tokens per row (the longest row). */
  seqLen: number;
  /** `[batch, seqLen − 1]`: 1 on response tokens that count in the policy loss. */
  lossMask: Float64Array;
  /** `[batch, seqLen − 1]`: old log-probs at response tokens. */
  oldLogprobs: Float64Array;
  /** `[batch, seqLen − 1]`: the row's advantage at its response tokens. */
  advantages: Float64Array;
  /**
   * `[batch, seqLen − 1]`: the rows' token weights at response tokens (1 for a row without
   * them, 0 elsewhere); `undefined` when no row has any.
   */
  tokenWeights?: Float64Array;
  /** Anchor position per row (`-1`: none). */
  anchors: number[];
  /** Group per row. */
  groups: number[];
  /** Correctness per row. */
  correct: boolean[];
  /** Loss tokens (Σ lossMask). */
  lossTokens: number;
  /** Real tokens (prompt + response). */
  tokens: number;
}

/**
 * Collates rows into a right-padded batch (the padding id on the right, attention mask 0).
 *
 * @param rows The rows.
 * @param options The padding id.
 * @returns The batch.
 *
 * @example One row of a 2-token prompt and a 2-token response
 * ```ts
 * import { collateRl } from "./rl_batch.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const batch = collateRl([{
 *   promptIds: [1, 2], tokens: [3, 4], oldLogprobs: new Float64Array([-0.5, -0.1]),
 *   advantage: 2, policy: true, anchor: 2, group: 0, correct: true,
 * }], { padId: 0 });
 * deepStrictEqual([...batch.lossMask], [0, 1, 1]);
 * deepStrictEqual([...batch.oldLogprobs], [0, -0.5, -0.1]);
 * deepStrictEqual([...batch.advantages], [0, 2, 2]);
 * ```
 */
export function collateRl(rows: readonly RlRow[], options: { padId: number }): RlBatch {
  const seqLen = Math.max(...rows.map((r) => r.promptIds.length + r.tokens.length));
  const B = rows.length;
  const T1 = seqLen - 1;
  const lossMask = new Float64Array(B * T1);
  const oldLogprobs = new Float64Array(B * T1);
  const advantages = new Float64Array(B * T1);
  const weighted = rows.some((r) => r.tokenWeights !== undefined);
  const tokenWeights = weighted ? new Float64Array(B * T1) : undefined;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  let lossTokens = 0;
  let tokens = 0;
  rows.forEach((r, b) => {
    const ids = [...r.promptIds, ...r.tokens];
    tokens += ids.length;
    const n = ids.length;
    inputIds.push([...ids, ...new Array(seqLen - n).fill(options.padId)]);
    attentionMask.push(Array.from({ length: seqLen }, (_, t) => (t < n ? 1 : 0)));
    const P = r.promptIds.length;
    for (let j = 0; j < r.tokens.length; j++) {
      const t = b * T1 + P + j - 1;
      oldLogprobs[t] = r.oldLogprobs[j];
      if (tokenWeights) tokenWeights[t] = r.tokenWeights?.[j] ?? 1;
      if (r.policy) {
        lossMask[t] = 1;
        advantages[t] = r.advantage;
        lossTokens++;
      }
    }
  });
  return {
    inputIds,
    attentionMask,
    seqLen,
    lossMask,
    oldLogprobs,
    advantages,
    ...(tokenWeights ? { tokenWeights } : {}),
    anchors: rows.map((r) => r.anchor),
    groups: rows.map((r) => r.group),
    correct: rows.map((r) => r.correct),
    lossTokens,
    tokens,
  };
}
