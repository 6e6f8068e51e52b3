/**
 * Gradient accumulation over micro-batches (optax `MultiSteps`), with per-micro-batch or
 * token-weighted averaging.
 *
 * @module
 */
import type { GradientTransformation, ParamTree, UpdateExtraArgs, UpdateResult } from "../types.ts";
import { checkNumber, checkSameStructure, zerosLike } from "./_tree.ts";

/**
 * How micro-batch gradients are averaged:
 * - `"microbatch"`: the plain mean `Σ g_i / k` (optax `MultiSteps`); right when every
 *   micro-batch loss is already normalised by the same constant.
 * - `"token"`: the weighted mean `Σ w_i·g_i / Σ w_i` with `w_i` passed as
 *   `update(g, state, params, { weight: w_i })`. With `g_i` the gradient of micro-batch `i`'s
 *   token-mean loss and `w_i` its number of loss tokens, this is the gradient of the token-mean
 *   loss over all tokens of the `k` micro-batches (DAPO's token-level policy-gradient loss),
 *   which the plain mean is not when micro-batches hold different numbers of tokens.
 */
export type MultiStepsWeighting = "microbatch" | "token";

/** Options of {@linkcode multiSteps}. */
export interface MultiStepsOptions {
  /** Number of micro-batches per optimizer update (integer ≥ 1). */
  everySteps: number;
  /** Averaging; default `"microbatch"`. */
  weighting?: MultiStepsWeighting;
}

/** State of {@linkcode multiSteps}. */
export interface MultiStepsState<S> {
  /** Micro-batches accumulated since the last update, in `[0, everySteps)`. */
  miniStep: number;
  /** Updates of the inner transformation done so far. */
  gradientStep: number;
  /** Weighted running mean of the micro-batch gradients accumulated so far. */
  accGrads: ParamTree;
  /** Sum of the weights accumulated so far (the count in `"microbatch"` mode). */
  accWeight: number;
  /** State of the inner transformation. */
  inner: S;
}

/**
 * Wraps an optimizer so that it updates once every `everySteps` calls: calls in between
 * accumulate the gradient into a running mean and return zero updates (leaving the inner state
 * as is); the `everySteps`-th call passes the mean to the inner transformation and returns its
 * updates. So `everySteps` calls equal one call of the inner optimizer with the averaged
 * gradient. Wrap the whole optimizer (clipping must see the averaged gradient, not each
 * micro-batch's).
 *
 * If the weights of a whole accumulation sum to 0 (no loss tokens at all), the update is
 * skipped: zero updates, inner state unchanged, metric `"optim/skipped_update": 1`.
 * Metrics of an emitting call: the inner metrics plus `"optim/accum_weight"` (Σ w_i).
 *
 * @typeParam S The inner state.
 * @param inner The optimizer to run on averaged gradients.
 * @param options Accumulation length and weighting.
 * @returns The accumulating transformation.
 *
 * @example Token-weighted accumulation over two micro-batches
 * ```ts
 * import { multiSteps } from "./multi_steps.ts";
 * import { scaleByLearningRate } from "./scale_by_learning_rate.ts";
 * const opt = multiSteps(scaleByLearningRate(1), { everySteps: 2, weighting: "token" });
 * const p = { w: new Float32Array([0]) };
 * let s = opt.init(p);
 * const a = opt.update({ w: new Float32Array([1]) }, s, p, { weight: 30 });
 * s = a.state;
 * const b = opt.update({ w: new Float32Array([5]) }, s, p, { weight: 10 });
 * console.log(a.updates.w, b.updates.w); // Float32Array [0], Float32Array [-2]
 * ```
 */
export function multiSteps<S>(
  inner: GradientTransformation<S>,
  options: MultiStepsOptions,
): GradientTransformation<MultiStepsState<S>> {
  const { everySteps, weighting = "microbatch" } = options;
  const op = "multiSteps()";
  checkNumber(everySteps, (x) => Number.isInteger(x) && x >= 1, {
    op,
    name: "everySteps",
    rule: "an integer ≥ 1",
  });
  if (weighting !== "microbatch" && weighting !== "token") {
    throw new TypeError(
      `Cannot create ${op}: "weighting" must be "microbatch" or "token": current value is ` +
        `"${weighting}"`,
    );
  }
  const weightOf = (extra: UpdateExtraArgs | undefined): number => {
    const w = extra?.weight;
    if (weighting === "microbatch") {
      if (w !== undefined) {
        throw new TypeError(
          `Cannot run ${op}: a weight was given but "weighting" is "microbatch": pass ` +
            `weighting "token" to weight micro-batches: current weight is ${w}`,
        );
      }
      return 1;
    }
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
      throw new RangeError(
        `Cannot run ${op}: with weighting "token" every update needs extra.weight, a finite ` +
          `number ≥ 0 (the micro-batch's token count): current value is ${w}`,
      );
    }
    return w;
  };
  return {
    init(params: ParamTree): MultiStepsState<S> {
      return {
        miniStep: 0,
        gradientStep: 0,
        accGrads: zerosLike(params),
        accWeight: 0,
        inner: inner.init(params),
      };
    },
    update(
      grads: ParamTree,
      state: MultiStepsState<S>,
      params?: ParamTree,
      extra?: UpdateExtraArgs,
    ): UpdateResult<MultiStepsState<S>> {
      checkSameStructure(grads, state.accGrads, { op, what: "state.accGrads" });
      const w = weightOf(extra);
      const total = state.accWeight + w;
      const frac = total > 0 ? w / total : 0;
      const acc: ParamTree = {};
      for (const k of Object.keys(grads)) {
        const g = grads[k];
        const a0 = state.accGrads[k];
        const a = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) a[i] = a0[i] + frac * (g[i] - a0[i]);
        acc[k] = a;
      }
      if (state.miniStep + 1 < everySteps) {
        return {
          updates: zerosLike(grads),
          state: { ...state, miniStep: state.miniStep + 1, accGrads: acc, accWeight: total },
          metrics: {},
        };
      }
      const reset = { miniStep: 0, accGrads: zerosLike(grads), accWeight: 0 };
      if (total === 0) {
        return {
          updates: zerosLike(grads),
          state: { ...state, ...reset },
          metrics: { "optim/skipped_update": 1, "optim/accum_weight": 0 },
        };
      }
      const { weight: _, ...rest } = extra ?? {};
      const r = inner.update(acc, state.inner, params, rest);
      return {
        updates: r.updates,
        state: { ...reset, gradientStep: state.gradientStep + 1, inner: r.state },
        metrics: { ...r.metrics, "optim/accum_weight": total },
      };
    },
  };
}
