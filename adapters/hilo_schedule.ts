/**
 * Per-layer schedules of HILO's expert counts, ranks and top-k: a string of block values from
 * shallow to deep (`"2-4-6-8"`: the layers split into 4 equal blocks), `"uniform:4"`, one number
 * for every layer, or an explicit per-layer list.
 *
 * @module
 */

/**
 * A per-layer schedule: `"2-4-6-8"` (equal blocks, shallow to deep), `"uniform:4"`, a number, or
 * an explicit list of one value per layer.
 */
export type LayerSchedule = string | number | readonly number[];

/** Options of {@linkcode parseLayerSchedule}. */
export interface ParseLayerScheduleOptions {
  /** What the schedule sets, quoted in errors (e.g. `"experts"`); default `"schedule"`. */
  name?: string;
  /** The config key it came from, named in errors (e.g. `"adapters.hilo.experts"`); default none. */
  key?: string;
}

/**
 * Expands a schedule to one positive integer per layer. With B block values over L layers, layer
 * `l` takes value `⌊l·B/L⌋` (blocks differ in size by at most one layer when B does not divide
 * L; with L < B some values are skipped).
 *
 * @param schedule The schedule.
 * @param numLayers The model's decoder layer count.
 * @param options The schedule's name and config key in errors.
 * @returns One value per layer.
 * @throws {RangeError} If the string is malformed, a value is not a positive integer, or a list
 * has the wrong length; the message names the schedule and quotes the value.
 *
 * @example Ranks 2-4-6-8 over 8 layers
 * ```ts
 * import { parseLayerSchedule } from "./hilo_schedule.ts";
 * console.log(parseLayerSchedule("2-4-6-8", 8)); // [2, 2, 4, 4, 6, 6, 8, 8]
 * ```
 */
export function parseLayerSchedule(
  schedule: LayerSchedule,
  numLayers: number,
  options: ParseLayerScheduleOptions = {},
): number[] {
  const name = options.name ?? "schedule";
  const where = `Cannot parse the ${name} schedule` +
    (options.key === undefined ? "" : ` (key "${options.key}")`);
  if (!Number.isSafeInteger(numLayers) || numLayers < 1) {
    throw new RangeError(
      `${where}: the layer count must be a positive integer: current value is ${numLayers}`,
    );
  }
  const check = (values: number[]): number[] => {
    for (const v of values) {
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new RangeError(
          `${where}: every value must be a positive integer: current value is ` +
            `${JSON.stringify(schedule)}`,
        );
      }
    }
    return values;
  };
  if (typeof schedule === "number") return check(new Array(numLayers).fill(schedule));
  if (Array.isArray(schedule)) {
    if (schedule.length !== numLayers) {
      throw new RangeError(
        `${where}: an explicit list must have one value per layer (${numLayers}): current ` +
          `length is ${schedule.length}`,
      );
    }
    return check([...schedule]);
  }
  if (typeof schedule !== "string") {
    throw new RangeError(
      `${where}: expected a string like "2-4-6-8" or "uniform:4", a number or a list: current ` +
        `value is ${JSON.stringify(schedule)}`,
    );
  }
  const uniform = /^uniform:(\d+)$/.exec(schedule.trim());
  if (uniform) return check(new Array(numLayers).fill(Number(uniform[1])));
  if (!/^\d+(-\d+)*$/.test(schedule.trim())) {
    throw new RangeError(
      `${where}: expected block values like "2-4-6-8" or "uniform:4": current value is ` +
        `${JSON.stringify(schedule)}`,
    );
  }
  const blocks = check(schedule.trim().split("-").map(Number));
  return Array.from(
    { length: numLayers },
    (_, l) => blocks[Math.floor((l * blocks.length) / numLayers)],
  );
}
