/**
 * Group-relative advantages (GRPO and Dr. GRPO) from the rewards of a prompt's rollouts.
 *
 * @module
 */
import { checkFinite, checkLength, checkName, checkOption } from "./_validate.ts";

/**
 * How rewards become advantages: `"grpo"` standardises within the group, `"drgrpo"` (Dr. GRPO)
 * only subtracts the group mean.
 *
 * @example The default mode
 * ```ts
 * import type { AdvantageMode } from "./group_advantages.ts";
 * const mode: AdvantageMode = "grpo";
 * console.log(mode);
 * ```
 */
export type AdvantageMode = "grpo" | "drgrpo";

/**
 * Options of {@linkcode groupAdvantages}.
 *
 * @example Two prompts with two rollouts each
 * ```ts
 * import type { GroupAdvantagesOptions } from "./group_advantages.ts";
 * const options: GroupAdvantagesOptions = { rewards: [1, 0, 1, 1], groups: [0, 0, 1, 1] };
 * ```
 */
export interface GroupAdvantagesOptions {
  /** Reward of each sequence. */
  rewards: ArrayLike<number>;
  /** Prompt group of each sequence (any integers; sequences with equal ids form a group). */
  groups: ArrayLike<number>;
  /** `"grpo"` (default) or `"drgrpo"`. */
  mode?: AdvantageMode;
  /** Added to the group's standard deviation in `"grpo"`; default 1e-6, ≥ 0. */
  eps?: number;
}

const WHERE = "Cannot compute group advantages";
const MODES: readonly AdvantageMode[] = ["grpo", "drgrpo"];

/**
 * One advantage per sequence: `"grpo"`: `(r − mean_g) / (std_g + eps)` with `std_g` the sample
 * standard deviation (n − 1 denominator, as `torch.std`) of the sequence's group; `"drgrpo"`:
 * `r − mean_g`. A group of one sequence gets 0.
 *
 * @param options Rewards, groups, mode and eps.
 * @returns The advantages, one per sequence.
 * @throws {RangeError} On mismatched lengths, a non-finite reward, a group id that is not an
 *   integer, or a negative `eps`.
 * @throws {TypeError} On an unknown mode.
 *
 * @example GRPO advantages of two groups
 * ```ts
 * import { groupAdvantages } from "./group_advantages.ts";
 * import { ok } from "node:assert/strict";
 *
 * const adv = groupAdvantages({ rewards: [1, 0, 1, 5], groups: [0, 0, 1, 2] });
 * // Group 0: mean 0.5, sample std √0.5; groups 1 and 2 have one sequence each.
 * ok(Math.abs(adv[0] - 0.5 / Math.SQRT1_2) < 1e-5);
 * ok(Math.abs(adv[1] + 0.5 / Math.SQRT1_2) < 1e-5);
 * console.log(adv[2], adv[3]); // 0 0
 * ```
 */
export function groupAdvantages(options: GroupAdvantagesOptions): Float64Array {
  const { rewards, groups } = options;
  checkLength(WHERE, "rewards", rewards, rewards?.length ?? 0, "one per sequence");
  checkLength(WHERE, "groups", groups, rewards.length, 'one per sequence, like "rewards"');
  checkFinite(WHERE, "rewards", rewards);
  for (let i = 0; i < groups.length; i++) {
    if (!Number.isSafeInteger(groups[i])) {
      throw new RangeError(
        `${WHERE}: "groups[${i}]" must be an integer: current value is ${groups[i]}`,
      );
    }
  }
  const mode = checkName(WHERE, "mode", options.mode ?? "grpo", MODES);
  const eps = options.eps ?? 1e-6;
  checkOption(WHERE, "eps", eps, (x) => x >= 0, "a finite number ≥ 0");
  const members = new Map<number, number[]>();
  for (let i = 0; i < groups.length; i++) {
    const list = members.get(groups[i]);
    if (list) list.push(i);
    else members.set(groups[i], [i]);
  }
  const out = new Float64Array(rewards.length);
  for (const list of members.values()) {
    const n = list.length;
    if (n < 2) continue;
    let mean = 0;
    for (const i of list) mean += rewards[i];
    mean /= n;
    let ss = 0;
    for (const i of list) ss += (rewards[i] - mean) ** 2;
    const scale = mode === "grpo" ? 1 / (Math.sqrt(ss / (n - 1)) + eps) : 1;
    for (const i of list) out[i] = (rewards[i] - mean) * scale;
  }
  return out;
}
