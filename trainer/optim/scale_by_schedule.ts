/**
 * Scaling of updates by a scheduled factor (optax `scale_by_schedule`).
 *
 * @module
 */
import type { GradientTransformation, Schedule } from "../types.ts";
import { scaleByScheduleWithMetric } from "./_scale.ts";

/** State of {@linkcode scaleBySchedule}. */
export interface ScaleByScheduleState {
  /** Number of updates done so far; the next update is scaled by `schedule(count)`. */
  count: number;
}

/**
 * Multiplies the updates by `schedule(count)`, then increments `count` (so the first update
 * uses `schedule(0)`, as optax does). The factor is reported as `"optim/schedule"`.
 *
 * @param schedule The factor per step.
 * @returns The transformation.
 *
 * @example Halve every update
 * ```ts
 * import { scaleBySchedule } from "./scale_by_schedule.ts";
 * const t = scaleBySchedule(() => 0.5);
 * const g = { w: new Float32Array([4]) };
 * console.log(t.update(g, t.init(g)).updates.w); // Float32Array [2]
 * ```
 */
export function scaleBySchedule(schedule: Schedule): GradientTransformation<ScaleByScheduleState> {
  return scaleByScheduleWithMetric(schedule, "optim/schedule", 1);
}
