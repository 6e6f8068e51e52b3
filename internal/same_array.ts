/**
 * Comparing two optional float arrays element by element.
 *
 * @module
 */

/**
 * Whether two optional arrays are both absent, or have the same length and elements (compared
 * with `Object.is`, so NaN equals NaN and 0 differs from -0).
 *
 * @param a The first array, or undefined.
 * @param b The second array, or undefined.
 * @returns True when they are the same.
 *
 * @example Compare arrays
 * ```ts
 * import { sameArray } from "./same_array.ts";
 * console.log(sameArray(new Float64Array([1, NaN]), new Float64Array([1, NaN]))); // true
 * console.log(sameArray(new Float64Array([0]), new Float64Array([-0]))); // false
 * console.log(sameArray(undefined, undefined)); // true
 * ```
 */
export function sameArray(a: Float64Array | undefined, b: Float64Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
