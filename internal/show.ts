/**
 * Formatting a value for an error message.
 *
 * @module
 */

/**
 * A value as JSON for an error message (`String(value)` where JSON cannot show it), cut to
 * `maxLength` characters with "..." at the end.
 *
 * @param value Any value.
 * @param maxLength The longest text returned (default 80); `Infinity` never cuts.
 * @returns The text.
 *
 * @example Show values
 * ```ts
 * import { show } from "./show.ts";
 * console.log(show("x")); // "x" (with the quotes)
 * console.log(show(undefined)); // undefined
 * console.log(show("a".repeat(100)).length); // 80
 * ```
 */
export function show(value: unknown, maxLength = 80): string {
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > maxLength ? `${text.slice(0, maxLength - 3)}...` : text;
  } catch {
    return String(value);
  }
}
