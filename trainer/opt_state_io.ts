/**
 * Optimizer state to and from checkpoint tensors, bit-exactly. An optax-style state is a plain
 * value of nested arrays and objects whose leaves are `Float32Array`s (moments, accumulators)
 * and numbers (step counts, accumulated weights). {@linkcode flattenOptState} names every leaf
 * by its path (`1/mu/model.norm.weight`, each segment URI-encoded, joined by `/`): a
 * `Float32Array` becomes an F32 tensor, a number an I32 tensor `[2]` holding the two 32-bit halves
 * of its float64 bits. {@linkcode restoreOptState} walks a fresh `init()` state as the template,
 * so the structure comes from the code and every leaf's name, kind and length is checked.
 *
 * @example Round trip of an AdamW state
 * ```ts
 * import { flattenOptState, restoreOptState } from "./opt_state_io.ts";
 * import { adamw } from "./optim/mod.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const opt = adamw({ lr: 0.1, maxGradNorm: 1 });
 * const params = { w: new Float32Array([1, 2]) };
 * const { state } = opt.update({ w: new Float32Array([0.3, -0.2]) }, opt.init(params), params);
 * const tensors = flattenOptState(state);
 * const loaded = Object.fromEntries(
 *   Object.entries(tensors).map(([name, t]) => [name, { data: t.data }]),
 * );
 * deepStrictEqual(restoreOptState(opt.init(params), loaded), state);
 * ```
 *
 * @module
 */
import type { TensorToWrite } from "../internal/safetensors.ts";
import { isPlainObject } from "../internal/is_plain_object.ts";

/**
 * A tensor read back from a checkpoint: only its data is used (`loadCheckpoint` gives F32
 * tensors as `Float32Array` and I32 ones as `Int32Array`).
 *
 * @example Usage
 * ```ts
 * import type { StoredTensor } from "./opt_state_io.ts";
 *
 * const scalar: StoredTensor = { data: new Int32Array([0, 1072693248]) }; // the float64 1
 * ```
 */
export interface StoredTensor {
  /** The values: a `Float32Array` for a tensor leaf, an `Int32Array` of 2 for a number. */
  data: ArrayLike<number>;
}

/**
 * Options of {@linkcode restoreOptState}.
 *
 * @example Usage
 * ```ts
 * import type { RestoreOptStateOptions } from "./opt_state_io.ts";
 *
 * const options: RestoreOptStateOptions = { source: "out/run/step_000100/optimizer.safetensors" };
 * ```
 */
export interface RestoreOptStateOptions {
  /** What the tensors were read from, named in errors. Default `"optimizer state"`. */
  source?: string;
}

function encodeSegment(segment: string | number): string {
  return encodeURIComponent(String(segment));
}

function kindOf(value: unknown): string {
  return typeof value === "object" && value !== null ? value.constructor?.name : typeof value;
}

function numberBits(value: number): Int32Array {
  const bits = new Int32Array(2);
  new Float64Array(bits.buffer)[0] = value;
  return bits;
}

function bitsNumber(bits: Int32Array): number {
  return new Float64Array(Int32Array.from(bits).buffer)[0];
}

function walk(
  value: unknown,
  path: string,
  visit: (path: string, leaf: Float32Array | number) => unknown,
): unknown {
  if (value instanceof Float32Array || typeof value === "number") return visit(path, value);
  const join = (segment: string | number): string =>
    path === "" ? encodeSegment(segment) : `${path}/${encodeSegment(segment)}`;
  if (Array.isArray(value)) return value.map((child, i) => walk(child, join(i), visit));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) out[key] = walk(child, join(key), visit);
    return out;
  }
  throw new TypeError(
    `Cannot handle optimizer state: the value at "${path || "<root>"}" must be a Float32Array, ` +
      `a number, an array or a plain object: current value is ${
        value === null ? "null" : typeof value === "object" ? value.constructor?.name : typeof value
      }`,
  );
}

