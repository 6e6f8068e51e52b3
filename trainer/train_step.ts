/**
 * One optimizer step over micro-batches, as a plain function of its inputs (optax style): the
 * backend's gradients of each micro-batch's loss term go through the optimizer (typically
 * `multiSteps` accumulating them, weighted), in order; the new optimizer state, the updates and the
 * metrics come back, and nothing is changed until the caller applies the updates. SFT and the RL
 * loop share it.
 *
 * @example One SFT step of a fresh model
 * ```ts
 * import { trainStep } from "./train_step.ts";
 * import { createTrainBackend } from "./backend.ts";
 * import { sftLoss } from "./sft_loss.ts";
 * import { adamw, applyUpdates } from "./optim/mod.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { CpuQwen3 } from "../model/qwen3_cpu.ts";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [], bosTokenId: null,
 *   padTokenId: null,
 * };
 * const backend = createTrainBackend(
 *   new CpuQwen3(config, initQwen3Weights(config, { seed: 0 })),
 *   { mode: "full" },
 * );
 * const optimizer = adamw({ lr: 1e-3 });
 * const lossMask = new Float64Array([0, 1, 1]);
 * const r = await trainStep(backend, {
 *   optimizer,
 *   state: optimizer.init(backend.params.tree),
 *   microBatches: [{
 *     input: { inputIds: [[1, 2, 3, 4]] },
 *     loss: ({ logprobs }) => sftLoss({ logprobs, lossMask }),
 *     options: { linear: true },
 *   }],
 * });
 * backend.setParams(applyUpdates(backend.params.tree, r.updates));
 * console.log(r.losses[0].value > 0, r.updateNorm > 0); // true true
 * ```
 *
 * @module
 */
import type { ForwardInput } from "../model/forward_input.ts";
import type { LossAndGradsOptions, PolicyOutputs, TrainBackend } from "./backend.ts";
import { globalNorm } from "./optim/mod.ts";
import type { GradientTransformation, LossOutput, LossTerm, ParamTree } from "./types.ts";

/**
 * One micro-batch of a {@linkcode trainStep}.
 *
 * @example Usage
 * ```ts
 * import type { TrainMicroBatch } from "./train_step.ts";
 * import { sftLoss } from "./sft_loss.ts";
 * const lossMask = [0, 1];
 * const micro: TrainMicroBatch = {
 *   input: { inputIds: [[1, 2, 3]] },
 *   loss: ({ logprobs }) => sftLoss({ logprobs, lossMask }),
 *   weight: 1,
 *   options: { linear: true, dropoutSeed: 7 },
 * };
 * ```
 */
export interface TrainMicroBatch {
  /** The batch. */
  input: ForwardInput;
  /** The loss term, called with the model's outputs. */
  loss: LossTerm<PolicyOutputs>;
  /**
   * Passed to the optimizer as `extra.weight` (e.g. the micro-batch's loss-token count for
   * `multiSteps` with `weighting: "token"`); default none.
   */
  weight?: number;
  /** Options of `lossAndGrads`: linearity, dropout seed, hidden layer. */
  options?: LossAndGradsOptions;
}

/**
 * Options of {@linkcode trainStep}.
 *
 * @example Usage
 * ```ts ignore
 * import type { TrainStepInput } from "./train_step.ts";
 * declare const options: TrainStepInput<unknown>;
 * console.log(options.microBatches.length);
 * ```
 */
export interface TrainStepInput<S> {
  /** The optimizer (e.g. `multiSteps(adamw(…), { everySteps: microBatches.length })`). */
  optimizer: GradientTransformation<S>;
  /** Its state before the step (not modified). */
  state: S;
  /** The micro-batches, run and fed to the optimizer in order (at least one). */
  microBatches: readonly TrainMicroBatch[];
}

/**
 * Result of {@linkcode trainStep}.
 *
 * @example Usage
 * ```ts ignore
 * import type { TrainStepOutput } from "./train_step.ts";
 * declare const r: TrainStepOutput<unknown>;
 * console.log(r.losses.map((l) => l.value), r.updateNorm);
 * ```
 */
export interface TrainStepOutput<S> {
  /** The optimizer state after the step. */
  state: S;
  /** The updates of the last micro-batch (the step's, once an accumulation completes). */
  updates: ParamTree;
  /** Each micro-batch's loss term output, in order. */
  losses: LossOutput[];
  /** The optimizer's metrics, merged over the micro-batches (later ones win). */
  metrics: Record<string, number>;
  /** Global L2 norm of `updates`. */
  updateNorm: number;
}

/**
 * Runs one step: for each micro-batch, the backend's loss and gradients, then an optimizer
 * update with the micro-batch's weight. Pure in the optimizer state and the parameters: apply
 * `updates` (`backend.setParams(applyUpdates(backend.params.tree, updates))`) to commit the step,
 * or drop the result to skip it.
 *
 * @param backend The train backend (its current parameters are the optimizer's `params`).
 * @param options Optimizer, state and micro-batches.
 * @returns The new state, the updates, the losses and the metrics.
 * @throws {RangeError} If there is no micro-batch.
 *
 * @example See the module example.
 * ```ts ignore
 * import { trainStep } from "./train_step.ts";
 * declare const backend: import("./backend.ts").TrainBackend;
 * declare const options: import("./train_step.ts").TrainStepInput<unknown>;
 * const { state, updates } = await trainStep(backend, options);
 * ```
 */
export async function trainStep<S>(
  backend: TrainBackend,
  options: TrainStepInput<S>,
): Promise<TrainStepOutput<S>> {
  const { optimizer, microBatches } = options;
  if (microBatches.length === 0) {
    throw new RangeError(
      `Cannot run a train step: option "microBatches" must hold at least one micro-batch: ` +
        `current length is 0`,
    );
  }
  const params = backend.params.tree;
  let state = options.state;
  let updates: ParamTree = {};
  let metrics: Record<string, number> = {};
  const losses: LossOutput[] = [];
  for (const micro of microBatches) {
    const { loss, grads } = await backend.lossAndGrads(micro.input, micro.loss, micro.options);
    losses.push(loss);
    const extra = micro.weight === undefined ? undefined : { weight: micro.weight };
    const r = optimizer.update(grads, state, params, extra);
    state = r.state;
    updates = r.updates;
    metrics = { ...metrics, ...r.metrics };
  }
  return { state, updates, losses, metrics, updateNorm: globalNorm(updates) };
}
