/**
 * Scaling of updates by minus the learning rate (optax `scale_by_learning_rate`).
 *
 * @module
 */
import type { GradientTransformation, Schedule } from "../types.ts";
import { scaleByScheduleWithMetric } from "./_scale.ts";
import type { ScaleByScheduleState } from "./scale_by_schedule.ts";

/**
 * Multiplies the updates by `−lr` (or `−lr(count)` for a schedule), turning descent directions
 * into parameter deltas for `applyUpdates`. The state always holds a step `count` (also for a
 * constant rate) so that a checkpoint has the same shape either way. The rate used is reported
 * as `"optim/lr"`.
 *
 * @param lr A learning rate, or a schedule of it over optimizer steps.
 * @returns The transformation.
 *
 * @example A constant rate and a schedule
 * ```ts
 * import { scaleByLearningRate } from "./scale_by_learning_rate.ts";
 * const g = { w: new Float32Array([2]) };
 * const t = scaleByLearningRate(0.5);
 * console.log(t.update(g, t.init(g)).updates.w); // Float32Array [-1]
 * const s = scaleByLearningRate((step) => 0.1 * (step + 1));
 * console.log(s.update(g, s.init(g)).metrics); // { "optim/lr": 0.1 }
 * ```
 */
export function scaleByLearningRate(
  lr: number | Schedule,
): GradientTransformation<ScaleByScheduleState> {
  if (typeof lr === "number" && !(Number.isFinite(lr) && lr >= 0)) {
    throw new RangeError(
      `Cannot create scaleByLearningRate(): "lr" must be a finite number ≥ 0: current value is ` +
        `${lr}`,
    );
  }
  const schedule: Schedule = typeof lr === "number" ? () => lr : lr;
  return scaleByScheduleWithMetric(schedule, "optim/lr", -1);
}