/**
 * Turns an optimizer state into named tensors for a checkpoint (`optimizer.safetensors`). The
 * `Float32Array` data is shared, not copied.
 *
 * @param state The state (from `init` or `update`).
 * @returns Path → tensor: F32 `[length]` for arrays, I32 `[2]` (float64 bits) for numbers.
 * @throws {TypeError} When a leaf is neither a `Float32Array` nor a number.
 *
 * @example A step count becomes two int32 words
 * ```ts
 * import { flattenOptState } from "./opt_state_io.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const tensors = flattenOptState({ count: 3, mu: { w: new Float32Array(2) } });
 * deepStrictEqual(Object.keys(tensors), ["count", "mu/w"]);
 * deepStrictEqual(tensors.count.dtype, "I32");
 * ```
 */
export function flattenOptState(state: unknown): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  walk(state, "", (path, leaf) => {
    out[path] = leaf instanceof Float32Array
      ? { dtype: "F32", shape: [leaf.length], data: leaf }
      : { dtype: "I32", shape: [2], data: numberBits(leaf) };
    return leaf;
  });
  return out;
}

/**
 * Rebuilds an optimizer state from checkpoint tensors, using a fresh state of the same optimizer
 * (`optimizer.init(params)`) as the template of its structure. Values are copied, bit-exact.
 *
 * @typeParam S The state type.
 * @param template A fresh state of the optimizer for the same parameters.
 * @param tensors The tensors read from the checkpoint.
 * @param options `source`, named in errors.
 * @returns The restored state.
 * @throws {TypeError} When a leaf of the template has no tensor, a tensor has the wrong kind, or
 *   a tensor matches no leaf (the checkpoint was written by another optimizer).
 * @throws {RangeError} When a tensor's length differs from the template's.
 *
 * @example A checkpoint of another optimizer is refused
 * ```ts
 * import { restoreOptState } from "./opt_state_io.ts";
 * import { throws } from "node:assert/strict";
 *
 * throws(
 *   () => restoreOptState({ count: 0 }, { steps: { data: new Int32Array(2) } }, { source: "x" }),
 *   { name: "TypeError", message: /"count" is missing/ },
 * );
 * ```
 */
export function restoreOptState<S>(
  template: S,
  tensors: Readonly<Record<string, StoredTensor>>,
  options: RestoreOptStateOptions = {},
): S {
  const where = `Cannot restore optimizer state from "${options.source ?? "optimizer state"}"`;
  const used = new Set<string>();
  const restored = walk(template, "", (path, leaf) => {
    const tensor = tensors[path];
    if (tensor === undefined || !Object.hasOwn(tensors, path)) {
      throw new TypeError(`${where}: tensor "${path}" is missing`);
    }
    used.add(path);
    if (leaf instanceof Float32Array) {
      if (!(tensor.data instanceof Float32Array)) {
        throw new TypeError(
          `${where}: tensor "${path}" must be F32 (a moment or accumulator): current data is ` +
            `${kindOf(tensor.data)}`,
        );
      }
      if (tensor.data.length !== leaf.length) {
        throw new RangeError(
          `${where}: tensor "${path}" must have ${leaf.length} values like the parameters: ` +
            `current length is ${tensor.data.length}`,
        );
      }
      return Float32Array.from(tensor.data);
    }
    if (!(tensor.data instanceof Int32Array) || tensor.data.length !== 2) {
      throw new TypeError(
        `${where}: tensor "${path}" must be I32 [2] (a number's float64 bits): current data is ` +
          `${kindOf(tensor.data)} of length ${tensor.data.length}`,
      );
    }
    return bitsNumber(tensor.data);
  });
  const extra = Object.keys(tensors).filter((name) => !used.has(name));
  if (extra.length > 0) {
    throw new TypeError(
      `${where}: tensor "${extra[0]}" matches nothing in this optimizer's state (was the ` +
        `checkpoint written with other optimizer settings?)`,
    );
  }
  return restored as S;
}
