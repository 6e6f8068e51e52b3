/**
 * The start-up warnings of an RL run for keys that are set but that nothing reads: those of the
 * `rl` section ({@linkcode rlKeyWarnings}) and the SFT-only keys of the run's other sections.
 *
 * @module
 */
import { DEFAULT_CONFIG, type TrainConfig } from "../config.ts";
import { rlKeyWarnings } from "./config.ts";

/**
 * Warnings for keys of an RL run (`trainer.mode: rl`) set away from their defaults that the RL
 * trainer does not read, as `adapterKeyWarnings` does for `adapters.*`: everything of
 * {@linkcode rlKeyWarnings}, plus the SFT-only keys
 *
 * - `trainer.batchSize`, `trainer.microBatches` (RL batches by `rl.trainBatchPrompts`,
 *   `rl.groupSize` and `rl.microBatchSize`);
 * - `eval.*` (RL evaluates by `rl.eval.*`);
 * - `data.evalSize` (the held-out size is `rl.data.evalSize`), `data.suite.*` (RL reads no suite);
 * - `data.trainSize` when `rl.data.trainSize` is set (it takes its place);
 * - and with `rl.data.source` `"jsonl"` or `"parquet"` the arithmetic task's `data.seed`,
 *   `data.digits`, `data.ops`, `data.maxTerms`, `data.mulDigits` and `data.trainSize`.
 *
 * Warnings, not errors: an RL config built on an SFT one keeps its keys, which is fine.
 *
 * @param config The run's config.
 * @returns One line each, empty when every set key is read (or the run is not an RL run).
 *
 * @example An SFT evaluation cadence left in an RL config
 * ```ts
 * import { rlRunKeyWarnings } from "./run_key_warnings.ts";
 * import { DEFAULT_CONFIG } from "../config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   ...DEFAULT_CONFIG,
 *   trainer: { ...DEFAULT_CONFIG.trainer, mode: "rl" as const },
 *   eval: { ...DEFAULT_CONFIG.eval, every: 5 },
 * };
 * strictEqual(rlRunKeyWarnings(config).length, 1);
 * ```
 */
export function rlRunKeyWarnings(config: TrainConfig): string[] {
  if (config.trainer.mode !== "rl") return [];
  const warnings = rlKeyWarnings(config.rl);
  const d = DEFAULT_CONFIG;
  const set = (value: unknown, fallback: unknown) =>
    JSON.stringify(value) !== JSON.stringify(fallback);
  const unread: [string, string][] = [];
  const note = (key: string, why: string) => unread.push([key, why]);
  const batch = `RL batches by "rl.trainBatchPrompts" x "rl.groupSize" in "rl.microBatchSize" rows`;
  for (const key of ["batchSize", "microBatches"] as const) {
    if (set(config.trainer[key], d.trainer[key])) note(`trainer.${key}`, batch);
  }
  for (const key of Object.keys(d.eval) as (keyof typeof d.eval)[]) {
    if (set(config.eval[key], d.eval[key])) {
      note(`eval.${key}`, `RL's held-out evaluation is set by "rl.eval.*"`);
    }
  }
  if (set(config.data.evalSize, d.data.evalSize)) {
    note("data.evalSize", `RL holds out "rl.data.evalSize" prompts`);
  }
  for (const key of Object.keys(d.data.suite) as (keyof typeof d.data.suite)[]) {
    if (set(config.data.suite[key], d.data.suite[key])) {
      note(`data.suite.${key}`, `RL reads no task suite`);
    }
  }
  const source = config.rl.data.source;
  if (source !== "arithmetic") {
    for (const key of ["seed", "digits", "ops", "maxTerms", "mulDigits", "trainSize"] as const) {
      if (set(config.data[key], d.data[key])) {
        note(`data.${key}`, `"rl.data.source" is "${source}", not the arithmetic task`);
      }
    }
  } else if (config.rl.data.trainSize > 0 && set(config.data.trainSize, d.data.trainSize)) {
    note("data.trainSize", `"rl.data.trainSize" (${config.rl.data.trainSize}) takes its place`);
  }
  warnings.push(
    ...unread.map(([key, why]) =>
      `key "${key}" is set but not read with "trainer.mode" "rl" (${why})`
    ),
  );
  return warnings;
}
