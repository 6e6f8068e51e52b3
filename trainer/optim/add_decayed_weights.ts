/**
 * Decoupled weight decay (optax `add_decayed_weights`), the "W" of AdamW.
 *
 * @module
 */
import type { GradientTransformation, ParamTree, UpdateResult } from "../types.ts";
import { checkNumber, checkSameStructure } from "./_tree.ts";

/** Options of {@linkcode addDecayedWeights}. */
export interface AddDecayedWeightsOptions {
  /**
   * Which tensors are decayed, by name; default all. Tensors left out get their updates
   * unchanged (e.g. norms and biases in a full fine-tune).
   */
  mask?: (name: string) => boolean;
}

/** State of {@linkcode addDecayedWeights}: none. */
export type AddDecayedWeightsState = Record<string, never>;

/**
 * Adds `weightDecay · params` to the updates. Placed after `scaleByAdam` and before the
 * (negative) learning rate it gives `p ← p − lr·(adam + wd·p)`, PyTorch's AdamW step: the decay
 * is decoupled from the Adam moments and uses the parameters before the step.
 *
 * @param weightDecay The decay coefficient (≥ 0).
 * @param options A mask of the decayed tensors.
 * @returns The transformation; its `update` requires `params`.
 *
 * @example Decay by 0.1
 * ```ts
 * import { addDecayedWeights } from "./add_decayed_weights.ts";
 * const decay = addDecayedWeights(0.1);
 * const params = { w: new Float32Array([2]) };
 * const u = decay.update({ w: new Float32Array([1]) }, decay.init(params), params);
 * console.log(u.updates.w); // ≈ [1.2]
 * ```
 */
export function addDecayedWeights(
  weightDecay: number,
  options: AddDecayedWeightsOptions = {},
): GradientTransformation<AddDecayedWeightsState> {
  const op = "addDecayedWeights()";
  checkNumber(weightDecay, (x) => x >= 0, {
    op,
    name: "weightDecay",
    rule: "a finite number ≥ 0",
  });
  const mask = options.mask ?? (() => true);
  return {
    init: (): AddDecayedWeightsState => ({}),
    update(
      grads: ParamTree,
      state: AddDecayedWeightsState,
      params?: ParamTree,
    ): UpdateResult<AddDecayedWeightsState> {
      if (params === undefined) {
        throw new TypeError(
          `Cannot run ${op}: update() must be given the params to decay: current value is ` +
            `undefined`,
        );
      }
      checkSameStructure(grads, params, { op, what: "params" });
      if (weightDecay === 0) return { updates: grads, state, metrics: {} };
      const updates: ParamTree = {};
      for (const k of Object.keys(grads)) {
        const g = grads[k];
        if (!mask(k)) {
          updates[k] = g;
          continue;
        }
        const p = params[k];
        const u = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) u[i] = g[i] + weightDecay * p[i];
        updates[k] = u;
      }
      return { updates, state, metrics: {} };
    },
  };
}
