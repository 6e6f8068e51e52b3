// Private: the trainer's WebGPU backend over `WebGpuQwen3.backward`. The optimizer runs on the
// host (the same pure pieces as on the CPU); after each update the new values are written into
// the model's parameter buffers. Float32 throughout, so runs match the CPU backend only to
// float32 rounding, not bit for bit.
import type { GenerateOptions, GenerateResult } from "../model/generate.ts";
import { generate } from "../model/generate.ts";
import type { ForwardInput } from "../model/forward_input.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { checkGpuHiddenLayer } from "../model/qwen3_webgpu_backward.ts";
import type {
  AccumulatingBackend,
  ForwardOptions,
  LossAndGradsOptions,
  LossAndGradsResult,
  PolicyOutputs,
  TrainBackend,
  TrainMode,
} from "./backend.ts";
import { assignParams, type NamedParams } from "./params.ts";
import type { LossGrads, LossOutput, LossTerm, ParamTree } from "./types.ts";
import { readback } from "../gpu/readback.ts";
import { sameArray } from "../internal/same_array.ts";
import { type ObjectiveRequest, objectiveTerm } from "./losses/objective_request.ts";
import { GpuObjective, runsOnGpu } from "./_webgpu_objective.ts";
import { withBalanceMetric } from "./_balance.ts";

/** Whether a model has the GPU training API this backend drives. */
export function canTrainOnGpu(model: unknown): model is WebGpuQwen3 {
  const m = model as Partial<WebGpuQwen3> | null;
  return m !== null && typeof m === "object" && m.backend === "webgpu" &&
    typeof m.backward === "function" && typeof m.gradients === "function";
}

export class WebGpuTrainBackend implements TrainBackend, AccumulatingBackend {
  readonly kind = "webgpu" as const;
  readonly mode: TrainMode;
  readonly model: WebGpuQwen3;
  readonly params: NamedParams;
  /** Every training step keeps the layers' activations (`TrainStepOptions.keepActivations`). */
  readonly keepActivations: boolean;
  #objective?: GpuObjective;

  constructor(
    model: WebGpuQwen3,
    mode: TrainMode,
    params: NamedParams,
    options: { keepActivations?: boolean } = {},
  ) {
    this.model = model;
    this.mode = mode;
    this.params = params;
    this.keepActivations = options.keepActivations ?? false;
    const names = new Set(model.gradients(mode).map((p) => p.name));
    for (const name of Object.keys(params.tree)) {
      if (!names.has(name)) {
        throw new TypeError(
          `Cannot create the WebGPU train backend: the host parameter "${name}" is not a ` +
            `trainable tensor of the model in mode "${mode}"`,
        );
      }
    }
  }

  forward(input: ForwardInput, options: ForwardOptions = {}): Promise<PolicyOutputs> {
    return this.#outputs(input, options.hiddenLayer, options.temperature, options.hiddenRows);
  }

