/**
 * From scored groups to training rows: group advantages of the shaped rewards, the anchor token
 * of each response (from the verifier's marker offset and the response tokens' character
 * offsets), and which rows count in the policy loss (kept groups, minus truncated responses under
 * overlong filtering; align-only groups never).
 *
 * @module
 */
import type { AnchorPositionName } from "../losses/mod.ts";
import type { RlRow } from "./rl_batch.ts";
import type { Rollout } from "./rollout.ts";
import type { RolloutScore } from "./score_rollout.ts";
import { anchorPosition, groupAdvantages } from "../losses/mod.ts";
import { mixNumber } from "../../internal/random.ts";

/**
 * A generated group with its scores.
 *
 * @example Usage
 * ```ts ignore
 * import type { ScoredGroup } from "./build_rows.ts";
 * declare const group: ScoredGroup;
 * console.log(group.rollouts.length === group.scores.length); // true
 * ```
 */
export interface ScoredGroup {
  /** The rollouts of one prompt. */
  rollouts: Rollout[];
  /** Their scores, in the same order. */
  scores: RolloutScore[];
}

/**
 * Options of {@linkcode buildRows}.
 *
 * @example Usage
 * ```ts
 * import type { BuildRowsOptions } from "./build_rows.ts";
 *
 * const options: BuildRowsOptions = {
 *   advantage: "grpo", anchor: "before-marker", overlongFilter: false, seed: 1,
 * };
 * ```
 */
export interface BuildRowsOptions {
  /** `"grpo"` or `"drgrpo"` group advantages. */
  advantage: "grpo" | "drgrpo";
  /** The anchor position. */
  anchor: AnchorPositionName;
  /** Mask truncated responses out of the policy loss. */
  overlongFilter: boolean;
  /** Seed of the `random` anchor (row `i` draws from `(seed, i)`). */
  seed: number;
}

/**
 * Builds the rows of a step: the policy groups' rollouts (advantages over each group's shaped
 * rewards), then the align-only groups' (advantage 0, outside the policy loss). A row's anchor is
 * its prompt length plus `anchorPosition` of its response, or −1 when the verifier found no
 * marker. The order does not decide the mini-batches: `rlUpdate` shares the policy groups and
 * the align-only groups out over them separately (`splitMiniBatches`).
 *
 * @param policy The groups the policy loss trains on.
 * @param alignOnly Groups kept for the align term only.
 * @param options Advantage mode, anchor, overlong filtering, seed.
 * @returns The rows, group by group.
 *
 * @example A mixed group of two
 * ```ts
 * import { buildRows } from "./build_rows.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const rollout = (group: number) => ({
 *   group, promptIds: [1, 2, 3], tokens: [4, 5, 6], oldLogprobs: new Float64Array(3),
 *   text: "x A", tokenOffsets: [0, 1, 2], stopReason: "eos" as const,
 * });
 * const score = (ok: boolean) => ({
 *   reward: ok ? 1 : -1, correct: ok, markerOffset: 2, penalty: 0, truncated: false,
 * });
 * const rows = buildRows([{ rollouts: [rollout(0), rollout(0)], scores: [score(true), score(false)] }], [], {
 *   advantage: "drgrpo", anchor: "before-marker", overlongFilter: false, seed: 0,
 * });
 * strictEqual(rows[0].advantage, 1);
 * strictEqual(rows[1].advantage, -1);
 * strictEqual(rows[0].anchor, 3 + 1); // prompt length + the token before the marker's
 * ```
 */
export function buildRows(
  policy: readonly ScoredGroup[],
  alignOnly: readonly ScoredGroup[],
  options: BuildRowsOptions,
): RlRow[] {
  const flat = [
    ...policy.flatMap((g) => g.rollouts.map((r, i) => ({ r, score: g.scores[i], policy: true }))),
    ...alignOnly.flatMap((g) =>
      g.rollouts.map((r, i) => ({ r, score: g.scores[i], policy: false }))
    ),
  ];
  const advantages = groupAdvantages({
    rewards: flat.map((x) => x.score.reward),
    groups: flat.map((x) => x.r.group),
    mode: options.advantage,
  });
  return flat.map((x, i) => {
    const j = anchorPosition({
      tokenOffsets: x.r.tokenOffsets,
      markerOffset: x.score.markerOffset,
      position: options.anchor,
      seed: mixNumber(options.seed, i) >>> 0,
    });
    return {
      promptIds: x.r.promptIds,
      tokens: x.r.tokens,
      oldLogprobs: x.r.oldLogprobs,
      advantage: x.policy ? advantages[i] : 0,
      policy: x.policy && !(options.overlongFilter && x.score.truncated),
      anchor: j >= 0 ? x.r.promptIds.length + j : -1,
      group: x.r.group,
      correct: x.score.correct === true,
    };
  });
}
