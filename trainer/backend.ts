/**
 * The trainer's view of a model backend: trainable parameters by name, a forward and greedy
 * generation for evaluation, and the gradients of a loss term. The train loop only talks to a
 * {@linkcode TrainBackend}, so the two implementations are interchangeable:
 *
 * - CPU: the exact float64 `cpuBackward`, run sequence by sequence (a right-padded batch's
 *   gradient is the sum of its sequences' gradients in order), optionally spread over worker
 *   threads; the result does not depend on the number of workers. With HILO's balance term a
 *   forward first gathers every row's routing statistics, and each row's backward takes their
 *   sum (the batch's), so the term is the batch's, as on WebGPU.
 * - WebGPU: `WebGpuQwen3.backward` in float32, the optimizer on the host and the new values
 *   uploaded after each step (no LoRA dropout).
 *
 * @example Gradients of the SFT loss of one sequence, on the CPU
 * ```ts
 * import { createTrainBackend } from "./backend.ts";
 * import { sftLoss } from "./sft_loss.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { CpuQwen3 } from "../model/qwen3_cpu.ts";
 * import { ok } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [], bosTokenId: null,
 *   padTokenId: null,
 * };
 * const model = new CpuQwen3(config, initQwen3Weights(config, { seed: 0 }));
 * const backend = createTrainBackend(model, { mode: "full" });
 * const lossMask = new Float64Array([0, 1, 1]);
 * const { loss, grads } = await backend.lossAndGrads(
 *   { inputIds: [[1, 2, 3, 4]] },
 *   ({ logprobs }) => sftLoss({ logprobs, lossMask }),
 *   { linear: true },
 * );
 * ok(loss.value > 0 && grads["model.norm.weight"].length === 8);
 * ```
 *
 * @module
 */
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import type { Qwen3Model } from "../model/model.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward, temperedLogits } from "../model/qwen3_cpu_backward.ts";
import { balanceLoss, checkBalanceWeight, sumBalanceStats, withBalanceMetric } from "./_balance.ts";
import { checkHiddenLayer, checkTemperature } from "../model/backward_args.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import { CpuWorkerPool } from "./_cpu_pool.ts";
import { canTrainOnGpu, WebGpuTrainBackend } from "./_webgpu_backend.ts";
import { checkGpuHiddenLayer } from "../model/qwen3_webgpu_backward.ts";
import { rowBackward, rowForward, type RowJob, type RowResult } from "./_cpu_rows.ts";
import { assignParams, loraParams, modelParams, type NamedParams } from "./params.ts";
import type { LossOutput, LossTerm, ParamTree } from "./types.ts";
import { type ObjectiveRequest, objectiveTerm } from "./losses/objective_request.ts";
import { sameArray } from "../internal/same_array.ts";

/**
 * Which parameters train: every weight (`"full"`) or only the LoRA adapters the model carries
 * (`"adapters"`; the base stays frozen).
 *
 * @example Usage
 * ```ts
 * import type { TrainMode } from "./backend.ts";
 *
 * const mode: TrainMode = "adapters";
 * ```
 */
export type TrainMode = "full" | "adapters";

/**
 * What the model computed on a batch, as a loss term reads it.
 *
 * @example Usage
 * ```ts
 * import type { PolicyOutputs } from "./backend.ts";
 *
 * const outputs: PolicyOutputs = { logprobs: new Float64Array(3), batch: 1, seqLen: 4 };
 * ```
 */
