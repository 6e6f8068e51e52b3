// Private helpers of the optimizer pieces: structure checks and element-wise maps over flat
// parameter trees. Arithmetic runs in float64 (JS numbers) and is rounded once on store.
import type { ParamTree } from "../types.ts";

/** Throws unless `other` has exactly the names of `ref`, each with the same length. */
export function checkSameStructure(
  ref: ParamTree,
  other: ParamTree,
  context: { op: string; what: string },
): void {
  const refKeys = Object.keys(ref);
  const otherKeys = Object.keys(other);
  for (const k of refKeys) {
    const o = other[k];
    if (!(o instanceof Float32Array)) {
      throw new TypeError(
        `Cannot run ${context.op}: ${context.what} must have tensor "${k}" like the gradients: ` +
          `current names are ${JSON.stringify(otherKeys)}`,
      );
    }
    if (o.length !== ref[k].length) {
      throw new RangeError(
        `Cannot run ${context.op}: ${context.what} tensor "${k}" must have length ` +
          `${ref[k].length}: current length is ${o.length}`,
      );
    }
  }
  if (otherKeys.length !== refKeys.length) {
    const extra = otherKeys.filter((k) => !(k in ref));
    throw new TypeError(
      `Cannot run ${context.op}: ${context.what} must have the names of the gradients: it also ` +
        `has ${JSON.stringify(extra)}`,
    );
  }
}

/** A tree of zeros shaped like `tree`. */
export function zerosLike(tree: ParamTree): ParamTree {
  const out: ParamTree = {};
  for (const k of Object.keys(tree)) out[k] = new Float32Array(tree[k].length);
  return out;
}

/** `out[k][i] = f(a[k][i])` for every name of `a`. */
export function map1(a: ParamTree, f: (x: number) => number): ParamTree {
  const out: ParamTree = {};
  for (const k of Object.keys(a)) {
    const x = a[k];
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
    out[k] = y;
  }
  return out;
}

/** `out[k][i] = f(a[k][i], b[k][i])` for every name of `a` (`b` must match `a`). */
export function map2(a: ParamTree, b: ParamTree, f: (x: number, y: number) => number): ParamTree {
  const out: ParamTree = {};
  for (const k of Object.keys(a)) {
    const x = a[k];
    const y = b[k];
    const z = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) z[i] = f(x[i], y[i]);
    out[k] = z;
  }
  return out;
}

/** Throws a RangeError unless `value` is a finite number satisfying `ok`. */
export function checkNumber(
  value: number,
  ok: (x: number) => boolean,
  context: { op: string; name: string; rule: string },
): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !ok(value)) {
    throw new RangeError(
      `Cannot create ${context.op}: "${context.name}" must be ${context.rule}: current value ` +
        `is ${value}`,
    );
  }
}

/** Throws unless `step` is an integer ≥ 0. */
export function checkStep(step: number, op: string): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new RangeError(
      `Cannot evaluate ${op}: the step must be an integer ≥ 0: current value is ${step}`,
    );
  }
}
