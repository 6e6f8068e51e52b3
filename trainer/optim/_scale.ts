// Private core of scaleBySchedule and scaleByLearningRate: multiply by sign * schedule(count).
import type { GradientTransformation, ParamTree, Schedule, UpdateResult } from "../types.ts";
import type { ScaleByScheduleState } from "./scale_by_schedule.ts";
import { map1 } from "./_tree.ts";

/** scaleBySchedule with the metric name and sign chosen by the caller. */
export function scaleByScheduleWithMetric(
  schedule: Schedule,
  metric: string,
  sign: 1 | -1,
): GradientTransformation<ScaleByScheduleState> {
  return {
    init: (): ScaleByScheduleState => ({ count: 0 }),
    update(grads: ParamTree, state: ScaleByScheduleState): UpdateResult<ScaleByScheduleState> {
      const value = schedule(state.count);
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new RangeError(
          `Cannot scale updates: the schedule must return a finite number at step ` +
            `${state.count}: current value is ${value}`,
        );
      }
      const factor = sign * value;
      return {
        updates: map1(grads, (g) => g * factor),
        state: { count: state.count + 1 },
        metrics: { [metric]: value },
      };
    },
  };
}
