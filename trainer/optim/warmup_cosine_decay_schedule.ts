/**
 * Cosine decay to a floor after a linear warm-up (optax `warmup_cosine_decay_schedule`, verl
 * `get_cosine_schedule_with_warmup` with `min_lr_ratio`).
 *
 * @module
 */
import type { Schedule } from "../types.ts";
import { checkNumber, checkStep } from "./_tree.ts";

/** Options of {@linkcode warmupCosineDecaySchedule}. */
export interface WarmupCosineDecayScheduleOptions {
  /** The value at the end of warm-up (e.g. the peak learning rate), ≥ 0. */
  peakValue: number;
  /** Length of the linear warm-up in steps (integer ≥ 0). */
  warmupSteps: number;
  /**
   * Total length in steps, warm-up included (optax's `decay_steps`; verl's
   * `num_training_steps`), an integer > `warmupSteps`; from this step on the value is the floor.
   */
  decaySteps: number;
  /** The floor as a fraction of `peakValue`, in [0, 1]; default 0. */
  minRatio?: number;
  /** Value at step 0; default 0. */
  initValue?: number;
}

/**
 * Linear warm-up from `initValue` to `peakValue` over `warmupSteps`, then
 * `peakValue · (minRatio + (1 − minRatio) · ½(1 + cos(π·p)))` with
 * `p = min(1, (step − warmupSteps) / (decaySteps − warmupSteps))`: the half-cosine reaches
 * `minRatio · peakValue` at `step = decaySteps` and stays there.
 *
 * @param options Peak, warm-up and total length, floor ratio, initial value.
 * @returns The schedule; it throws a RangeError for a step that is not an integer ≥ 0.
 *
 * @example Warm up 10 steps, decay to 10% at step 110
 * ```ts
 * import { warmupCosineDecaySchedule } from "./warmup_cosine_decay_schedule.ts";
 * const lr = warmupCosineDecaySchedule({
 *   peakValue: 1, warmupSteps: 10, decaySteps: 110, minRatio: 0.1,
 * });
 * console.log(lr(0), lr(10), lr(60), lr(110), lr(500)); // 0, 1, ≈0.55, ≈0.1, ≈0.1
 * ```
 */
export function warmupCosineDecaySchedule(options: WarmupCosineDecayScheduleOptions): Schedule {
  const { peakValue, warmupSteps, decaySteps, minRatio = 0, initValue = 0 } = options;
  const op = "warmupCosineDecaySchedule()";
  checkNumber(peakValue, (x) => x >= 0, { op, name: "peakValue", rule: "a finite number ≥ 0" });
  checkNumber(initValue, (x) => x >= 0, { op, name: "initValue", rule: "a finite number ≥ 0" });
  checkNumber(minRatio, (x) => x >= 0 && x <= 1, { op, name: "minRatio", rule: "in [0, 1]" });
  checkNumber(warmupSteps, (x) => Number.isInteger(x) && x >= 0, {
    op,
    name: "warmupSteps",
    rule: "an integer ≥ 0",
  });
  checkNumber(decaySteps, (x) => Number.isInteger(x) && x > warmupSteps, {
    op,
    name: "decaySteps",
    rule: `an integer > warmupSteps (${warmupSteps})`,
  });
  return (step: number): number => {
    checkStep(step, op);
    if (step < warmupSteps) return initValue + (peakValue - initValue) * (step / warmupSteps);
    const p = Math.min(1, (step - warmupSteps) / (decaySteps - warmupSteps));
    return peakValue * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
  };
}
