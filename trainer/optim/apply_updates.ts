/**
 * Applying updates to parameters (optax `apply_updates`).
 *
 * @module
 */
import type { ParamTree } from "../types.ts";
import { checkSameStructure, map2 } from "./_tree.ts";

/**
 * Returns `params + updates`, element-wise, as new arrays (the inputs are not modified). The
 * sum is rounded once to float32.
 *
 * @typeParam T The tree type (kept, so a literal's names survive).
 * @param params The parameters.
 * @param updates Deltas with the same names and lengths (from a transformation ending in
 * `scaleByLearningRate`, so already negated).
 * @returns The new parameters.
 *
 * @example Take one step
 * ```ts
 * import { applyUpdates } from "./apply_updates.ts";
 * const p = applyUpdates({ w: new Float32Array([1, 2]) }, { w: new Float32Array([-0.5, 0.5]) });
 * console.log(p.w); // Float32Array [0.5, 2.5]
 * ```
 */
export function applyUpdates<T extends ParamTree>(params: T, updates: ParamTree): T {
  checkSameStructure(params, updates, { op: "applyUpdates()", what: "updates" });
  return map2(params, updates, (p, u) => p + u) as T;
}
