/**
 * The global L2 norm of a parameter tree (optax `global_norm`).
 *
 * @module
 */
import type { ParamTree } from "../types.ts";

/**
 * The L2 norm of all tensors of a tree taken together, `sqrt(Σ_k Σ_i x[k][i]²)`, accumulated in
 * float64.
 *
 * @param tree The tensors.
 * @returns The norm (0 for an empty tree).
 *
 * @example Norm of a 3-4 vector split in two tensors
 * ```ts
 * import { globalNorm } from "./global_norm.ts";
 * console.log(globalNorm({ a: new Float32Array([3]), b: new Float32Array([4]) })); // 5
 * ```
 */
export function globalNorm(tree: ParamTree): number {
  let s = 0;
  for (const k of Object.keys(tree)) {
    const x = tree[k];
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  }
  return Math.sqrt(s);
}
