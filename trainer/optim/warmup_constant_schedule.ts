/**
 * A constant schedule after a linear warm-up (optax `warmup_constant_schedule`, Hugging Face
 * `get_constant_schedule_with_warmup`).
 *
 * @module
 */
import type { Schedule } from "../types.ts";
import { checkNumber, checkStep } from "./_tree.ts";

/** Options of {@linkcode warmupConstantSchedule}. */
export interface WarmupConstantScheduleOptions {
  /** The value after warm-up (e.g. the peak learning rate), ≥ 0. */
  peakValue: number;
  /** Length of the linear warm-up in steps (integer ≥ 0; 0 = no warm-up). */
  warmupSteps: number;
  /** Value at step 0; default 0 (as optax and Hugging Face). */
  initValue?: number;
}

/**
 * `step < warmupSteps`: `initValue + (peakValue − initValue) · step / warmupSteps`;
 * afterwards `peakValue`. With the default `initValue = 0` the first update (step 0) has rate 0,
 * exactly as Hugging Face's and verl's warm-up; pass `initValue` to avoid the empty step.
 *
 * @param options Peak value, warm-up length, initial value.
 * @returns The schedule; it throws a RangeError for a step that is not an integer ≥ 0.
 *
 * @example Warm up over 10 steps to 1e-6
 * ```ts
 * import { warmupConstantSchedule } from "./warmup_constant_schedule.ts";
 * const lr = warmupConstantSchedule({ peakValue: 1e-6, warmupSteps: 10 });
 * console.log(lr(0), lr(5), lr(10), lr(1000)); // 0, 5e-7, 1e-6, 1e-6
 * ```
 */
export function warmupConstantSchedule(options: WarmupConstantScheduleOptions): Schedule {
  const { peakValue, warmupSteps, initValue = 0 } = options;
  const op = "warmupConstantSchedule()";
  checkNumber(peakValue, (x) => x >= 0, { op, name: "peakValue", rule: "a finite number ≥ 0" });
  checkNumber(initValue, (x) => x >= 0, { op, name: "initValue", rule: "a finite number ≥ 0" });
  checkNumber(warmupSteps, (x) => Number.isInteger(x) && x >= 0, {
    op,
    name: "warmupSteps",
    rule: "an integer ≥ 0",
  });
  return (step: number): number => {
    checkStep(step, op);
    if (step < warmupSteps) return initValue + (peakValue - initValue) * (step / warmupSteps);
    return peakValue;
  };
}
