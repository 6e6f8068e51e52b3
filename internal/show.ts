/**
 * Formatting a value for an error message.
 *
 * @module
 */

/** Options of {@linkcode show}. */
export interface ShowOptions {
  /** The longest text returned (default 80); `Infinity` never cuts. */
  maxLength?: number;
}

/**
 * A value as JSON for an error message (`String(value)` where JSON cannot show it, and for
 * `NaN` and the infinities, which JSON shows as `null`), cut to
 * `options.maxLength` characters with "..." at the end.
 *
 * @param value Any value.
 * @param options `maxLength`: the longest text returned (default 80).
 * @returns The text.
 *
 * @example Show values
 * ```ts
 * import { show } from "./show.ts";
 * console.log(show("x")); // "x" (with the quotes)
 * console.log(show(undefined)); // undefined
 * console.log(show(NaN)); // NaN
 * console.log(show("a".repeat(100)).length); // 80
 * ```
 */
export function show(value: unknown, options: ShowOptions = {}): string {
  const maxLength = options.maxLength ?? 80;
  if (value === undefined) return "undefined";
  // JSON shows NaN and the infinities as null.
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
  } catch {
    return String(value);
  }
}
