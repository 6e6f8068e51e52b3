/**
 * Sequential composition of gradient transformations (optax `chain`).
 *
 * @module
 */
import type { GradientTransformation, ParamTree, UpdateExtraArgs, UpdateResult } from "../types.ts";

/** The state of one transformation. */
export type StateOf<T> = T extends GradientTransformation<infer S> ? S : never;

/** The state of `chain(...transforms)`: a plain array holding each piece's state in order. */
export type ChainState<T extends readonly GradientTransformation<unknown>[]> = {
  [K in keyof T]: StateOf<T[K]>;
};

/**
 * Chains transformations: each piece's updates are the next piece's input, `params` and `extra`
 * are passed to every piece, and the state is the array of the pieces' states. Metrics of the
 * pieces are merged into one record (a later piece wins on a repeated key). `chain()` with no
 * pieces is the identity.
 *
 * @param transforms The pieces, applied left to right.
 * @returns The combined transformation.
 *
 * @example Clip, then Adam, then the learning rate
 * ```ts
 * import { chain } from "./chain.ts";
 * import { clipByGlobalNorm } from "./clip_by_global_norm.ts";
 * import { scaleByAdam } from "./scale_by_adam.ts";
 * import { scaleByLearningRate } from "./scale_by_learning_rate.ts";
 * import { applyUpdates } from "./apply_updates.ts";
 * const opt = chain(clipByGlobalNorm(1), scaleByAdam(), scaleByLearningRate(0.1));
 * let params = { w: new Float32Array([1, -1]) };
 * let state = opt.init(params);
 * const grads = { w: new Float32Array([3, 4]) };
 * const { updates, state: next, metrics } = opt.update(grads, state, params);
 * params = applyUpdates(params, updates);
 * state = next;
 * console.log(metrics["optim/grad_norm"], params.w); // 5, ≈ [0.9, -1.1]
 * ```
 */
export function chain<T extends GradientTransformation<unknown>[]>(
  ...transforms: T
): GradientTransformation<ChainState<T>> {
  return {
    init(params: ParamTree): ChainState<T> {
      return transforms.map((t) => t.init(params)) as ChainState<T>;
    },
    update(
      grads: ParamTree,
      state: ChainState<T>,
      params?: ParamTree,
      extra?: UpdateExtraArgs,
    ): UpdateResult<ChainState<T>> {
      const states = state as unknown as readonly unknown[];
      if (!Array.isArray(states) || states.length !== transforms.length) {
        throw new TypeError(
          `Cannot run chain(): state must be an array of ${transforms.length} states from ` +
            `init(): current value is ${
              Array.isArray(states) ? `an array of ${states.length}` : typeof states
            }`,
        );
      }
      let updates = grads;
      const next: unknown[] = [];
      let metrics: Record<string, number> = {};
      transforms.forEach((t, i) => {
        const r = t.update(updates, states[i], params, extra);
        updates = r.updates;
        next.push(r.state);
        metrics = { ...metrics, ...r.metrics };
      });
      return { updates, state: next as ChainState<T>, metrics };
    },
  };
}
