/**
 * DAPO's soft overlong punishment: a reward penalty that grows linearly over the last `buffer`
 * tokens before the length limit.
 *
 * @module
 */
import { checkOption } from "./_validate.ts";

/**
 * Options of {@linkcode overlongPenalty}.
 *
 * @example A 4096-token limit with a 512-token buffer
 * ```ts
 * import type { OverlongPenaltyOptions } from "./overlong_penalty.ts";
 * const options: OverlongPenaltyOptions = { length: 4000, maxLength: 4096, buffer: 512 };
 * ```
 */
export interface OverlongPenaltyOptions {
  /** The response length in tokens (≥ 0). */
  length: number;
  /** The response length limit (> 0). */
  maxLength: number;
  /** Length of the soft zone before `maxLength` (in (0, maxLength]). */
  buffer: number;
  /** Penalty at `maxLength`; default 1 (≥ 0). */
  factor?: number;
}

const WHERE = "Cannot compute the overlong penalty";

/**
 * DAPO's soft overlong punishment, added to the reward: with `L = maxLength − buffer`, 0 when
 * `length ≤ L`, else `−factor · (length − L) / buffer` (so `−factor` at `maxLength`, and
 * continuing linearly beyond it as in DAPO's reference code).
 *
 * @param options Length, limit, buffer and factor.
 * @returns The penalty (≤ 0).
 * @throws {RangeError} When a value is not finite, `length` < 0, `maxLength` ≤ 0, `buffer` is
 *   not in (0, maxLength], or `factor` < 0.
 *
 * @example Inside, halfway through and at the end of the buffer
 * ```ts
 * import { overlongPenalty } from "./overlong_penalty.ts";
 * console.log(overlongPenalty({ length: 3000, maxLength: 4096, buffer: 512 })); // 0
 * console.log(overlongPenalty({ length: 3840, maxLength: 4096, buffer: 512 })); // -0.5
 * console.log(overlongPenalty({ length: 4096, maxLength: 4096, buffer: 512 })); // -1
 * ```
 */
export function overlongPenalty(options: OverlongPenaltyOptions): number {
  const { length, maxLength, buffer } = options;
  const factor = options.factor ?? 1;
  const must = (name: string, x: unknown, ok: (x: number) => boolean, what: string) => {
    if (x === undefined) {
      throw new TypeError(`${WHERE}: option "${name}" is required: current value is undefined`);
    }
    checkOption(WHERE, name, x, ok, what);
  };
  must("length", length, (x) => x >= 0, "a finite number ≥ 0");
  must("maxLength", maxLength, (x) => x > 0, "a finite number > 0");
  must(
    "buffer",
    buffer,
    (x) => x > 0 && x <= maxLength,
    `a number in (0, maxLength = ${maxLength}]`,
  );
  must("factor", factor, (x) => x >= 0, "a finite number ≥ 0");
  const start = maxLength - buffer;
  if (length <= start) return 0;
  return -factor * (length - start) / buffer;
}
