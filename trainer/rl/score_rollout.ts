/**
 * Scoring one rollout: the verifier's decision in reward mode (DAPO ±1 or 0/1), DAPO's soft
 * overlong punishment, and the marker offset the anchors need.
 *
 * @module
 */
import { verify } from "../../verify/mod.ts";
import type { PreparedGold } from "../../verify/mod.ts";
import { overlongPenalty } from "../losses/mod.ts";
import type { RlConfig } from "./config.ts";

/**
 * The score of a rollout.
 *
 * @example Usage
 * ```ts
 * import type { RolloutScore } from "./score_rollout.ts";
 *
 * const score: RolloutScore = {
 *   reward: 1, correct: true, markerOffset: 10, penalty: 0, truncated: false,
 * };
 * ```
 */
export interface RolloutScore {
  /** The shaped reward: the verifier's reward plus the overlong penalty. */
  reward: number;
  /** The verifier's binary correctness (`null`: the gold is unusable; skip the group). */
  correct: boolean | null;
  /** Offset of the graded answer marker in the response, or `-1` when none was found. */
  markerOffset: number;
  /** The overlong penalty added (≤ 0). */
  penalty: number;
  /** Whether the response hit `maxNewTokens` without an EOS. */
  truncated: boolean;
}

/**
 * Options of {@linkcode scoreRollout}.
 *
 * @example Usage
 * ```ts
 * import type { ScoreRolloutOptions } from "./score_rollout.ts";
 *
 * const options: ScoreRolloutOptions = {
 *   mode: "dapo", budgetMs: 0, maxNewTokens: 64, overlongBuffer: 16, overlongFactor: 1,
 * };
 * ```
 */
export interface ScoreRolloutOptions {
  /** `"dapo"`: +1 / −1; `"binary"`: 1 / 0. */
  mode: "dapo" | "binary";
  /** Verifier budget per call in ms; `0`: none (deterministic). */
  budgetMs: number;
  /** The response length limit. */
  maxNewTokens: number;
  /** DAPO's overlong buffer (`0`: no punishment). */
  overlongBuffer: number;
  /** The punishment at `maxNewTokens`. */
  overlongFactor: number;
  /**
   * The problem text, when known: its nouns after a plain-number answer count as that number
   * (`#### 12 bananas` for a problem about bananas; see `VerifyOptions.problem`).
   */
  problem?: string;
}

/**
 * Scores a response against its gold: the verifier in reward mode (the answer must follow a
 * marker), the reward of the mode, plus the overlong penalty of its length.
 *
 * @param rollout The response text, its length in tokens, and whether it was cut off.
 * @param gold The gold answer.
 * @param options Reward mode, budget and overlong shaping.
 * @returns The score.
 *
 * @example A correct answer and a wrong one
 * ```ts
 * import { scoreRollout } from "./score_rollout.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const options = {
 *   mode: "dapo", budgetMs: 0, maxNewTokens: 20, overlongBuffer: 4, overlongFactor: 1,
 * } as const;
 * const good = scoreRollout({ text: "3 + 4 = 7\nAnswer: 7", length: 10, truncated: false }, "7", options);
 * strictEqual(good.reward, 1);
 * strictEqual(good.markerOffset, 10);
 * const long = scoreRollout({ text: "Answer: 8", length: 18, truncated: false }, "7", options);
 * strictEqual(long.reward, -1 - 0.5); // 2 tokens into the 4-token buffer
 * ```
 */
export function scoreRollout(
  rollout: { text: string; length: number; truncated: boolean },
  gold: string | PreparedGold,
  options: ScoreRolloutOptions,
): RolloutScore {
  const v = verify(rollout.text, gold, {
    mode: "reward",
    budgetMs: options.budgetMs > 0 ? options.budgetMs : Infinity,
    ...(options.problem === undefined ? {} : { problem: options.problem }),
  });
  const base = v.correct === true ? 1 : options.mode === "dapo" ? -1 : 0;
  const penalty = options.overlongBuffer > 0
    ? overlongPenalty({
      length: rollout.length,
      maxLength: options.maxNewTokens,
      buffer: options.overlongBuffer,
      factor: options.overlongFactor,
    })
    : 0;
  return {
    reward: base + penalty,
    correct: v.correct,
    markerOffset: v.markerOffset ?? -1,
    penalty,
    truncated: rollout.truncated,
  };
}

/**
 * The {@linkcode scoreRollout} options of a run's rollouts: `rl.reward`'s mode and budget,
 * `rl.maxNewTokens`, `rl.overlong`, and the prompt's question as the verifier's `problem` unless
 * `rl.reward.problemNouns` is off.
 *
 * @param rl The run's `rl` section.
 * @param question The prompt's question (before any template).
 * @returns The options.
 *
 * @example The noun rule ablated
 * ```ts
 * import { rolloutScoreOptions } from "./score_rollout.ts";
 * import { DEFAULT_RL_CONFIG } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const question = "How many bananas?";
 * strictEqual(rolloutScoreOptions(DEFAULT_RL_CONFIG, question).problem, question);
 * const off = { ...DEFAULT_RL_CONFIG, reward: { ...DEFAULT_RL_CONFIG.reward, problemNouns: false } };
 * strictEqual(rolloutScoreOptions(off, question).problem, undefined);
 * ```
 */
export function rolloutScoreOptions(rl: RlConfig, question: string): ScoreRolloutOptions {
  return {
    mode: rl.reward.mode,
    budgetMs: rl.reward.budgetMs,
    maxNewTokens: rl.maxNewTokens,
    overlongBuffer: rl.overlong.buffer,
    overlongFactor: rl.overlong.factor,
    ...(rl.reward.problemNouns ? { problem: question } : {}),
  };
}
