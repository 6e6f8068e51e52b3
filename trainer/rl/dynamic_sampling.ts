/**
 * DAPO's dynamic sampling: keep only groups whose rollouts disagree on correctness (an
 * all-correct or all-wrong group has zero advantage everywhere), and generate more batches until
 * the training batch is full or the generation budget is spent.
 *
 * @module
 */

/**
 * How a group's correctness splits.
 *
 * @example Usage
 * ```ts
 * import type { GroupKind } from "./dynamic_sampling.ts";
 *
 * const kind: GroupKind = "mixed";
 * ```
 */
export type GroupKind = "mixed" | "all-correct" | "all-wrong" | "skip";

/**
 * The kind of a group from its rollouts' binary correctness: `"skip"` when any is `null` (the
 * gold is unusable), else mixed, all-correct or all-wrong.
 *
 * @param correct Each rollout's correctness.
 * @returns The kind.
 *
 * @example Usage
 * ```ts
 * import { groupKind } from "./dynamic_sampling.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(groupKind([true, false, true]), "mixed");
 * strictEqual(groupKind([false, false]), "all-wrong");
 * strictEqual(groupKind([true, null]), "skip");
 * ```
 */
export function groupKind(correct: readonly (boolean | null)[]): GroupKind {
  if (correct.some((c) => c === null)) return "skip";
  const n = correct.filter((c) => c).length;
  return n === 0 ? "all-wrong" : n === correct.length ? "all-correct" : "mixed";
}

/**
 * Options of {@linkcode fillBatch}.
 *
 * @example Usage
 * ```ts
 * import type { FillBatchOptions } from "./dynamic_sampling.ts";
 *
 * const options: FillBatchOptions<boolean[]> = {
 *   target: 8, maxGenBatches: 3, dynamicSampling: true, keepAllCorrectForAlign: false,
 *   onShort: "train", correctOf: (g) => g,
 * };
 * ```
 */
export interface FillBatchOptions<G> {
  /** Groups to train on (`trainBatchPrompts`). */
  target: number;
  /** Most generation batches. */
  maxGenBatches: number;
  /** Drop groups whose correctness is all equal; `false` keeps every usable group. */
  dynamicSampling: boolean;
  /** Keep all-correct groups aside for the align term (not counted in `target`). */
  keepAllCorrectForAlign: boolean;
  /** `"train"` on a short batch, or `"stop"` (throw). */
  onShort: "train" | "stop";
  /** The correctness of a group's rollouts. */
  correctOf(group: G): readonly (boolean | null)[];
}

/**
 * Result of {@linkcode fillBatch}.
 *
 * @example Usage
 * ```ts
 * import type { FilledBatch } from "./dynamic_sampling.ts";
 *
 * const filled: FilledBatch<number> = {
 *   kept: [1, 2], alignOnly: [], genBatches: 2, generated: 6, dropped: 4, short: false,
 *   kinds: { "mixed": 3, "all-correct": 1, "all-wrong": 2, "skip": 0 },
 * };
 * ```
 */
export interface FilledBatch<G> {
  /** The groups to train on: exactly `target` unless the batch is short. */
  kept: G[];
  /** All-correct groups kept for the align term only (at most `target`). */
  alignOnly: G[];
  /** Generation batches used. */
  genBatches: number;
  /** Groups generated in all. */
  generated: number;
  /** Groups generated but not trained on by the policy loss. */
  dropped: number;
  /** Whether `maxGenBatches` ran out before `target` groups were kept. */
  short: boolean;
  /** How many generated groups were of each kind. */
  kinds: Record<GroupKind, number>;
}

/**
 * Thrown by {@linkcode fillBatch} with `onShort: "stop"` when the generation budget did not fill
 * the batch.
 *
 * @example Usage
 * ```ts
 * import { ShortBatchError } from "./dynamic_sampling.ts";
 *
 * const error = new ShortBatchError(3, 8, 4);
 * console.log(error.kept); // 3
 * ```
 */
export class ShortBatchError extends Error {
  /** Groups kept. */
  readonly kept: number;

  /**
   * Creates the error.
   *
   * @param kept Groups kept.
   * @param target Groups wanted.
   * @param genBatches Generation batches used.
   */
  constructor(kept: number, target: number, genBatches: number) {
    super(
      `Dynamic sampling kept ${kept} of "rl.trainBatchPrompts" = ${target} groups after ` +
        `"rl.maxGenBatches" = ${genBatches} generation batches, and "rl.onShortBatch" is "stop": ` +
        `raise rl.maxGenBatches or set rl.onShortBatch=train`,
    );
    this.name = "ShortBatchError";
    this.kept = kept;
  }
}

/**
 * Fills a training batch by generating batches of groups (`generate(i)` for `i = 0, 1, …`): a
 * group is kept when its correctness is mixed (or, with dynamic sampling off, whenever it is
 * usable), in generation order, until `target` are kept — the batch is then exactly full, extra
 * groups of the last batch are dropped (verl's behaviour) — or `maxGenBatches` batches were
 * generated: then the batch is short, and `onShort` decides (train on it, or throw
 * {@linkcode ShortBatchError}).
 *
 * @param generate Generates batch `i` of groups.
 * @param options Target, budget and policy.
 * @returns The kept groups and counters.
 * @throws {ShortBatchError} On a short batch with `onShort: "stop"`.
 *
 * @example Two batches to keep three mixed groups
 * ```ts
 * import { fillBatch } from "./dynamic_sampling.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const batches = [[[true, false], [true, true]], [[false, false], [false, true], [true, false]]];
 * const filled = await fillBatch((i) => Promise.resolve(batches[i]), {
 *   target: 3, maxGenBatches: 4, dynamicSampling: true, keepAllCorrectForAlign: false,
 *   onShort: "train", correctOf: (g) => g,
 * });
 * deepStrictEqual(filled.kept, [[true, false], [false, true], [true, false]]);
 * strictEqual(filled.genBatches, 2);
 * ```
 */
export async function fillBatch<G>(
  generate: (batch: number) => Promise<G[]>,
  options: FillBatchOptions<G>,
): Promise<FilledBatch<G>> {
  const kept: G[] = [];
  const alignOnly: G[] = [];
  const kinds: Record<GroupKind, number> = {
    "mixed": 0,
    "all-correct": 0,
    "all-wrong": 0,
    "skip": 0,
  };
  let genBatches = 0;
  let generated = 0;
  while (kept.length < options.target && genBatches < options.maxGenBatches) {
    const groups = await generate(genBatches);
    genBatches++;
    generated += groups.length;
    for (const group of groups) {
      const kind = groupKind(options.correctOf(group));
      kinds[kind]++;
      if (kept.length >= options.target) continue;
      if (kind === "skip") continue;
      if (kind === "mixed" || !options.dynamicSampling) {
        kept.push(group);
      } else if (
        kind === "all-correct" && options.keepAllCorrectForAlign &&
        alignOnly.length < options.target
      ) {
        alignOnly.push(group);
      }
    }
  }
  const short = kept.length < options.target;
  if (short && options.onShort === "stop") {
    throw new ShortBatchError(kept.length, options.target, genBatches);
  }
  return {
    kept,
    alignOnly,
    genBatches,
    generated,
    dropped: generated - kept.length,
    short,
    kinds,
  };
}
