/**
 * Adam's moment estimates with bias correction (optax `scale_by_adam`).
 *
 * @module
 */
import type { GradientTransformation, ParamTree, UpdateResult } from "../types.ts";
import { checkNumber, checkSameStructure, zerosLike } from "./_tree.ts";

/** Options of {@linkcode scaleByAdam}. */
export interface ScaleByAdamOptions {
  /** Decay of the first moment, in [0, 1); default 0.9. */
  b1?: number;
  /** Decay of the second moment, in [0, 1); default 0.999. */
  b2?: number;
  /** Added to `sqrt(v̂)` in the denominator, ≥ 0; default 1e-8. */
  eps?: number;
}

/** State of {@linkcode scaleByAdam}. */
export interface ScaleByAdamState {
  /** Number of updates done so far (the bias corrections use `count + 1`). */
  count: number;
  /** First moment (EMA of gradients). */
  mu: ParamTree;
  /** Second moment (EMA of squared gradients). */
  nu: ParamTree;
}

/**
 * Rescales gradients by Adam: with `t = count + 1`,
 * `m ← b1·m + (1−b1)·g`, `v ← b2·v + (1−b2)·g²`,
 * `update = (m / (1−b1^t)) / (sqrt(v / (1−b2^t)) + eps)`.
 * This is the same step as PyTorch's `lr/(1−b1^t) · m / (sqrt(v)/sqrt(1−b2^t) + eps)` before the
 * learning rate. Arithmetic is float64, rounded once into the float32 state and updates.
 *
 * @param options `b1`, `b2`, `eps`.
 * @returns The transformation.
 *
 * @example The first Adam step is ±1 per element (up to eps)
 * ```ts
 * import { scaleByAdam } from "./scale_by_adam.ts";
 * const adam = scaleByAdam({ b1: 0.9, b2: 0.999, eps: 0 });
 * const g = { w: new Float32Array([0.5, -2]) };
 * console.log(adam.update(g, adam.init(g)).updates.w); // Float32Array [1, -1]
 * ```
 */
export function scaleByAdam(options: ScaleByAdamOptions = {}): GradientTransformation<
  ScaleByAdamState
> {
  const { b1 = 0.9, b2 = 0.999, eps = 1e-8 } = options;
  const op = "scaleByAdam()";
  checkNumber(b1, (x) => x >= 0 && x < 1, { op, name: "b1", rule: "in [0, 1)" });
  checkNumber(b2, (x) => x >= 0 && x < 1, { op, name: "b2", rule: "in [0, 1)" });
  checkNumber(eps, (x) => x >= 0, { op, name: "eps", rule: "a finite number ≥ 0" });
  return {
    init(params: ParamTree): ScaleByAdamState {
      return { count: 0, mu: zerosLike(params), nu: zerosLike(params) };
    },
    update(grads: ParamTree, state: ScaleByAdamState): UpdateResult<ScaleByAdamState> {
      checkSameStructure(grads, state.mu, { op, what: "state.mu" });
      checkSameStructure(grads, state.nu, { op, what: "state.nu" });
      const t = state.count + 1;
      const bc1 = 1 - b1 ** t;
      const bc2 = 1 - b2 ** t;
      const mu: ParamTree = {};
      const nu: ParamTree = {};
      const updates: ParamTree = {};
      for (const k of Object.keys(grads)) {
        const g = grads[k];
        const m0 = state.mu[k];
        const v0 = state.nu[k];
        const m1 = new Float32Array(g.length);
        const v1 = new Float32Array(g.length);
        const u = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) {
          const m = b1 * m0[i] + (1 - b1) * g[i];
          const v = b2 * v0[i] + (1 - b2) * g[i] * g[i];
          m1[i] = m;
          v1[i] = v;
          u[i] = (m / bc1) / (Math.sqrt(v / bc2) + eps);
        }
        mu[k] = m1;
        nu[k] = v1;
        updates[k] = u;
      }
      return { updates, state: { count: t, mu, nu }, metrics: {} };
    },
  };
}