export interface PolicyOutputs {
  /** Token log-probs `[batch, seqLen − 1]` (0 at masked targets). */
  logprobs: Float64Array;
  /**
   * Hidden states `[batch, seqLen, hidden]`, when the backend computed them: the final-norm output
   * (HF's `hidden_states[-1]`), or decoder layer `hiddenLayer`'s output when
   * {@linkcode LossAndGradsOptions.hiddenLayer} is set.
   */
  lastHidden?: Float64Array;
  /**
   * Entropy of the next-token distribution at each scored position `[batch, seqLen − 1]` (0 at
   * padding), when the backend computed it (both do in `forward` and `lossAndGrads`).
   */
  entropy?: Float64Array;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/**
 * Options of {@linkcode TrainBackend.lossAndGrads}.
 *
 * @example Usage
 * ```ts
 * import type { LossAndGradsOptions } from "./backend.ts";
 *
 * const options: LossAndGradsOptions = { linear: true, dropoutSeed: 1234 };
 * ```
 */
export interface LossAndGradsOptions {
  /**
   * The loss is linear in the outputs (its gradient does not depend on them, e.g. the SFT NLL):
   * the backend takes the gradient from the term before the forward and runs one fused
   * forward+backward instead of a forward, the term, and a forward+backward. The claim is
   * checked: a term whose gradient changes with the outputs is an error. Default `false`.
   */
  linear?: boolean;
  /**
   * Seed of the training-mode LoRA dropout masks; default no dropout. A sequence's masks depend
   * only on this seed and the sequence's tokens, not on its place in the batch or the workers.
   */
  dropoutSeed?: number;
  /**
   * Which hidden state the loss term receives as `PolicyOutputs.lastHidden`, and where its
   * `dLastHidden` cotangent enters the backward: undefined = the final-norm output (HF's
   * `hidden_states[-1]`, the default); `l` in `[0, numHiddenLayers)` = the output of decoder
   * layer `l`, before any final norm (HF's `hidden_states[l + 1]` for `l < numHiddenLayers − 1`;
   * for the last layer HF's entry is the final-norm output, i.e. undefined here). An index
   * outside that range is a `RangeError`.
   */
  hiddenLayer?: number;
  /**
   * The policy whose token log-probs (and entropies) the term receives and differentiates:
   * `softmax(logits / temperature)`, the distribution that sampling at this temperature draws
   * from (RL rollouts at `rl.temperature`); the gradient reaches the logits times
   * `1 / temperature`. A finite number ≥ 1e-6; default 1 (the raw model, unchanged bits).
   */
  temperature?: number;
  /**
   * Weight of this call's HILO load-balancing term (adapters with `balanceCoef` > 0): the call
   * adds the gradient of `balanceWeight · balanceCoef · balance`, `balance` the loss over the
   * call's real tokens (one micro-batch; `E·Σ_e f_e·P_e` per routed projection, summed over
   * projections and layers), and reports `balance` as the metric `"loss/balance"`. A step whose
   * micro-batch gradients are summed passes `1 / micro-batches`, so that its balance term is the
   * mean over its micro-batches (as PyTorch's gradient accumulation divides by the accumulation
   * steps). A finite number ≥ 0; default 1.
   */
  balanceWeight?: number;
}

/**
 * Options of {@linkcode TrainBackend.forward}.
 *
 * @example The log-probs of the policy sampled at temperature 0.7
 * ```ts
 * import type { ForwardOptions } from "./backend.ts";
 *
 * const options: ForwardOptions = { temperature: 0.7 };
 * ```
 */
export interface ForwardOptions {
  /** As {@linkcode LossAndGradsOptions.temperature}; default 1. */
  temperature?: number;
  /**
   * Which hidden state `lastHidden` is, as {@linkcode LossAndGradsOptions.hiddenLayer}: undefined
   * = the final-norm output; `l` in `[0, numHiddenLayers)` = decoder layer `l`'s output. The pass
   * costs the same either way (no logits or other layers are kept). An index outside that range
   * is a `RangeError`.
   */
  hiddenLayer?: number;
  /**
   * Return only these token rows of the hidden state (flat indices `b · seqLen + t`, in this
   * order): `lastHidden` is then `[hiddenRows.length, hidden]` (e.g. RL's anchor rows; `[]`
   * for none), and a GPU backend reads back only those rows. Default every row
   * (`[batch, seqLen, hidden]`). An index outside the batch's tokens is a `RangeError`.
   */
  hiddenRows?: readonly number[];
}

/**
 * A backend that can leave a step's gradients in its own buffers for an optimizer that runs
 * there (the WebGPU backend with `GpuAdamw`): only the loss comes back.
 *
 * @example Usage
 * ```ts ignore
 * import type { AccumulatingBackend } from "./backend.ts";
 * declare const backend: AccumulatingBackend;
 * declare const request: import("./losses/objective_request.ts").ObjectiveRequest;
 * const loss = await backend.accumulateObjective({ inputIds: [[1, 2, 3]] }, request, {
 *   accumulate: true,
 * });
 * ```
 */
export interface AccumulatingBackend {
  /**
   * Forward, the objective's kernels and backward; the gradients are added to the device's
   * gradient buffers (`accumulate`) or replace them.
   *
   * @param input The batch.
   * @param request The terms and their inputs.
   * @param options Dropout, hidden layer and whether to add to the gradients already there.
   * @returns The objective's value and metrics.
   */
  accumulateObjective(
    input: ForwardInput,
    request: ObjectiveRequest,
    options?: Omit<LossAndGradsOptions, "linear" | "temperature"> & { accumulate?: boolean },
  ): Promise<LossOutput>;
}

/**
 * Result of {@linkcode TrainBackend.lossAndGrads}.
 *
 * @example Usage
 * ```ts
 * import type { LossAndGradsResult } from "./backend.ts";
 *
 * const result: LossAndGradsResult = {
 *   loss: { value: 1, grad: {}, metrics: {} },
 *   grads: { "model.norm.weight": new Float32Array(8) },
 * };
 * ```
 */
export interface LossAndGradsResult {
  /** The loss term's output on the batch. */
  loss: LossOutput;
  /** The gradient of `loss.value` for every trainable parameter, float32. */
  grads: ParamTree;
}

/**
 * A model backend as the trainer sees it.
 *
 * @example Usage
 * ```ts ignore
 * import type { TrainBackend } from "./backend.ts";
 * declare const backend: TrainBackend;
 * const before = backend.params.tree["model.norm.weight"][0];
 * ```
 */
export interface TrainBackend {
  /** Where the math runs. */
  readonly kind: "cpu" | "webgpu";
  /** Which parameters train: every weight (`"full"`) or the LoRA adapters only. */
  readonly mode: TrainMode;
  /** The model (for generation during evaluation). */
  readonly model: Qwen3Model;
  /**
   * The trainable parameters by name, with shapes. On the CPU the arrays are the model's own; on
   * a GPU backend they are host copies that {@linkcode TrainBackend.setParams} uploads.
   */
  readonly params: NamedParams;
  /**
   * Token log-probs of a batch (no dropout): for evaluation, and RL's recomputed old log-probs.
   *
   * @param input The batch.
   * @param options The policy's temperature (default 1) and the hidden layer `lastHidden` holds.
   * @returns The outputs.
   */
  forward(input: ForwardInput, options?: ForwardOptions): Promise<PolicyOutputs>;
  /**
   * Runs the batch forward and backward through a loss term.
   *
   * @param input The batch.
   * @param loss The loss term, called with the model's outputs.
   * @param options Linearity and dropout.
   * @returns The term's output and the gradients of every trainable parameter.
   */
  lossAndGrads(
    input: ForwardInput,
    loss: LossTerm<PolicyOutputs>,
    options?: LossAndGradsOptions,
  ): Promise<LossAndGradsResult>;
  /**
   * Runs the batch forward and backward through an objective given as data (registered terms and
   * their inputs). The CPU evaluates it in float64 like {@linkcode TrainBackend.lossAndGrads};
   * the WebGPU backend runs `"clipped_pg"` and `"hidden_align"` as kernels inside the training
   * step (one forward, one backward, one readback of the gradients and the loss scalars; no
   * log-prob or hidden-state round trip) and any other term on the host. The loss metrics
   * include `"policy/entropy"` (mean next-token entropy over the `lossMask` tokens) when the
   * inputs have a `lossMask`. `request.temperature` (default 1) sets the policy
   * `softmax(logits / temperature)` whose log-probs the terms read (see
   * {@linkcode LossAndGradsOptions.temperature}).
   *
   * @param input The batch.
   * @param request The terms, their inputs and the policy's temperature.
   * @param options Dropout and the hidden layer the align term reads.
   * @returns The objective's value and metrics (`grad` may be empty: the cotangents can stay on
   * the device) and the gradients of every trainable parameter.
   */
  objectiveAndGrads(
    input: ForwardInput,
    request: ObjectiveRequest,
    options?: Omit<LossAndGradsOptions, "linear" | "temperature">,
  ): Promise<LossAndGradsResult>;
  /**
   * Generates continuations with the current parameters (`model/generate.ts` semantics).
   *
   * @param options Prompts, length, sampling.
   * @returns The sequences.
   */
  generate(options: GenerateOptions): Promise<GenerateResult>;
  /**
   * Makes new parameter values the model's (copied in place; uploaded on a GPU).
   *
   * @param tree New values, same names and lengths as `params.tree`.
   */
  setParams(tree: ParamTree): void;
  /**
   * Frees the activation workspaces the model keeps between calls (on WebGPU: generation's KV
   * cache and buffers, the forward's and the training step's; `WebGpuQwen3.releaseWorkspaces`),
   * keeping weights, adapters, gradients and optimizer state; the next call allocates what it
   * needs again. An RL run calls it between its phases (`rl.releaseWorkspaces`), so that they do
   * not hold each other's memory. The CPU backend keeps no workspace (a no-op); a backend
   * without it is treated as one.
   */
  releaseWorkspaces?(): void;
  /** Frees workers and device memory; the backend cannot be used afterwards. */
  dispose(): void;
}

/**
 * Options of {@linkcode createTrainBackend}.
 *
 * @example Usage
 * ```ts
 * import type { CreateTrainBackendOptions } from "./backend.ts";
 *
 * const options: CreateTrainBackendOptions = { mode: "adapters" };
 * ```
 */
export interface CreateTrainBackendOptions {
  /** `"full"` trains every weight, `"adapters"` only the LoRA adapters the model carries. */
  mode: TrainMode;
  /**
   * CPU: threads to spread the sequences of a batch over (workers, each with a copy of the
   * model); default 1 (this thread). The results do not depend on it: a batch's gradient is
   * always the sum of its sequences' gradients taken in order.
   */
  workers?: number;
  /**
   * WebGPU: host copies of the trainable parameters (`modelParams` of the weights the model was
   * built from, or `loraParams` of the adapters given to `setAdapters`). The optimizer updates
   * them and the backend uploads them after each step. Required for a WebGPU model.
   */
  params?: NamedParams;
  /**
   * WebGPU: keep every trained layer's activations for the backward instead of recomputing them
   * (`TrainStepOptions.keepActivations`; key `trainer.keepActivations`); default false.
   */
  keepActivations?: boolean;
}

/** Real-token count of each row when every mask row is 1…1 0…0 (right padding), else null. */
function rowLengths(input: ForwardInput): number[] | null {
  const rows = input.inputIds;
  if (!Array.isArray(rows) || rows.length === 0 || !Array.isArray(rows[0])) return null;
  const seqLen = rows[0].length;
  const lengths: number[] = [];
  for (let b = 0; b < rows.length; b++) {
    if (!Array.isArray(rows[b]) || rows[b].length !== seqLen) return null;
    const mask = input.attentionMask?.[b];
    if (mask === undefined) {
      lengths.push(seqLen);
      continue;
    }
    if (!Array.isArray(mask) || mask.length !== seqLen) return null;
    let n = 0;
    while (n < seqLen && mask[n] === 1) n++;
    for (let t = n; t < seqLen; t++) if (mask[t] !== 0) return null;
    if (n < 1) return null;
    lengths.push(n);
  }
  return lengths;
}

/** Rows `rows` (token indices) of a `[tokens, hidden]` state, in that order. */
function pickRows(state: Float64Array, rows: readonly number[], hidden: number): Float64Array {
  const tokens = state.length / hidden;
  const out = new Float64Array(rows.length * hidden);
  rows.forEach((r, i) => {
    if (!Number.isSafeInteger(r) || r < 0 || r >= tokens) {
      throw new RangeError(
        `Cannot run the forward: option "hiddenRows" must hold token indices in [0, ${tokens}): ` +
          `current value has ${r}`,
      );
    }
    out.set(state.subarray(r * hidden, (r + 1) * hidden), i * hidden);
  });
  return out;
}

/** The trainer's CPU backend: the exact float64 forward and backward of `CpuQwen3`. */
class CpuTrainBackend implements TrainBackend {
  readonly kind = "cpu" as const;
  readonly mode: TrainMode;
  readonly model: CpuQwen3;
  readonly params: NamedParams;
  readonly workers: number;
  #pool: CpuWorkerPool | null = null;

