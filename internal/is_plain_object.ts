/**
 * Telling a plain object (a JSON/YAML map) from arrays, typed arrays and class instances.
 *
 * @module
 */

/**
 * Whether `value` is a plain object: not null, not an array, and made by `{}` or
 * `Object.create(null)` (so typed arrays, maps, dates and class instances are not).
 *
 * @param value Any value.
 * @returns True for a plain object.
 *
 * @example Check values
 * ```ts
 * import { isPlainObject } from "./is_plain_object.ts";
 * console.log(isPlainObject({ a: 1 })); // true
 * console.log(isPlainObject([1])); // false
 * console.log(isPlainObject(new Float32Array(1))); // false
 * ```
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
