/**
 * The one way to combine loss terms: a weighted sum of values and gradients with the metrics of
 * every term (optax's `chain`, for losses).
 *
 * @module
 */
import type { LossGrads, LossOutput, LossTerm } from "../types.ts";

/**
 * One term of {@linkcode sumLosses}.
 *
 * @typeParam I The terms' common input.
 *
 * @example The Hidden-Align term at weight 0.1
 * ```ts
 * import type { WeightedLossTerm } from "./sum_losses.ts";
 * import type { LossTerm } from "../types.ts";
 * const align: LossTerm<unknown> = () => ({ value: 0, grad: {}, metrics: { "align/loss": 0 } });
 * const term: WeightedLossTerm<unknown> = { term: align, weight: 0.1, name: "hidden_align" };
 * ```
 */
export interface WeightedLossTerm<I> {
  /** The term. */
  term: LossTerm<I>;
  /** Its weight (finite); default 1. A weight of 0 still computes and logs the term. */
  weight?: number;
  /** A name for error messages; default `"term <index>"`. */
  name?: string;
}

const WHERE = "Cannot sum the loss terms";

/**
 * A loss term that evaluates every term on the same input and returns `Σ wᵢ·valueᵢ`, the
 * gradients summed with the same weights (a gradient that no term gives stays undefined), and
 * the union of the terms' metrics, unweighted. Two terms that log the same metric key are an
 * error (at the call, when the keys are known).
 *
 * @typeParam I The terms' common input.
 * @param terms The terms and their weights.
 * @returns The summed term.
 * @throws {RangeError} At creation, on a non-finite weight; at a call, when two terms log the
 *   same metric key or give gradients of different lengths.
 *
 * @example A policy loss plus a tenth of an auxiliary term
 * ```ts
 * import { sumLosses } from "./sum_losses.ts";
 * import type { LossTerm } from "../types.ts";
 *
 * const pg: LossTerm<number[]> = (x) => ({
 *   value: x[0],
 *   grad: { dLogprobs: new Float64Array([1, 0]) },
 *   metrics: { "loss/pg": x[0] },
 * });
 * const aux: LossTerm<number[]> = (x) => ({
 *   value: x[1],
 *   grad: { dLogprobs: new Float64Array([0, 1]) },
 *   metrics: { "align/loss": x[1] },
 * });
 * const total = sumLosses([{ term: pg }, { term: aux, weight: 0.1 }]);
 * const out = total([2, 5]);
 * console.log(out.value); // 2.5
 * console.log(out.grad.dLogprobs); // Float64Array [1, 0.1]
 * console.log(out.metrics); // { "loss/pg": 2, "align/loss": 5 }
 * ```
 */
export function sumLosses<I>(terms: readonly WeightedLossTerm<I>[]): LossTerm<I> {
  if (!Array.isArray(terms)) {
    throw new TypeError(`${WHERE}: "terms" must be an array of { term, weight }`);
  }
  const list = terms.map((t, i): { term: LossTerm<I>; weight: number; name: string } => {
    if (typeof t?.term !== "function") {
      throw new TypeError(`${WHERE}: "terms[${i}].term" must be a function`);
    }
    const weight = t.weight ?? 1;
    if (typeof weight !== "number" || !Number.isFinite(weight)) {
      throw new RangeError(
        `${WHERE}: "terms[${i}].weight" must be a finite number: current value is ${weight}`,
      );
    }
    return { term: t.term, weight, name: t.name ?? `term ${i}` };
  });
  return (input: I): LossOutput => {
    let value = 0;
    const grad: LossGrads = {};
    const metrics: Record<string, number> = {};
    const owner = new Map<string, string>();
    for (const { term, weight, name } of list) {
      const out: LossOutput = term(input);
      value += weight * out.value;
      for (const key of ["dLogprobs", "dLastHidden"] as const) {
        const g = out.grad[key];
        if (g === undefined) continue;
        const acc = grad[key];
        if (acc === undefined) {
          grad[key] = g.map((x) => weight * x);
        } else if (acc.length !== g.length) {
          throw new RangeError(
            `${WHERE}: "${name}" gives grad.${key} of ${g.length} values, the terms before it ` +
              `${acc.length}`,
          );
        } else {
          for (let i = 0; i < g.length; i++) acc[i] += weight * g[i];
        }
      }
      for (const [key, v] of Object.entries(out.metrics)) {
        const first = owner.get(key);
        if (first !== undefined) {
          throw new RangeError(
            `${WHERE}: "${name}" logs the metric "${key}" that "${first}" already logs: each ` +
              `key must come from one term`,
          );
        }
        owner.set(key, name);
        metrics[key] = v;
      }
    }
    return { value, grad, metrics };
  };
}