  constructor(model: CpuQwen3, mode: TrainMode, workers: number) {
    this.model = model;
    this.mode = mode;
    this.workers = workers;
    if (mode === "adapters") {
      if (model.adapters === null) {
        throw new TypeError(
          `Cannot create the CPU train backend: mode "adapters" needs adapters on the model ` +
            `(call setAdapters first)`,
        );
      }
      this.params = loraParams(model.adapters);
    } else {
      if (model.adapters !== null) {
        throw new TypeError(
          `Cannot create the CPU train backend: mode "full" trains the base weights of a model ` +
            `without adapters: remove the adapters or use mode "adapters"`,
        );
      }
      this.params = modelParams(model.weights, model.config);
    }
  }

  get #workerPool(): CpuWorkerPool | null {
    if (this.workers > 1 && this.#pool === null) {
      this.#pool = new CpuWorkerPool(this.workers, this.model, this.mode);
    }
    return this.#pool;
  }

  async #forwardRows(
    rows: number[][],
    temperature: number,
    hiddenLayer: number | undefined,
  ): Promise<RowResult[]> {
    const pool = this.#workerPool;
    return pool
      ? await pool.forward(rows, this.params.tree, temperature, hiddenLayer)
      : rows.map((ids) => rowForward(this.model, { ids, temperature, hiddenLayer }));
  }

  async #backwardRows(jobs: RowJob[]): Promise<RowResult[]> {
    const pool = this.#workerPool;
    return pool
      ? await pool.backward(jobs, this.params.tree)
      : jobs.map((job) => rowBackward(this.model, this.mode, job));
  }

  /** Scatters per-row results into the batch layout (zeros at padding). */
  #gather(
    results: readonly RowResult[],
    lengths: readonly number[],
    seqLen: number,
  ): PolicyOutputs {
    const B = lengths.length;
    const H = this.model.config.hiddenSize;
    const logprobs = new Float64Array(B * (seqLen - 1));
    const entropy = new Float64Array(B * (seqLen - 1));
    const lastHidden = new Float64Array(B * seqLen * H);
    results.forEach((r, b) => {
      logprobs.set(r.logprobs, b * (seqLen - 1));
      entropy.set(r.entropy, b * (seqLen - 1));
      lastHidden.set(r.lastHidden, b * seqLen * H);
    });
    return { logprobs, lastHidden, entropy, batch: B, seqLen };
  }

  async forward(input: ForwardInput, options: ForwardOptions = {}): Promise<PolicyOutputs> {
    const temperature = checkTemperature(options.temperature, "run the forward");
    const l = options.hiddenLayer;
    checkGpuHiddenLayer(l, this.model.config.numHiddenLayers, "run the forward");
    const lengths = rowLengths(input);
    let out: PolicyOutputs;
    if (lengths === null) {
      const t = this.model.trace(input);
      const state = l === undefined ? t.hidden[t.hidden.length - 1] : t.layers[l].hOut;
      out = this.#batchOutputs(t.batch, t.logits, state, temperature);
    } else {
      const rows = input.inputIds.map((ids, b) => ids.slice(0, lengths[b]));
      out = this.#gather(
        await this.#forwardRows(rows, temperature, l),
        lengths,
        input.inputIds[0].length,
      );
    }
    return options.hiddenRows === undefined ? out : {
      ...out,
      lastHidden: pickRows(out.lastHidden!, options.hiddenRows, this.model.config.hiddenSize),
    };
  }

  #batchOutputs(
    batch: { batch: number; seqLen: number; targets: Int32Array },
    logits: Float64Array,
    lastHidden: Float64Array,
    temperature: number,
  ): PolicyOutputs {
    const { batch: B, seqLen: T, targets } = batch;
    const all = logprobRef(
      temperedLogits(logits, temperature),
      targets,
      this.model.config.vocabSize,
    );
    const logprobs = new Float64Array(B * (T - 1));
    const entropy = new Float64Array(B * (T - 1));
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        const i = b * T + t;
        logprobs[b * (T - 1) + t] = all.logprobs[i];
        entropy[b * (T - 1) + t] = targets[i] >= 0 ? all.entropy[i] : 0;
      }
    }
    return { logprobs, lastHidden, entropy, batch: B, seqLen: T };
  }

  async lossAndGrads(
    input: ForwardInput,
    loss: LossTerm<PolicyOutputs>,
    options: LossAndGradsOptions = {},
  ): Promise<LossAndGradsResult> {
    checkHiddenLayer(options.hiddenLayer, this.model.config.numHiddenLayers);
    const temperature = checkTemperature(options.temperature, "compute gradients");
    const lengths = rowLengths(input);
    if (lengths === null) return this.#lossAndGradsBatched(input, loss, options, temperature);
    const B = lengths.length;
    const T = input.inputIds[0].length;
    const H = this.model.config.hiddenSize;
    const rows = input.inputIds.map((ids, b) => ids.slice(0, lengths[b]));
    const { dropoutSeed, hiddenLayer } = options;
    const balanceCoef = this.#balanceCoef(options);
    // The non-linear term's cotangent comes from the same forward (same dropout masks, same hidden
    // layer) as the backward it feeds; with a balance term the forward also gives every row's
    // routing statistics, whose sum (the batch's) each row's backward takes.
    const first = options.linear && balanceCoef === 0 ? undefined : await this.#backwardRows(
      rows.map((ids) => ({ ids, dropoutSeed, hiddenLayer, temperature })),
    );
    const grad = first === undefined || options.linear
      ? loss({
        logprobs: new Float64Array(B * (T - 1)),
        lastHidden: new Float64Array(B * T * H),
        batch: B,
        seqLen: T,
      }).grad
      : loss(this.#gather(first, lengths, T)).grad;
    const balanceStats = balanceCoef === 0 ? undefined : sumBalanceStats(first!);
    if (!grad.dLogprobs && !grad.dLastHidden) {
      throw new TypeError(
        "Cannot compute gradients: the loss term returned no cotangent (grad.dLogprobs or " +
          "grad.dLastHidden)",
      );
    }
    if (grad.dLogprobs && grad.dLogprobs.length !== B * (T - 1)) {
      throw new RangeError(
        `Cannot compute gradients: grad.dLogprobs must have batch·(seqLen−1) = ${B * (T - 1)} ` +
          `values: current length is ${grad.dLogprobs.length}`,
      );
    }
    if (grad.dLastHidden && grad.dLastHidden.length !== B * T * H) {
      throw new RangeError(
        `Cannot compute gradients: grad.dLastHidden must have batch·seqLen·hidden = ` +
          `${B * T * H} values: current length is ${grad.dLastHidden.length}`,
      );
    }
    const jobs: RowJob[] = rows.map((ids, b) => ({
      ids,
      dLogprobs: grad.dLogprobs?.slice(b * (T - 1), b * (T - 1) + ids.length - 1),
      dLastHidden: grad.dLastHidden?.slice(b * T * H, (b * T + ids.length) * H),
      dropoutSeed,
      hiddenLayer,
      temperature,
      ...(balanceStats ? { balanceStats, balanceCoef } : {}),
    }));
    const results = await this.#backwardRows(jobs);
    const out = withBalanceMetric(
      loss(this.#gather(results, lengths, T)),
      balanceStats && balanceLoss(balanceStats),
    );
    this.#checkLinear(options, out, grad);
    // The batch gradient: the rows' gradients summed in row order (float64), rounded once.
    const grads: ParamTree = {};
    for (const [name, value] of Object.entries(this.params.tree)) {
      const sum = new Float64Array(value.length);
      for (const r of results) {
        const g = r.grads?.[name];
        if (g !== undefined) { for (let i = 0; i < sum.length; i++) sum[i] += g[i]; }
      }
      grads[name] = Float32Array.from(sum);
    }
    return { loss: out, grads };
  }

  /** The balance coefficient times the call's weight (0 without a HILO balance term). */
  #balanceCoef(options: LossAndGradsOptions): number {
    const coef = this.model.adapters?.hilo?.balanceCoef ?? 0;
    return coef * checkBalanceWeight(options.balanceWeight);
  }

  objectiveAndGrads(
    input: ForwardInput,
    request: ObjectiveRequest,
    options: Omit<LossAndGradsOptions, "linear" | "temperature"> = {},
  ): Promise<LossAndGradsResult> {
    return this.lossAndGrads(input, objectiveTerm(request), {
      ...options,
      linear: false,
      temperature: request.temperature,
    });
  }

  #checkLinear(options: LossAndGradsOptions, out: LossOutput, grad: LossOutput["grad"]): void {
    if (
      options.linear &&
      (!sameArray(out.grad.dLogprobs, grad.dLogprobs) ||
        !sameArray(out.grad.dLastHidden, grad.dLastHidden))
    ) {
      throw new TypeError(
        "Cannot compute gradients: the loss term was declared linear, but its gradient " +
          "changed with the model's outputs: call lossAndGrads without `linear`",
      );
    }
  }

  /** Left-padded or otherwise masked batches: one batched pass in this thread. */
  #lossAndGradsBatched(
    input: ForwardInput,
    loss: LossTerm<PolicyOutputs>,
    options: LossAndGradsOptions,
    temperature: number,
  ): LossAndGradsResult {
    const rows = input.inputIds.length;
    const seqLen = rows > 0 ? input.inputIds[0].length : 0;
    let grad;
    if (options.linear) {
      const hidden = this.model.config.hiddenSize;
      grad = loss({
        logprobs: new Float64Array(rows * Math.max(0, seqLen - 1)),
        lastHidden: new Float64Array(rows * seqLen * hidden),
        batch: rows,
        seqLen,
      }).grad;
    } else {
      const t = this.model.trace(input, { dropoutSeed: options.dropoutSeed });
      const l = options.hiddenLayer;
      const state = l === undefined ? t.hidden[t.hidden.length - 1] : t.layers[l].hOut;
      grad = loss(this.#batchOutputs(t.batch, t.logits, state, temperature)).grad;
    }
    if (!grad.dLogprobs && !grad.dLastHidden) {
      throw new TypeError(
        "Cannot compute gradients: the loss term returned no cotangent (grad.dLogprobs or " +
          "grad.dLastHidden)",
      );
    }
    const balanceCoef = this.#balanceCoef(options);
    const r = cpuBackward(this.model, input, {
      mode: this.mode,
      dLogprobs: grad.dLogprobs,
      dLastHidden: grad.dLastHidden,
      dropoutSeed: options.dropoutSeed,
      hiddenLayer: options.hiddenLayer,
      temperature,
      balanceCoef,
    });
    const out = withBalanceMetric(
      loss({
        logprobs: r.logprobs,
        lastHidden: r.lastHidden,
        entropy: r.entropy,
        batch: rows,
        seqLen,
      }),
      balanceCoef === 0 ? undefined : r.balanceLoss,
    );
    this.#checkLinear(options, out, grad);
    const grads: ParamTree = {};
    for (const [name, value] of Object.entries(this.params.tree)) {
      const g = r.grads.get(name);
      grads[name] = g === undefined ? new Float32Array(value.length) : Float32Array.from(g);
    }
    return { loss: out, grads };
  }

  async generate(options: GenerateOptions): Promise<GenerateResult> {
    const pool = this.#workerPool;
    if (pool && options.prompts.length > 1) {
      return await pool.generate(options, this.params.tree);
    }
    return await generate(this.model, options);
  }

  setParams(tree: ParamTree): void {
    assignParams(this.params.tree, tree);
  }

  releaseWorkspaces(): void {
    // The float64 CPU path allocates per call; nothing is kept between calls.
  }

  dispose(): void {
    this.#pool?.dispose();
    this.#pool = null;
  }
}

