import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import type { LossTerm } from "../types.ts";
import { sumLosses } from "./sum_losses.ts";

const a: LossTerm<number> = (x) => ({
  value: 2 * x,
  grad: { dLogprobs: new Float64Array([1, 2]), dLastHidden: new Float64Array([1, 1, 1]) },
  metrics: { "loss/a": 2 * x },
});
const b: LossTerm<number> = (x) => ({
  value: x + 1,
  grad: { dLogprobs: new Float64Array([10, 20]) },
  metrics: { "loss/b": x + 1, "loss/b_extra": 7 },
});

Deno.test("sumLosses() adds values and gradients with weights and merges metrics", () => {
  const out = sumLosses([{ term: a, weight: 0.5 }, { term: b, weight: 2 }])(3);
  strictEqual(out.value, 0.5 * 6 + 2 * 4);
  deepStrictEqual(out.grad.dLogprobs, new Float64Array([0.5 + 20, 1 + 40]));
  deepStrictEqual(out.grad.dLastHidden, new Float64Array([0.5, 0.5, 0.5]));
  // Metrics are the terms' own, unweighted.
  deepStrictEqual(out.metrics, { "loss/a": 6, "loss/b": 4, "loss/b_extra": 7 });
});

Deno.test("sumLosses() equals applying its terms by hand, and leaves their outputs intact", () => {
  const ga = a(1.5);
  const gb = b(1.5);
  const out = sumLosses([{ term: a }, { term: b, weight: -0.25 }])(1.5);
  strictEqual(out.value, ga.value - 0.25 * gb.value);
  for (let i = 0; i < 2; i++) {
    strictEqual(out.grad.dLogprobs![i], ga.grad.dLogprobs![i] - 0.25 * gb.grad.dLogprobs![i]);
  }
  // A weight of 0 still evaluates and logs the term; a term without a gradient leaves it out.
  const zero = sumLosses([{ term: b, weight: 0 }])(1);
  strictEqual(zero.value, 0);
  deepStrictEqual(zero.grad.dLogprobs, new Float64Array([0, 0]));
  strictEqual(zero.grad.dLastHidden, undefined);
  strictEqual(zero.metrics["loss/b"], 2);
  // The first term's arrays are not mutated by the sum.
  const shared = new Float64Array([1, 1]);
  const c: LossTerm<number> = () => ({ value: 0, grad: { dLogprobs: shared }, metrics: {} });
  const d: LossTerm<number> = () => ({ value: 0, grad: { dLogprobs: shared }, metrics: {} });
  sumLosses([{ term: c }, { term: d }])(0);
  deepStrictEqual(shared, new Float64Array([1, 1]));
  strictEqual(sumLosses<number>([])(0).value, 0);
});

Deno.test("sumLosses() refuses two terms that log the same metric key", () => {
  throws(() => sumLosses([{ term: a, name: "pg" }, { term: a, name: "pg2" }])(1), {
    name: "RangeError",
    message: /"pg2" logs the metric "loss\/a" that "pg" already logs/,
  });
  throws(() => sumLosses([{ term: a }, { term: a, weight: 0 }])(1), {
    message: /"term 1" logs the metric "loss\/a" that "term 0" already logs/,
  });
});

Deno.test("sumLosses() names the wrong input", () => {
  throws(() => sumLosses([{ term: a, weight: NaN }]), {
    name: "RangeError",
    message: /"terms\[0\].weight" must be a finite number: current value is NaN/,
  });
  const short: LossTerm<number> = () => ({
    value: 0,
    grad: { dLogprobs: new Float64Array(3) },
    metrics: {},
  });
  throws(() => sumLosses([{ term: a }, { term: short, name: "short" }])(0), {
    message: /"short" gives grad.dLogprobs of 3 values, the terms before it 2/,
  });
  // deno-lint-ignore no-explicit-any
  throws(() => sumLosses([{ term: 3 as any }]), { name: "TypeError" });
});
