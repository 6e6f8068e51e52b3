/**
 * Types shared by the trainer's pure pieces: the optax-style gradient transformation and the
 * flat parameter tree it works on.
 *
 * @module
 */

/**
 * A flat tree of named float32 tensors: tensor name (the checkpoint / PEFT name, e.g.
 * `"model.layers.0.self_attn.q_proj.lora_A.weight"`) → its values, row-major.
 *
 * halo uses a plain object rather than a `Map` so that a tree (and an optimizer state holding
 * trees) is a plain, JSON-shaped value that can be spread, compared and written to safetensors
 * by name. Trees are flat (no nesting): every transform walks `Object.keys(grads)` and requires
 * the other trees it is given (state, params) to have the same names and lengths. Transforms
 * never mutate a tree they are given; they return new arrays.
 *
 * @example A tree of two tensors
 * ```ts
 * import type { ParamTree } from "./types.ts";
 * const params: ParamTree = { "w": new Float32Array([1, 2]), "b": new Float32Array([0]) };
 * console.log(Object.keys(params)); // ["w", "b"]
 * ```
 */
export type ParamTree = Record<string, Float32Array>;

/**
 * A learning-rate (or any scalar) schedule: the value to use at optimizer step `step`
 * (0-based: the first update uses `schedule(0)`, as in optax).
 *
 * @example A step schedule
 * ```ts
 * import type { Schedule } from "./types.ts";
 * const halving: Schedule = (step) => 1e-3 * 0.5 ** Math.floor(step / 100);
 * console.log(halving(150)); // 0.0005
 * ```
 */
export type Schedule = (step: number) => number;

/**
 * Extra arguments of {@linkcode GradientTransformation.update} (optax's
 * `GradientTransformationExtraArgs`). `chain()` forwards them to every piece; a piece ignores
 * the ones it does not use.
 *
 * @example Pass the token count of a micro-batch to a token-weighted `multiSteps`
 * ```ts
 * import type { UpdateExtraArgs } from "./types.ts";
 * const extra: UpdateExtraArgs = { weight: 1234 };
 * console.log(extra.weight); // 1234
 * ```
 */
export interface UpdateExtraArgs {
  /**
   * Weight of this gradient in an accumulated mean, e.g. the number of loss tokens of the
   * micro-batch it was computed on; read by `multiSteps({ weighting: "token" })`.
   */
  weight?: number;
}

/**
 * What {@linkcode GradientTransformation.update} returns.
 *
 * @typeParam S The transform's state.
 *
 * @example An identity update
 * ```ts
 * import type { UpdateResult } from "./types.ts";
 * const result: UpdateResult<Record<string, never>> = {
 *   updates: { w: new Float32Array([0.1]) },
 *   state: {},
 *   metrics: {},
 * };
 * console.log(result.updates.w[0]); // ≈ 0.1
 * ```
 */
export interface UpdateResult<S> {
  /** The transformed updates (same names and lengths as the incoming gradients). */
  updates: ParamTree;
  /** The new state; the old one is left untouched. */
  state: S;
  /**
   * Scalars worth logging, with namespaced keys (`"optim/grad_norm"`, `"optim/lr"`); `{}` when
   * none. `chain()` merges the records of its pieces (a later piece wins on a repeated key).
   */
  metrics: Record<string, number>;
}

/**
 * An optax-style gradient transformation: a pure `{ init, update }` pair. The state is a plain
 * object (numbers and {@linkcode ParamTree}s) that goes in and comes back out; the closure holds
 * hyperparameters only. Combine transformations with `chain()`.
 *
 * @typeParam S The state.
 *
 * @example A transformation that scales updates by a constant
 * ```ts
 * import type { GradientTransformation, ParamTree } from "./types.ts";
 * const half: GradientTransformation<Record<string, never>> = {
 *   init: () => ({}),
 *   update(grads, state) {
 *     const updates: ParamTree = {};
 *     for (const k of Object.keys(grads)) updates[k] = grads[k].map((g) => g / 2);
 *     return { updates, state, metrics: {} };
 *   },
 * };
 * const g = { w: new Float32Array([2]) };
 * console.log(half.update(g, half.init(g)).updates.w); // Float32Array [1]
 * ```
 */
export interface GradientTransformation<S> {
  /**
   * Creates the initial state for parameters shaped like `params`.
   *
   * @param params The parameters (only names and lengths are read).
   * @returns The initial state.
   */
  init(params: ParamTree): S;
  /**
   * Transforms gradients (or the updates of an earlier piece) into updates.
   *
   * @param grads The incoming gradients or updates.
   * @param state The state from `init` or the previous `update`.
   * @param params The current parameters (needed by weight decay).
   * @param extra Extra arguments such as a micro-batch weight.
   * @returns The updates, the new state and metrics.
   */
  update(
    grads: ParamTree,
    state: S,
    params?: ParamTree,
    extra?: UpdateExtraArgs,
  ): UpdateResult<S>;
}

/**
 * Cotangents of a scalar loss with respect to the model's outputs: what a loss term hands the
 * backward pass (`cpuBackward`'s `dLogprobs` / `dLastHidden`, and the same names on the GPU).
 * A term leaves out the outputs it does not depend on.
 *
 * @example The gradient of the summed log-likelihood of two tokens
 * ```ts
 * import type { LossGrads } from "./types.ts";
 * const grad: LossGrads = { dLogprobs: new Float64Array([-1, -1]) };
 * console.log(grad.dLogprobs?.length); // 2
 * ```
 */
export interface LossGrads {
  /** `dLoss/dlogprobs`, `[batch, seqLen − 1]` like the token log-probs. */
  dLogprobs?: Float64Array;
  /** `dLoss/dlastHidden`, `[batch, seqLen, hidden]` at the final-norm output. */
  dLastHidden?: Float64Array;
}

/**
 * What a loss term returns (the verl contract): its value, its gradient contribution with
 * respect to the model's outputs, and scalars worth logging under namespaced keys
 * (`"loss/nll"`, `"loss/pg_clipfrac"`).
 *
 * @example A loss output
 * ```ts
 * import type { LossOutput } from "./types.ts";
 * const out: LossOutput = {
 *   value: 0.7,
 *   grad: { dLogprobs: new Float64Array([-0.5, -0.5]) },
 *   metrics: { "loss/nll": 0.7 },
 * };
 * console.log(out.metrics["loss/nll"]); // 0.7
 * ```
 */
export interface LossOutput {
  /** The loss (already aggregated, e.g. a token mean). */
  value: number;
  /** Its cotangents at the model's outputs. */
  grad: LossGrads;
  /** Scalars to log, keys namespaced as `"loss/<name>"`. */
  metrics: Record<string, number>;
}

/**
 * A loss term: a pure function from what the model computed on a batch (and the batch's own
 * data) to a {@linkcode LossOutput}.
 *
 * @typeParam I The term's input.
 *
 * @example The mean of the negated log-probs
 * ```ts
 * import type { LossTerm } from "./types.ts";
 * const meanNll: LossTerm<{ logprobs: Float64Array }> = ({ logprobs }) => {
 *   const n = logprobs.length;
 *   return {
 *     value: -logprobs.reduce((a, b) => a + b, 0) / n,
 *     grad: { dLogprobs: new Float64Array(n).fill(-1 / n) },
 *     metrics: {},
 *   };
 * };
 * console.log(meanNll({ logprobs: new Float64Array([-1, -3]) }).value); // 2
 * ```
 */
export type LossTerm<I> = (input: I) => LossOutput;