/**
 * A view of a train backend whose policy is `softmax(logits / temperature)`: `forward`,
 * `lossAndGrads`, `objectiveAndGrads` and `accumulateObjective` (when the backend has it) use
 * `temperature` unless the call sets its own; everything else (parameters, generation, disposal)
 * is the backend's. RL at `rl.temperature` trains through such a view, so that the recomputed
 * old log-probs, the training forward's log-probs and their gradient all belong to the policy
 * the rollouts were sampled from. At temperature 1 the backend itself is returned.
 *
 * @param backend The backend.
 * @param temperature The policy's temperature, a finite number ≥ 1e-6.
 * @returns The view (or `backend` at temperature 1).
 * @throws {RangeError} When `temperature` is not a finite number ≥ 1e-6.
 *
 * @example The log-probs of the policy sampled at temperature 0.7
 * ```ts
 * import { createTrainBackend, withTemperature } from "./backend.ts";
 * import { loadModel } from "../model/load_model.ts";
 * import { ok } from "node:assert/strict";
 *
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const input = { inputIds: [[1, 2, 3]] };
 * const raw = await backend.forward(input);
 * const tempered = await withTemperature(backend, 0.7).forward(input);
 * ok(raw.logprobs[0] !== tempered.logprobs[0]);
 * ```
 */
