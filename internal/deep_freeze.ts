/**
 * Freezing an object and everything it holds.
 *
 * @module
 */

/**
 * Freezes `value` and, recursively, every object it holds; returns it.
 *
 * @typeParam T The value's type.
 * @param value Any value (primitives are returned as they are).
 * @returns The same value, frozen.
 *
 * @example Freeze a nested config
 * ```ts
 * import { deepFreeze } from "./deep_freeze.ts";
 * const config = deepFreeze({ trainer: { lr: 1e-3 } });
 * console.log(Object.isFrozen(config.trainer)); // true
 * ```
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
