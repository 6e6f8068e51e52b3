/**
 * The argument checks every backend's backward makes before any work (mode, adapters, which
 * cotangents, their lengths, the hidden layer), in one place so the CPU and WebGPU backward
 * reject the same inputs with the same words.
 *
 * @example A dLogprobs cotangent of the wrong length
 * ```ts
 * import { checkBackwardArgs } from "./backward_args.ts";
 * import { throws } from "node:assert/strict";
 * throws(() =>
 *   checkBackwardArgs({
 *     mode: "full", hasAdapters: false, batch: 1, seqLen: 3, hiddenSize: 4, vocabSize: 8,
 *     numHiddenLayers: 2, dLogprobs: [1],
 *   }), RangeError);
 * ```
 *
 * @module
 */

/**
 * What {@linkcode checkBackwardArgs} checks.
 *
 * @example Usage
 * ```ts
 * import type { BackwardArgs } from "./backward_args.ts";
 * const args: BackwardArgs = {
 *   mode: "adapters", hasAdapters: true, batch: 2, seqLen: 4, hiddenSize: 8, vocabSize: 16,
 *   numHiddenLayers: 2, dLogprobs: new Float64Array(6),
 * };
 * ```
 */
export interface BackwardArgs {
  /** The backward mode as given: `"adapters"` or `"full"`. */
  mode: unknown;
  /** Whether the model carries adapters (`"adapters"` mode needs them). */
  hasAdapters: boolean;
  /** Sequences of the packed batch. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** The model's hidden size. */
  hiddenSize: number;
  /** The model's vocabulary size. */
  vocabSize: number;
  /** The model's decoder layer count (the range of `hiddenLayer`). */
  numHiddenLayers: number;
  /** `dLoss/dlogits` `[batch, seqLen, vocab]`. */
  dLogits?: ArrayLike<number>;
  /** `dLoss/dlastHidden` `[batch, seqLen, hidden]`. */
  dLastHidden?: ArrayLike<number>;
  /** `dLoss/dlogprobs` `[batch, seqLen − 1]`. */
  dLogprobs?: ArrayLike<number>;
  /** Decoder layer whose output `dLastHidden` applies to; undefined = the final-norm output. */
  hiddenLayer?: number;
}

/**
 * Checks a backward's arguments: `mode` is `"adapters"` (with adapters) or `"full"`, at least one
 * cotangent is given, each has its layout's length, and `hiddenLayer` (when given) is an integer
 * in `[0, numHiddenLayers)`.
 *
 * @param args The arguments and the shapes they must fit.
 * @throws {TypeError} If the mode is unknown, `"adapters"` mode has no adapters, or no cotangent
 * is given.
 * @throws {RangeError} If a cotangent has the wrong length or `hiddenLayer` is out of range.
 *
 * @example Valid arguments pass
 * ```ts
 * import { checkBackwardArgs } from "./backward_args.ts";
 * checkBackwardArgs({
 *   mode: "full", hasAdapters: false, batch: 1, seqLen: 3, hiddenSize: 4, vocabSize: 8,
 *   numHiddenLayers: 2, dLogprobs: [1, 1], hiddenLayer: 1,
 * });
 * ```
 */
export function checkBackwardArgs(args: BackwardArgs): void {
  const { mode, batch: B, seqLen: T, hiddenSize: H, vocabSize: V } = args;
  if (mode !== "adapters" && mode !== "full") {
    throw new TypeError(
      `Cannot run the backward: option "mode" must be "adapters" or "full": current value is ` +
        `${JSON.stringify(mode)}`,
    );
  }
  if (mode === "adapters" && !args.hasAdapters) {
    throw new TypeError(
      `Cannot run the backward: mode "adapters" needs adapters (call setAdapters first)`,
    );
  }
  const { dLogits, dLastHidden, dLogprobs } = args;
  if (!dLogits && !dLastHidden && !dLogprobs) {
    throw new TypeError(
      `Cannot run the backward: give at least one of dLogits, dLastHidden and dLogprobs`,
    );
  }
  const n = B * T;
  const check = (what: string, a: ArrayLike<number>, expected: string, len: number) => {
    if (a.length !== len) {
      throw new RangeError(
        `Cannot run the backward: ${what} must have ${expected} = ${len} values: current ` +
          `length is ${a.length}`,
      );
    }
  };
  if (dLogits) check("dLogits", dLogits, `batch·seqLen·vocab = ${B}·${T}·${V}`, n * V);
  if (dLastHidden) {
    check("dLastHidden", dLastHidden, `batch·seqLen·hidden = ${B}·${T}·${H}`, n * H);
  }
  if (dLogprobs) check("dLogprobs", dLogprobs, `batch·(seqLen−1) = ${B}·${T - 1}`, B * (T - 1));
  checkHiddenLayer(args.hiddenLayer, args.numHiddenLayers);
}

/**
 * Checks a `hiddenLayer` option: undefined (the final-norm output) or an integer in
 * `[0, numHiddenLayers)`.
 *
 * @param hiddenLayer The value given.
 * @param numHiddenLayers The model's decoder layer count.
 * @throws {RangeError} Naming `hiddenLayer`, the range and the value.
 *
 * @example Layer 2 of a 2-layer model does not exist
 * ```ts
 * import { checkHiddenLayer } from "./backward_args.ts";
 * import { throws } from "node:assert/strict";
 * throws(() => checkHiddenLayer(2, 2), /hiddenLayer/);
 * ```
 */
export function checkHiddenLayer(hiddenLayer: number | undefined, numHiddenLayers: number): void {
  if (hiddenLayer === undefined) return;
  if (!Number.isSafeInteger(hiddenLayer) || hiddenLayer < 0 || hiddenLayer >= numHiddenLayers) {
    throw new RangeError(
      `Cannot run the backward: option "hiddenLayer" must be an integer in [0, ` +
        `${numHiddenLayers}) (a decoder layer; undefined for the final-norm output): current ` +
        `value is ${hiddenLayer}`,
    );
  }
}

/**
 * Checks a `temperature` option of the token log-probs (the policy `softmax(logits / T)`):
 * undefined (1) or a finite number ≥ 1e-6 (the generator's smallest sampling temperature).
 *
 * @param temperature The value given.
 * @param action The "Cannot …" phrase of the error.
 * @returns The temperature (1 when undefined).
 * @throws {RangeError} Naming `temperature`, the range and the value.
 *
 * @example Zero is greedy decoding, not a policy
 * ```ts
 * import { checkTemperature } from "./backward_args.ts";
 * import { strictEqual, throws } from "node:assert/strict";
 * strictEqual(checkTemperature(undefined, "run the model"), 1);
 * throws(() => checkTemperature(0, "run the model"), /temperature/);
 * ```
 */
export function checkTemperature(temperature: number | undefined, action: string): number {
  if (temperature === undefined) return 1;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 1e-6) {
    throw new RangeError(
      `Cannot ${action}: option "temperature" must be a finite number ≥ 1e-6 (the log-probs ` +
        `are those of softmax(logits / temperature)): current value is ${temperature}`,
    );
  }
  return temperature;
}