export function withTemperature<B extends TrainBackend>(
  backend: B,
  temperature: number,
): TrainBackend & (B extends AccumulatingBackend ? AccumulatingBackend : unknown);
export function withTemperature(
  backend: TrainBackend & Partial<AccumulatingBackend>,
  temperature: number,
): TrainBackend & Partial<AccumulatingBackend> {
  checkTemperature(temperature, "make a tempered view of the train backend");
  if (temperature === 1) return backend;
  const view: TrainBackend & Partial<AccumulatingBackend> = {
    kind: backend.kind,
    mode: backend.mode,
    model: backend.model,
    params: backend.params,
    forward: (input, options = {}) =>
      backend.forward(input, { ...options, temperature: options.temperature ?? temperature }),
    lossAndGrads: (input, loss, options = {}) =>
      backend.lossAndGrads(input, loss, {
        ...options,
        temperature: options.temperature ?? temperature,
      }),
    objectiveAndGrads: (input, request, options) =>
      backend.objectiveAndGrads(input, {
        ...request,
        temperature: request.temperature ?? temperature,
      }, options),
    generate: (options) => backend.generate(options),
    setParams: (tree) => backend.setParams(tree),
    releaseWorkspaces: () => backend.releaseWorkspaces?.(),
    dispose: () => backend.dispose(),
  };
  const accumulate = backend.accumulateObjective;
  if (typeof accumulate === "function") {
    view.accumulateObjective = (input, request, options) =>
      accumulate.call(backend, input, {
        ...request,
        temperature: request.temperature ?? temperature,
      }, options);
  }
  return view;
}