  /**
   * Log-probs of `softmax(logits / temperature)` and the hidden state of `hiddenLayer` (default
   * the final-norm output): every token's, or only the `hiddenRows` tokens' (read back alone).
   */
  async #outputs(
    input: ForwardInput,
    hiddenLayer?: number,
    temperature?: number,
    hiddenRows?: readonly number[],
  ): Promise<PolicyOutputs> {
    const out = await this.model.tokenLogprobs({ ...input, outputHiddenStates: true }, {
      hiddenLayer,
      temperature,
      ...(hiddenRows === undefined ? {} : { hiddenRows }),
    });
    return {
      logprobs: Float64Array.from(out.logprobs),
      entropy: Float64Array.from(out.entropy),
      lastHidden: out.lastHidden ? Float64Array.from(out.lastHidden) : undefined,
      batch: out.batch,
      seqLen: out.seqLen,
    };
  }

  #checkOptions(options: LossAndGradsOptions): void {
    if (options.dropoutSeed !== undefined && (this.model.adapters?.config?.loraDropout ?? 0) > 0) {
      throw new RangeError(
        `Cannot train on WebGPU: LoRA dropout is not applied by the GPU backward: set key ` +
          `"adapters.dropout" to 0 or train on the CPU`,
      );
    }
    checkGpuHiddenLayer(
      options.hiddenLayer,
      this.model.config.numHiddenLayers,
      "compute gradients",
    );
  }

  /** The gradients of the host parameters from the step's (joined) gradient buffers. */
  #hostGrads(grads: Map<string, Float32Array>): ParamTree {
    const out: ParamTree = {};
    for (const [name, value] of Object.entries(this.params.tree)) {
      const g = grads.get(name);
      out[name] = g === undefined ? new Float32Array(value.length) : Float32Array.from(g);
    }
    return out;
  }

  async objectiveAndGrads(
    input: ForwardInput,
    request: ObjectiveRequest,
    options: Omit<LossAndGradsOptions, "linear" | "temperature"> = {},
  ): Promise<LossAndGradsResult> {
    if (!runsOnGpu(request)) {
      return await this.lossAndGrads(input, objectiveTerm(request), {
        ...options,
        linear: false,
        temperature: request.temperature,
      });
    }
    this.#checkOptions(options);
    const rows = input.inputIds.length;
    const seqLen = input.inputIds[0]?.length ?? 0;
    this.#objective ??= new GpuObjective(this.model.ctx);
    const step = this.#objective.prepare(request, {
      batch: rows,
      seqLen,
      hiddenSize: this.model.config.hiddenSize,
    });
    const { grads, reads, balanceLoss } = await this.model.runTrainStep(input, {
      mode: this.mode,
      hiddenLayer: options.hiddenLayer,
      keepActivations: this.keepActivations,
      temperature: request.temperature,
      balanceWeight: options.balanceWeight,
      cotangents: step.cotangents,
      lossHook: step.hook,
    }, ({ acts }) => step.reads(acts));
    return {
      loss: withBalanceMetric(step.finish(reads), balanceLoss),
      grads: this.#hostGrads(grads),
    };
  }

  /**
   * As {@linkcode objectiveAndGrads} for `"clipped_pg"` / `"hidden_align"` objectives, but the
   * gradients stay in the model's gradient buffers (added to them with `accumulate`, else
   * replacing them) for a GPU-resident optimizer: only the loss scalars come back.
   */
  async accumulateObjective(
    input: ForwardInput,
    request: ObjectiveRequest,
    options: Omit<LossAndGradsOptions, "linear" | "temperature"> & { accumulate?: boolean } = {},
  ): Promise<LossOutput> {
    if (!runsOnGpu(request)) {
      throw new TypeError(
        `Cannot accumulate the objective on the GPU: its terms must be "clipped_pg" and/or ` +
          `"hidden_align": current terms are ${JSON.stringify(request.terms.map((t) => t.name))}`,
      );
    }
    this.#checkOptions(options);
    this.#objective ??= new GpuObjective(this.model.ctx);
    const step = this.#objective.prepare(request, {
      batch: input.inputIds.length,
      seqLen: input.inputIds[0]?.length ?? 0,
      hiddenSize: this.model.config.hiddenSize,
    });
    const { reads, balanceLoss } = await this.model.runTrainStep(input, {
      mode: this.mode,
      accumulate: options.accumulate ?? false,
      hiddenLayer: options.hiddenLayer,
      keepActivations: this.keepActivations,
      temperature: request.temperature,
      balanceWeight: options.balanceWeight,
      cotangents: step.cotangents,
      lossHook: step.hook,
      readGradients: false,
    }, ({ acts }) => step.reads(acts));
    return withBalanceMetric(step.finish(reads), balanceLoss);
  }

  /**
   * Reads the trainable parameters back from the GPU into `params.tree` (after a GPU-resident
   * optimizer changed them there, e.g. before a checkpoint): one readback.
   */
  async syncParams(): Promise<void> {
    const list = this.model.gradients(this.mode).filter((p) => p.name in this.params.tree);
    const bytes = await readback(
      this.model.ctx,
      list.map((p) => ({ buffer: p.param, offset: p.paramOffset, size: 4 * p.n })),
      undefined,
      { what: "syncParams: the trained parameters, for a checkpoint or rollouts" },
    );
    list.forEach((p, i) => this.params.tree[p.name].set(new Float32Array(bytes[i]), p.offset));
  }

  async lossAndGrads(
    input: ForwardInput,
    loss: LossTerm<PolicyOutputs>,
    options: LossAndGradsOptions = {},
  ): Promise<LossAndGradsResult> {
    this.#checkOptions(options);
    const { hiddenLayer, temperature } = options;
    const rows = input.inputIds.length;
    const seqLen = input.inputIds[0]?.length ?? 0;
    let grad: LossGrads;
    // The entropies of the first forward (the same parameters as the backward's).
    let entropy: Float64Array | undefined;
    if (options.linear) {
      grad = loss({
        logprobs: new Float64Array(rows * Math.max(0, seqLen - 1)),
        lastHidden: new Float64Array(rows * seqLen * this.model.config.hiddenSize),
        batch: rows,
        seqLen,
      }).grad;
    } else {
      const first = await this.#outputs(input, hiddenLayer, temperature);
      entropy = first.entropy;
      grad = loss(first).grad;
    }
    const r = await this.model.backward(input, {
      mode: this.mode,
      dLogprobs: grad.dLogprobs,
      dLastHidden: grad.dLastHidden,
      hiddenLayer,
      keepActivations: this.keepActivations,
      temperature,
      balanceWeight: options.balanceWeight,
    });
    const out = withBalanceMetric(
      loss({
        logprobs: Float64Array.from(r.logprobs),
        lastHidden: Float64Array.from(r.lastHidden),
        entropy,
        batch: rows,
        seqLen,
      }),
      r.balanceLoss,
    );
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
    return { loss: out, grads: this.#hostGrads(r.grads) };
  }

  generate(options: GenerateOptions): Promise<GenerateResult> {
    return generate(this.model, options);
  }

  setParams(tree: ParamTree): void {
    const busy = this.model.busyWith;
    if (busy !== null) {
      throw new Error(
        `Cannot set the parameters: a call to ${busy} on this model is still running; await it ` +
          `first`,
      );
    }
    assignParams(this.params.tree, tree);
    const queue = this.model.ctx.device.queue;
    for (const p of this.model.gradients(this.mode)) {
      const host = this.params.tree[p.name];
      if (host === undefined) continue;
      queue.writeBuffer(p.param, p.paramOffset, host as Float32Array<ArrayBuffer>, p.offset, p.n);
    }
  }

  /**
   * Frees the model's activation workspaces (generation's, the forward's, the training step's:
   * `WebGpuQwen3.releaseWorkspaces`); weights, adapters, gradients, optimizer moments and the
   * objective's small buffers stay.
   */
  releaseWorkspaces(): void {
    this.model.releaseWorkspaces();
  }

  dispose(): void {
    this.#objective?.dispose();
    this.#objective = undefined;
  }
}