/**
 * Wraps a model for training. A CPU model (`CpuQwen3`) trains with the exact float64 backward,
 * sequence by sequence (optionally on worker threads). A WebGPU model trains with
 * `WebGpuQwen3.backward` (float32; no LoRA dropout), the optimizer on the host, the new values
 * uploaded after each step.
 *
 * @param model The model, with its LoRA adapters set for `"adapters"` mode.
 * @param options The mode.
 * @returns The backend.
 * @throws {TypeError} When the mode does not fit the model's adapters, the model has no backward,
 *   or a WebGPU model comes without `params`.
 * @throws {RangeError} When `workers` is not a positive integer.
 *
 * @example Full fine-tuning exposes every weight
 * ```ts
 * import { createTrainBackend } from "./backend.ts";
 * import { loadModel } from "../model/load_model.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * strictEqual(backend.params.tree["model.norm.weight"].length, 64);
 * ```
 */
export function createTrainBackend(
  model: Qwen3Model,
  options: CreateTrainBackendOptions,
): TrainBackend {
  const { mode } = options;
  if (mode !== "full" && mode !== "adapters") {
    throw new TypeError(
      `Cannot create a train backend: option "mode" must be "full" or "adapters": current value ` +
        `is ${JSON.stringify(mode)}`,
    );
  }
  const workers = options.workers ?? 1;
  if (!Number.isSafeInteger(workers) || workers < 1) {
    throw new RangeError(
      `Cannot create a train backend: option "workers" must be a positive integer: current ` +
        `value is ${workers}`,
    );
  }
  if (model instanceof CpuQwen3) return new CpuTrainBackend(model, mode, workers);
  if (canTrainOnGpu(model)) {
    if (options.params === undefined) {
      throw new TypeError(
        `Cannot create a train backend for a WebGPU model: option "params" (host copies of the ` +
          `trainable parameters) is required`,
      );
    }
    return new WebGpuTrainBackend(model, mode, options.params, {
      keepActivations: options.keepActivations,
    });
  }
  throw new TypeError(
    `Cannot create a train backend for a "${model.backend}" model: it has no backward pass ` +
      `(WebGpuQwen3.backward): set "backend" to "cpu"`,
  );
}
