/**
 * The WebGPU backend: the Qwen3 forward pass as an ordered list of WGSL kernel launches over
 * preallocated activations, recorded into command encoders and read back once; LoRA adapters
 * on any projection ({@linkcode WebGpuQwen3.setAdapters}); and the training step (forward, a
 * caller's loss kernels, backward with per-layer recomputation, or from every layer's kept
 * activations with `keepActivations`) of `qwen3_webgpu_backward.ts`. Each layer's q|k|v and
 * gate|up base weights are stored as one buffer per group where they fit, the projections views
 * into it (`WebGpuQwen3Options.fuseProjections`), so that decoding records one matvec per group.
 *
 * The long recordings (forward, token log-probs, a training step run by `backward` or
 * `runTrainStep`, generation's prefill) are submitted every `WebGpuQwen3Options.submitEveryLayers`
 * decoder layers (default: after each on a hardware adapter, never on a software one) and go on in
 * a new encoder: at real sizes one submission would be seconds of GPU work, which an OS GPU
 * watchdog (Windows TDR, 2 s; macOS) may answer with a device reset. Readbacks stay one per call;
 * results are bit-identical (model/submit_splitter.ts).
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import {
  fusedMatrixReason,
  type GpuMatrix,
  uploadFusedMatrix,
  uploadMatrix,
} from "../gpu/matrix.ts";
import { readback, type ReadbackRange } from "../gpu/readback.ts";
import { checkLoraFits, type Lora } from "./adapter_types.ts";
import { encodeEmbedding } from "../kernels/embedding/embedding.ts";
import { encodeLogprob } from "../kernels/logprob/logprob.ts";
import { encodeLmHeadBlock, lmHeadBlockRows } from "./lm_head_webgpu.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import { ropeTable } from "../kernels/rope/rope_ref.ts";
import type { Qwen3Config } from "./config.ts";
import {
  allocateLayerActivations,
  captureHidden,
  encodeDecoderLayer,
  encodeLinear,
  encodeProjection,
  type GpuLayerWeights,
  type GpuModelWeights,
  type LayerActivationBuffers,
  type LayerHooks,
  type ProjectionArgs,
} from "./decoder_layer_webgpu.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import { GpuLora } from "./lora_webgpu.ts";
import type { ForwardOutput, Qwen3Model, TokenLogprobsOutput } from "./model.ts";
import { dropLastPosition } from "./qwen3_cpu.ts";
import { checkTemperature } from "./backward_args.ts";
import {
  checkGpuHiddenLayer,
  type GpuBackwardOptions,
  type GpuBackwardResult,
  type GpuParameter,
  type TrainStepBuffers,
  type TrainStepOptions,
  WebGpuQwen3Backward,
} from "./qwen3_webgpu_backward.ts";
import {
  FUSED_FIELD,
  FUSED_GROUPS,
  type FusedGroup,
  LAYER_TENSORS,
  layerTensorName,
} from "./tensor_table.ts";
import type { Qwen3Weights } from "./weights.ts";
import type { KvDtype } from "./kv_cache.ts";
import {
  checkSubmitEveryLayers,
  defaultSubmitEveryLayers,
  SubmitSplitter,
} from "./submit_splitter.ts";

export type {
  GpuBackwardMode,
  GpuBackwardOptions,
  GpuBackwardResult,
  GpuParameter,
  LossHook,
  TrainActivations,
  TrainCotangentFlags,
  TrainCotangents,
  TrainStepBuffers,
  TrainStepOptions,
} from "./qwen3_webgpu_backward.ts";

/** Activation buffers for a batch of `tokens` tokens (reused while shapes fit). */
interface Workspace extends Omit<LayerActivationBuffers, "x1" | "x2" | "loraScratch"> {
  tokens: number;
  /** Floats per token of `loraU` (the adapters' largest rank; 0 without adapters). */
  rank: number;
  loraU?: GPUBuffer;
  ids: GPUBuffer;
  mask: GPUBuffer;
  positions: GPUBuffer;
  targets: GPUBuffer;
  h: GPUBuffer;
  /** Both norms' output (`x1` and `x2` of the layer's activations). */
  x: GPUBuffer;
  logits?: GPUBuffer;
  /** Tokens of `headLogits` (0 without it). */
  headRows: number;
  /** `[headRows, vocab]` logits of one LM-head block (for `tokenLogprobs`). */
  headLogits?: GPUBuffer;
  logprobs: GPUBuffer;
  lse: GPUBuffer;
  entropy: GPUBuffer;
  /** `[layers + 1, tokens, hidden]` snapshots, made when hidden states are asked for. */
  hidden?: GPUBuffer;
  /** `[tokens, hidden]`: one decoder layer's output, when `tokenLogprobs` asks for it. */
  layerHidden?: GPUBuffer;
}

/** What {@linkcode WebGpuQwen3} records and keeps in a forward. */
interface ForwardWants {
  /** All `[tokens, vocab]` logits (for `forward`). */
  logits: boolean;
  hidden: boolean;
  /** Log-probs, lse and entropies through the LM head in blocks of this many tokens. */
  headRows?: number;
  /** Copy this decoder layer's output into `Workspace.layerHidden`. */
  layerHidden?: number;
  /** Scale of the LM head's block logits (`1 / temperature`); default 1. */
  headAlpha?: number;
}

/** Options of {@linkcode WebGpuQwen3.tokenLogprobs}. */
export interface TokenLogprobsOptions {
  /**
   * With `outputHiddenStates`, return the output of this decoder layer as `lastHidden` instead
   * of the final-norm output (HF's `hidden_states[hiddenLayer + 1]`, but for the last layer:
   * its output before the final norm); default undefined (the final-norm output,
   * `hidden_states[-1]`).
   */
  hiddenLayer?: number;
  /**
   * With `outputHiddenStates`, read back only these token rows of that hidden state (flat
   * indices `b · seqLen + t`, in this order): `lastHidden` is then `[hiddenRows.length, hidden]`
   * (e.g. RL's anchor rows, one per sequence, instead of every token's). Default every row.
   */
  hiddenRows?: readonly number[];
  /**
   * Tokens per LM-head block: a multiple of 64 (the storage offset alignment over 4 bytes) or at
   * least the call's tokens; default all tokens when their logits fit one storage binding, else
   * the largest multiple of 64 that fits (only one block of logits exists at a time).
   */
  headChunkTokens?: number;
  /**
   * The log-probs and entropies are those of `softmax(logits / temperature)` (the policy that
   * sampling at this temperature draws from; the LM head's matmul scales its output by
   * `1 / temperature`); a finite number ≥ 1e-6, default 1 (the raw model).
   */
  temperature?: number;
}

/**
 * The base weights stored as one buffer each where they fit (`WebGpuQwen3Options.fuseProjections`):
 * members in row order, and the layer field of the whole.
 */
const FUSED_BASE = (Object.keys(FUSED_GROUPS) as FusedGroup[]).map((name) => ({
  name,
  targets: FUSED_GROUPS[name],
  field: FUSED_FIELD[name],
}));

/** Options of the {@linkcode WebGpuQwen3} constructor. */
export interface WebGpuQwen3Options {
  /** Largest row block of a weight matrix in bytes; default the device's binding limit. */
  maxChunkBytes?: number;
  /**
   * Storage of the embedding, projection and LM-head matrices: `"f32"` (default) or `"f16"`
   * (half the memory, rounded to nearest; every product still accumulates in f32; needs the
   * device feature "shader-f16"). f16 weights are frozen: train adapters (LoRA, HILO), not
   * `"full"`. The norms' gains stay f32.
   */
  weightDtype?: "f32" | "f16";
  /**
   * Storage of generation's KV cache (`generateWebGpu`): `"f32"` (default) or `"f16"` (half the
   * memory; keys and values rounded to f16, packed two per 32-bit word, so any adapter: no
   * "shader-f16" needed; attention still computes in f32).
   */
  kvDtype?: KvDtype;
  /**
   * Store each layer's q_proj, k_proj and v_proj as one `[qDim + 2·kvDim, hidden]` buffer, and
   * gate_proj and up_proj as one `[2·intermediate, hidden]` buffer, the projections' matrices
   * views into them (no extra bytes), so that a decode step records one matvec for q|k|v and one
   * for gate|up (the layer's `qkvProj` / `gateUpProj`; unmerged plain LoRA members add their
   * branches at their columns, a HILO-routed member keeps its group per projection); every other
   * pass reads the views. A group is stored apart where it does not fit (`fusedMatrixReason` of
   * gpu/matrix.ts: the whole above one binding or `maxChunkBytes`, or a member's first byte not a
   * multiple of the storage offset alignment: with the usual 256 bytes, every hidden size that is
   * a multiple of 64 fits, at f32 and f16). Default true.
   */
  fuseProjections?: boolean;
  /**
   * Decoder layers recorded per `queue.submit` in `forward`, `tokenLogprobs`, a training step
   * run by `backward`/`runTrainStep`, and generation's prefill (not decode, which submits per
   * step on a hardware adapter anyway): the recording is submitted after every
   * `submitEveryLayers` layers and continues in a new encoder, so that no submission holds
   * seconds of GPU work (an OS GPU watchdog, e.g. Windows' 2 s TDR, may reset a device that
   * cannot preempt one; see model/submit_splitter.ts). A row block of the LM head (those of
   * `tokenLogprobs` and of training steps) counts as a layer. Readbacks are not added; results
   * are bit-identical. 0: one submission per recording. Default 1 on a hardware adapter, 0 on a
   * software one (`isFallbackAdapter`). Settable later as
   * {@linkcode WebGpuQwen3.submitEveryLayers}.
   */
  submitEveryLayers?: number;
}

/**
 * A Qwen3 model whose weights live on a WebGPU device.
 *
 * @example Run the fixture model on the GPU
 * ```ts ignore
 * import { createGpu, GpuContext } from "../gpu/mod.ts";
 * import { readQwen3Config } from "./config.ts";
 * import { loadQwen3Weights } from "./weights.ts";
 * import { WebGpuQwen3 } from "./qwen3_webgpu.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const config = await readQwen3Config(dir);
 * const ctx = new GpuContext(await createGpu());
 * const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config));
 * const { logits } = await model.forward({ inputIds: [[1, 2, 3]] });
 * ```
 */
export class WebGpuQwen3 implements Qwen3Model, GpuModelWeights {
  /** The model config. */
  readonly config: Qwen3Config;
  /** Always `"webgpu"`. */
  readonly backend = "webgpu" as const;
  /** The GPU context running the kernels. */
  readonly ctx: GpuContext;
  /** Token embeddings `[vocab, hidden]`. */
  readonly embedTokens: GpuMatrix;
  /** LM head `[vocab, hidden]` (the embeddings when tied). */
  readonly lmHead: GpuMatrix;
  /** Final RMSNorm weight. */
  readonly norm: GPUBuffer;
  /** Per-layer weights. */
  readonly layers: readonly GpuLayerWeights[];
  /** RoPE (cos, sin) table `[maxPositionEmbeddings, headDim/2, 2]`. */
  readonly ropeTable: GPUBuffer;
  #ws?: Workspace;
  #lora: GpuLora | null = null;
  #backward?: WebGpuQwen3Backward;
  #busy: string | null = null;
  #external = new Set<() => void>();
  /** How the weight matrices are stored (`WebGpuQwen3Options.weightDtype`). */
  readonly weightDtype: "f32" | "f16";
  /** How generation's KV cache stores keys and values (`WebGpuQwen3Options.kvDtype`). */
  readonly kvDtype: KvDtype;
  #submitEvery: number;

  /**
   * Uploads the weights.
   *
   * @param ctx The GPU context.
   * @param config The model config.
   * @param weights The weights: float32, or with the matrices as f16 bits (`loadQwen3Weights`
   * with `matrixDtype: "f16"`, only for `weightDtype: "f16"`). Not kept: the model holds only
   * the GPU copies.
   * @param options `maxChunkBytes`: largest row block of a weight matrix (default: the device's
   * storage binding limit); matrices above it are split. `weightDtype`, `kvDtype`,
   * `fuseProjections`: storage.
   */
  constructor(
    ctx: GpuContext,
    config: Qwen3Config,
    weights: Qwen3Weights | Qwen3Weights<Uint16Array>,
    options: WebGpuQwen3Options = {},
  ) {
    this.ctx = ctx;
    this.config = config;
    const c = config;
    const dtype = options.weightDtype ?? "f32";
    if (dtype !== "f32" && dtype !== "f16") {
      throw new TypeError(
        `Cannot upload the model: option "weightDtype" must be "f32" or "f16": current value is ` +
          `${JSON.stringify(dtype)}`,
      );
    }
    if (dtype === "f16" && !ctx.gpu.features.has("shader-f16")) {
      throw new TypeError(
        `Cannot upload the model with f16 weights: the WebGPU device has no "shader-f16" ` +
          `feature (adapter "${ctx.gpu.description}"): use weightDtype "f32"`,
      );
    }
    this.weightDtype = dtype;
    const kvDtype = options.kvDtype ?? "f32";
    if (kvDtype !== "f32" && kvDtype !== "f16") {
      throw new TypeError(
        `Cannot upload the model: option "kvDtype" must be "f32" or "f16": current value is ` +
          `${JSON.stringify(kvDtype)}`,
      );
    }
    this.kvDtype = kvDtype;
    this.#submitEvery = checkSubmitEveryLayers(
      options.submitEveryLayers ?? defaultSubmitEveryLayers(ctx),
      "the model",
    );
    // What is uploaded so far, released if a later tensor fails (a value f16 cannot hold, a read
    // error of a lazily read checkpoint): a failed construction leaves nothing allocated.
    const made: GPUBuffer[] = [];
    const mat = (name: string, data: Float32Array | Uint16Array, rows: number, cols: number) => {
      const m = uploadMatrix(ctx, { name, data, rows, cols }, {
        maxChunkBytes: options.maxChunkBytes,
        dtype,
      });
      for (const chunk of m.chunks) made.push(chunk.buffer);
      return m;
    };
    const upload = (data: Float32Array, name: string) => {
      const buffer = ctx.upload(data, name);
      made.push(buffer);
      return buffer;
    };
    try {
      this.embedTokens = mat(
        "model.embed_tokens.weight",
        weights.embedTokens,
        c.vocabSize,
        c.hiddenSize,
      );
      this.lmHead = weights.lmHead === weights.embedTokens
        ? this.embedTokens
        : mat("lm_head.weight", weights.lmHead, c.vocabSize, c.hiddenSize);
      this.norm = upload(weights.norm, "model.norm.weight");
      // Every per-layer tensor of the table: projections as (possibly split) matrices, norms
      // whole; q|k|v and gate|up as one buffer each where they fit (`fuseProjections`).
      const fuse = options.fuseProjections ?? true;
      this.layers = weights.layers.map((w, l) => {
        const out: Record<string, GpuMatrix | GPUBuffer> = {};
        for (const spec of LAYER_TENSORS) {
          if (spec.field in out) continue; // a member of a group already uploaded
          const name = layerTensorName(l, spec);
          const [rows, cols] = spec.shape(c);
          // The first member of a group: the whole group, when it fits one buffer.
          const group = fuse ? FUSED_BASE.find((g) => g.targets[0] === spec.projection) : undefined;
          const members = (group?.targets ?? []).map((t) =>
            LAYER_TENSORS.find((s) => s.projection === t)!
          );
          const memberRows = members.map((s) => s.shape(c)[0]);
          const storage = { maxChunkBytes: options.maxChunkBytes, dtype };
          if (group && fusedMatrixReason(ctx, memberRows, cols, storage) === null) {
            const { whole, parts } = uploadFusedMatrix(
              ctx,
              `model.layers.${l}.${group.name} (fused)`,
              members.map((s, i) => ({
                name: layerTensorName(l, s),
                rows: memberRows[i],
                data: () => w[s.field],
              })),
              cols,
              { dtype },
            );
            made.push(whole.chunks[0].buffer);
            out[group.field] = whole;
            members.forEach((s, i) => out[s.field] = parts[i]);
            continue;
          }
          const data = w[spec.field];
          out[spec.field] = spec.projection
            ? mat(name, data, rows, cols)
            : upload(data as Float32Array, name);
        }
        return out as unknown as GpuLayerWeights;
      });
      this.ropeTable = upload(
        ropeTable(c.maxPositionEmbeddings, { d: c.headDim, theta: c.ropeTheta }),
        "rope_table",
      );
    } catch (error) {
      for (const buffer of made) ctx.release(buffer);
      throw error;
    }
  }

  /**
   * Marks the model busy with an operation that spans several submits (a generation, a training
   * step awaiting its readback) until the returned function is called. Overlapping ones would
   * share workspaces or see weights change half-way, so a second one is refused.
   *
   * @param what The operation, as errors name it ("generate", "run a training step").
   * @returns Call it when the operation ends (in a `finally`).
   * @throws {Error} If the model is busy with another operation.
   *
   * @example Around a multi-submit operation
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const done = model.acquire("generate");
   * try {
   *   // ... submits and readbacks ...
   * } finally {
   *   done();
   * }
   * ```
   */
  acquire(what: string): () => void {
    this.#checkIdle(what);
    this.#busy = what;
    return () => {
      this.#busy = null;
    };
  }

  /**
   * Decoder layers recorded per `queue.submit` in the long recordings (forward, token log-probs,
   * training steps run by `backward`/`runTrainStep`, generation's prefill); 0: one submission per
   * recording. See `WebGpuQwen3Options.submitEveryLayers`.
   *
   * @example Submit every 4 layers
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.submitEveryLayers = 4;
   * ```
   */
  get submitEveryLayers(): number {
    return this.#submitEvery;
  }

  /** @throws {RangeError} If the value is not an integer ≥ 0. */
  set submitEveryLayers(value: number) {
    this.#submitEvery = checkSubmitEveryLayers(value, "the model");
  }

  /** The operation the model is busy with ({@linkcode WebGpuQwen3.acquire}), or null. */
  get busyWith(): string | null {
    return this.#busy;
  }

  /**
   * Registers a workspace that another module keeps for this model (e.g. generation's KV cache
   * and scratch), so that {@linkcode WebGpuQwen3.releaseWorkspaces} and
   * {@linkcode WebGpuQwen3.dispose} free it too. Registering the same function again is a no-op.
   *
   * @param release Frees the workspace (called once per release; register again after reuse).
   *
   * @example A module's cache
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare function freeMine(): void;
   * model.registerWorkspace(freeMine);
   * ```
   */
  registerWorkspace(release: () => void): void {
    this.#external.add(release);
  }

  /** The adapter this model runs on. */
  get device(): string {
    return this.ctx.gpu.description;
  }

  /**
   * Runs the model over a batch: one readback (one submit, or one per
   * {@linkcode WebGpuQwen3.submitEveryLayers} layers and the readback's).
   *
   * @param input The batch.
   * @returns Logits and, when asked, hidden states.
   */
  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const batch = packBatch(input, this.config);
    const n = batch.batch * batch.seqLen;
    const checked = this.#checkedWorkspace(n, {
      logits: true,
      hidden: input.outputHiddenStates ?? false,
    }, "forward");
    // Awaited only when a new workspace was allocated: a reused one records at once, with the
    // adapters and parameters set when the call was made.
    const ws = checked instanceof Promise ? await checked : checked;
    const enc = this.#record(batch, ws, {
      logits: true,
      hidden: input.outputHiddenStates ?? false,
    });
    const { hiddenSize: hsz, vocabSize: v, numHiddenLayers: layers } = this.config;
    const ranges: ReadbackRange[] = [{ buffer: ws.logits!, offset: 0, size: n * v * 4 }];
    if (input.outputHiddenStates) {
      for (let l = 0; l <= layers; l++) {
        ranges.push({ buffer: ws.hidden!, offset: l * n * hsz * 4, size: n * hsz * 4 });
      }
    }
    const [logits, ...hidden] = await readback(this.ctx, ranges, enc, {
      what: `forward of ${batch.batch}×${batch.seqLen} tokens`,
    });
    return {
      logits: new Float32Array(logits),
      hiddenStates: input.outputHiddenStates ? hidden.map((b) => new Float32Array(b)) : undefined,
      batch: batch.batch,
      seqLen: batch.seqLen,
    };
  }

  /**
   * Log-probability of each next token; only the log-probs (and optionally the last hidden
   * state) are read back.
   *
   * @param input The batch.
   * @param options Which hidden state `lastHidden` is (with `input.outputHiddenStates`).
   * @returns `[batch, seqLen − 1]` log-probs.
   * @throws {RangeError} If `hiddenLayer` is not a layer index, or `hiddenRows` holds an index
   *   outside the call's tokens.
   */
  async tokenLogprobs(
    input: ForwardInput,
    options: TokenLogprobsOptions = {},
  ): Promise<TokenLogprobsOutput> {
    const { hiddenLayer } = options;
    checkGpuHiddenLayer(hiddenLayer, this.config.numHiddenLayers, "run the model");
    const temperature = checkTemperature(options.temperature, "compute token log-probs");
    const batch = packBatch(input, this.config);
    const n = batch.batch * batch.seqLen;
    const layerHidden = input.outputHiddenStates ? hiddenLayer : undefined;
    for (const r of options.hiddenRows ?? []) {
      if (!Number.isSafeInteger(r) || r < 0 || r >= n) {
        throw new RangeError(
          `Cannot compute token log-probs: option "hiddenRows" must hold token indices in ` +
            `[0, ${n}): current value has ${r}`,
        );
      }
    }
    const headRows = lmHeadBlockRows(this.ctx, this.config.vocabSize, n, {
      requested: options.headChunkTokens,
      action: "compute token log-probs",
    });
    const want = {
      logits: false,
      hidden: false,
      headRows,
      layerHidden,
      headAlpha: temperature === 1 ? undefined : 1 / temperature,
    };
    const checked = this.#checkedWorkspace(n, want, "tokenLogprobs");
    const ws = checked instanceof Promise ? await checked : checked; // as in forward
    const enc = this.#record(batch, ws, want);
    const ranges: ReadbackRange[] = [
      { buffer: ws.logprobs, offset: 0, size: n * 4 },
      { buffer: ws.entropy, offset: 0, size: n * 4 },
    ];
    const H = this.config.hiddenSize;
    const rows = options.hiddenRows;
    if (input.outputHiddenStates) {
      const last = layerHidden === undefined ? ws.x : ws.layerHidden!;
      if (rows === undefined) ranges.push({ buffer: last, offset: 0, size: n * H * 4 });
      for (const r of rows ?? []) {
        ranges.push({ buffer: last, offset: r * H * 4, size: H * 4 });
      }
    }
    const [lp, entropy, ...parts] = await readback(this.ctx, ranges, enc, {
      what: `tokenLogprobs of ${batch.batch}×${batch.seqLen} tokens`,
    });
    let last: Float32Array | undefined;
    if (input.outputHiddenStates && rows === undefined) last = new Float32Array(parts[0]);
    else if (input.outputHiddenStates) {
      last = new Float32Array(rows!.length * H);
      parts.forEach((part, i) => last!.set(new Float32Array(part), i * H));
    }
    const { batch: B, seqLen: T, targets } = batch;
    const ent = new Float32Array(entropy);
    for (let i = 0; i < n; i++) if (targets[i] < 0) ent[i] = 0;
    return {
      logprobs: dropLastPosition(new Float32Array(lp), B, T),
      entropy: dropLastPosition(ent, B, T),
      lastHidden: last,
      batch: batch.batch,
      seqLen: batch.seqLen,
    };
  }

  /** Frees every weight, adapter, gradient and activation buffer. */
  dispose(): void {
    this.#checkIdle("dispose the model");
    this.#releaseExternal();
    this.#freeWorkspace();
    this.#backward?.dispose();
    this.#backward = undefined;
    this.#lora?.dispose();
    this.#lora = null;
    const { ctx } = this;
    const buffers = new Set<GPUBuffer>();
    const mat = (m: GpuMatrix) => m.chunks.forEach((chunk) => buffers.add(chunk.buffer));
    mat(this.embedTokens);
    mat(this.lmHead);
    for (const l of this.layers) {
      for (const spec of LAYER_TENSORS) {
        if (spec.projection) mat(l[spec.field] as GpuMatrix);
        else buffers.add(l[spec.field] as GPUBuffer);
      }
      // Views share the fused buffers: each buffer is freed once.
      if (l.qkvProj) mat(l.qkvProj);
      if (l.gateUpProj) mat(l.gateUpProj);
    }
    for (const b of buffers) ctx.release(b);
    ctx.release(this.norm);
    ctx.release(this.ropeTable);
    ctx.releaseScratch();
    ctx.clearBindGroups();
  }

  /** The adapters every pass applies (on the GPU), or null. */
  get adapters(): GpuLora | null {
    return this.#lora;
  }

  /**
   * Uploads LoRA adapters that every later pass applies (`null` removes them and frees their
   * buffers). Each adapted projection computes `y = x·Wᵀ + Σ_e scale_e·(x·A_eᵀ)·B_eᵀ`. The
   * values are copied: train them on the GPU (the backward's gradients and a GPU optimizer on
   * `gradients()`), and get them back with {@linkcode WebGpuQwen3.readAdapters}.
   *
   * Refused while the model is busy ({@linkcode WebGpuQwen3.acquire}: a generation, a training
   * step run by `backward`/`runTrainStep`, a GPU optimizer's update): those record over several
   * awaits with the adapters they started with, whose buffers this frees. The uploaded adapters'
   * `write` ({@linkcode WebGpuQwen3.adapters}) is refused while the model is busy too.
   *
   * @param lora The adapters, or null.
   * @throws {RangeError} If the adapters do not fit this model (see `checkLoraFits`).
   * @throws {Error} If the model is busy with another operation (naming it).
   *
   * @example Apply the fixture's PEFT adapter
   * ```ts ignore
   * import { loadPeftAdapter } from "../adapters/peft_io.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.setAdapters(await loadPeftAdapter("tests/fixtures/qwen3-tiny/adapter", model.config));
   * ```
   */
  setAdapters(lora: Lora | null): void {
    this.#checkIdle("set the adapters");
    if (lora !== null) checkLoraFits(lora, this.config);
    this.#lora?.dispose();
    this.#lora = lora === null ? null : new GpuLora(this.ctx, lora, { busy: () => this.#busy });
  }

  /**
   * Reads the adapters' current values back (one readback), e.g. to save them with
   * `savePeftAdapter` after training.
   *
   * @returns The adapters with the uploaded config, layout, ranks and scales.
   * @throws {TypeError} If no adapters are set.
   *
   * @example Save the trained adapter
   * ```ts ignore
   * import { savePeftAdapter } from "../adapters/peft_io.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * await savePeftAdapter("out/adapter", await model.readAdapters());
   * ```
   */
  readAdapters(): Promise<Lora> {
    if (!this.#lora) {
      return Promise.reject(
        new TypeError("Cannot read the adapters: none are set (call setAdapters first)"),
      );
    }
    return this.#lora.read();
  }

  /**
   * Records one projection of a layer, `y = [y +] x·Wᵀ`, plus its LoRA branch when the
   * projection has an adapter.
   *
   * @param pass The compute pass being recorded.
   * @param args Layer, projection, operands and LoRA scratch (see `encodeProjection` of
   * `decoder_layer_webgpu.ts`).
   * @throws {TypeError} If the projection has an adapter and no `loraScratch` is given.
   *
   * @example The query projection of layer 0 for 8 tokens
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare const pass: GPUComputePassEncoder, x: GPUBuffer, q: GPUBuffer, u: GPUBuffer;
   * model.encodeProjection(pass, { layer: 0, target: "q_proj", x, y: q, m: 8, loraScratch: u });
   * ```
   */
  encodeProjection(pass: GPUComputePassEncoder, args: ProjectionArgs): void {
    encodeProjection(pass, this, args);
  }

  /**
   * Records a training step into `encoder`: the forward (keeping only each layer's input
   * residual, the final hidden state, the log-probs and log-sum-exps), then `options.lossHook`
   * (the caller's kernels that write the cotangents, from the activations, on the GPU), then the
   * backward (each layer's forward recomputed from its saved input, or with
   * `options.keepActivations` read from buffers the forward kept: see `keptActivationBytes`),
   * adding into the gradient buffers. Submit it (or read back from it) before recording another step: the batch is
   * written with `queue.writeBuffer`. LoRA dropout is not applied (the adapters run as in
   * evaluation, whatever `lora_dropout` says). Before it records, it allocates the step's buffers
   * and checks them for out-of-memory (error scopes only, no GPU round trip, as `runTrainStep`
   * does): a buffer that does not fit is named before anything is recorded, and freed, so a
   * smaller step can run after it. It records without yielding after that check; the returned
   * promise resolves when the recording is done. The kernels' scratch (split-K partial sums, on a
   * hardware adapter) is made while recording: the caller's readback (`gpu/readback.ts`) names
   * one that did not fit and frees it, so the step can run again (one that accumulates starts
   * again from `zeroGrads`); so does the next step's check, when the caller submits steps without
   * reading back. Refused while another call holds the model (e.g. a GPU optimizer's update,
   * between the gradient norm it read and the update it records), as `zeroGrads` is; it holds
   * the model itself until it has recorded.
   *
   * @param encoder The command encoder (outside any pass).
   * @param input The batch.
   * @param options Mode, accumulation, which cotangents the hook writes, and the hook.
   * @returns The step's activation and cotangent buffers (valid until the next step).
   * @throws {TypeError} If the mode is unknown, `"adapters"` mode has no adapters, or the
   * encoder already holds a step.
   * @throws {GpuOutOfMemoryError} If a buffer of the step does not fit, as
   * {@linkcode WebGpuQwen3.runTrainStep}.
   * @throws {Error} If another call (`generate`, `backward`, a training step, a GPU optimizer's
   * update) holds the model; as a rejection, like every error here.
   *
   * @example A DAPO-style step whose loss kernel writes d loss / d logprobs on the GPU
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare function encodePgLossGrad(pass: GPUComputePassEncoder, lp: GPUBuffer, d: GPUBuffer): void;
   * const enc = model.ctx.device.createCommandEncoder();
   * await model.encodeTrainStep(enc, { inputIds: [[1, 2, 3, 4]] }, {
   *   mode: "adapters",
   *   lossHook: (pass, acts, cot) => encodePgLossGrad(pass, acts.logprobs, cot.dLogprobs),
   * });
   * model.ctx.device.queue.submit([enc.finish()]);
   * ```
   */
  encodeTrainStep(
    encoder: GPUCommandEncoder,
    input: ForwardInput,
    options: TrainStepOptions,
  ): Promise<TrainStepBuffers> {
    // Held through the allocation check's wait, so that no other call starts before it records.
    let done: () => void;
    try {
      done = this.acquire("record a training step");
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#training().encodeTrainStep(encoder, input, options).finally(done);
  }

  /**
   * Gradients of a loss given by its cotangents (on the logits, the final-norm hidden state
   * and/or the token log-probs): uploads them, records one training step, submits it (in pieces
   * of {@linkcode WebGpuQwen3.submitEveryLayers} layers) and reads the gradients back once.
   * Keys as `cpuBackward`'s.
   *
   * @param input The batch.
   * @param options Mode, cotangents and accumulation.
   * @returns The gradients (accumulated ones with `accumulate`), log-probs and last hidden state.
   * @throws {TypeError} If no cotangent is given, or as {@linkcode WebGpuQwen3.encodeTrainStep}.
   * @throws {RangeError} If a cotangent has the wrong length.
   * @throws {GpuOutOfMemoryError} As {@linkcode WebGpuQwen3.runTrainStep}.
   *
   * @example LoRA gradients of the log-likelihood of a sequence
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const { grads } = await model.backward({ inputIds: [[1, 2, 3]] }, {
   *   mode: "adapters",
   *   dLogprobs: [1, 1],
   * });
   * console.log(grads.has("model.layers.0.self_attn.q_proj.lora_A.weight")); // true
   * ```
   */
  async backward(input: ForwardInput, options: GpuBackwardOptions): Promise<GpuBackwardResult> {
    const done = this.acquire("backward");
    try {
      return await this.#training().backward(input, options);
    } finally {
      done();
    }
  }

  /**
   * Records one training step (forward, the caller's loss kernels, backward), submits it (every
   * {@linkcode WebGpuQwen3.submitEveryLayers} layers, the forward's and backward's counted
   * together) and reads back the gradients of the mode together with the caller's ranges of the step's buffers
   * in one readback: a loss computed on the GPU costs one forward, one backward and one round
   * trip, with no activation leaving the device.
   *
   * @param input The batch.
   * @param options As {@linkcode WebGpuQwen3.encodeTrainStep}, and `readGradients`: false leaves
   * the gradients on the GPU (for a GPU-resident optimizer).
   * @param reads Ranges of the step's buffers to read with the gradients; default none.
   * @returns The gradients, keyed as `cpuBackward`'s, the ranges' bytes in order and, when the
   * step records one, HILO's balance loss (before the coefficient).
   * @throws {TypeError} As {@linkcode WebGpuQwen3.encodeTrainStep}.
   * @throws {GpuOutOfMemoryError} If a buffer of the step (its workspace, gradients) does not fit:
   * found before anything is recorded or submitted, naming the buffer and its bytes; the step's
   * workspace is freed, so a smaller step can run after it.
   *
   * @example The entropy of every position with the gradients
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare const hook: import("./qwen3_webgpu_backward.ts").LossHook;
   * const { grads, reads: [entropy] } = await model.runTrainStep({ inputIds: [[1, 2, 3]] }, {
   *   mode: "full",
   *   lossHook: hook,
   * }, ({ acts }) => [{ buffer: acts.entropy, offset: 0, size: 4 * acts.tokens }]);
   * ```
   */
  async runTrainStep(
    input: ForwardInput,
    options: TrainStepOptions & { readGradients?: boolean },
    reads?: (step: TrainStepBuffers) => readonly ReadbackRange[],
  ): Promise<{ grads: Map<string, Float32Array>; reads: ArrayBuffer[]; balanceLoss?: number }> {
    const done = this.acquire("runTrainStep");
    try {
      return await this.#training().runTrainStep(input, options, reads);
    } finally {
      done();
    }
  }

  /**
   * Zeroes every gradient buffer (adapters and base weights), recorded into `encoder` or, without
   * one, submitted at once. Refused while the model is busy ({@linkcode WebGpuQwen3.acquire}): a
   * training step accumulating into them, or a GPU optimizer between the gradient norm it read
   * and the update it records from the same gradients, would see them change half-way.
   *
   * @param encoder A command encoder (outside any pass) to record into.
   * @throws {Error} If the model is busy with another operation (naming it).
   *
   * @example Start accumulating k micro-batches
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.zeroGrads();
   * ```
   */
  zeroGrads(encoder?: GPUCommandEncoder): void {
    this.#checkIdle("zero the gradients");
    this.#training().zeroGrads(encoder);
  }

  /**
   * The trainable tensors of a mode with their gradient buffers (allocated if needed), for a GPU
   * optimizer: LoRA matrices, and in `"full"` mode every base weight (split weights as one entry
   * per row block).
   *
   * @param mode `"adapters"` or `"full"`.
   * @returns The parameters.
   *
   * @example Count the trainable floats of LoRA training
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * console.log(model.gradients("adapters").reduce((s, p) => s + p.n, 0));
   * ```
   */
  gradients(mode: "adapters" | "full"): GpuParameter[] {
    return this.#training().gradients(mode);
  }

  /**
   * Reads every gradient that exists back (one readback), by name.
   *
   * @returns The gradients, keyed as `cpuBackward`'s.
   *
   * @example Read the gradients accumulated over micro-batches
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const grads = await model.readGradients();
   * ```
   */
  readGradients(): Promise<Map<string, Float32Array>> {
    return this.#training().readGradients();
  }

  /**
   * Frees the activation workspaces of `forward`/`tokenLogprobs` and of training steps (saved
   * residuals, per-layer scratch, logits), e.g. between training and generating rollouts;
   * weights, adapters and gradients are kept, and the next pass allocates what it needs again.
   *
   * @example Free activations before generating
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.releaseWorkspaces();
   * console.log(model.ctx.allocatedBytes);
   * ```
   */
  releaseWorkspaces(): void {
    this.#checkIdle("release the workspaces");
    this.#releaseExternal();
    this.#freeWorkspace();
    this.#backward?.releaseWorkspace();
  }

  #training(): WebGpuQwen3Backward {
    this.#backward ??= new WebGpuQwen3Backward(this);
    return this.#backward;
  }

  /**
   * Records the whole forward pass into a new encoder, submitting every `submitEveryLayers`
   * layers; returns the last encoder (not submitted).
   */
  #record(batch: PackedBatch, ws: Workspace, want: ForwardWants): GPUCommandEncoder {
    const { ctx } = this;
    const c = this.config;
    const q = ctx.device.queue;
    q.writeBuffer(ws.ids, 0, batch.ids);
    q.writeBuffer(ws.mask, 0, batch.mask);
    q.writeBuffer(ws.positions, 0, batch.positions);
    q.writeBuffer(ws.targets, 0, batch.targets);
    const n = batch.batch * batch.seqLen;
    const [hsz, eps] = [c.hiddenSize, c.rmsNormEps];
    const rec = new SubmitSplitter(
      ctx,
      ctx.device.createCommandEncoder({ label: "forward" }),
      this.#submitEvery,
      "forward",
    );
    rec.begin();
    const snapshot = (l: number, src: GPUBuffer) => {
      if (!want.hidden) return;
      rec.end();
      rec.encoder.copyBufferToBuffer(src, 0, ws.hidden!, l * n * hsz * 4, n * hsz * 4);
      rec.begin();
    };

    encodeEmbedding(ctx, rec.pass, { ids: ws.ids, table: this.embedTokens, out: ws.h, tokens: n });
    snapshot(0, ws.h);
    const acts: LayerActivationBuffers = { ...ws, x1: ws.x, x2: ws.x, loraScratch: ws.loraU };
    const capture: LayerHooks = ws.layerHidden
      ? { layerOutput: captureHidden(ctx, ws.layerHidden) }
      : {};
    this.layers.forEach((_, l) => {
      encodeDecoderLayer(rec.pass, this, {
        layer: l,
        hIn: ws.h,
        acts,
        mask: ws.mask,
        positions: ws.positions,
        rows: batch.batch,
        tokens: batch.seqLen,
        hooks: l === want.layerHidden ? capture : undefined,
      });
      if (l < this.layers.length - 1) snapshot(l + 1, ws.h);
      rec.layerDone();
    });
    // The final-norm output stays in ws.x: HF's hidden_states[-1].
    encodeRmsNorm(ctx, rec.pass, { x: ws.h, w: this.norm, y: ws.x, rows: n, d: hsz, eps });
    snapshot(this.layers.length, ws.x);
    if (want.logits) {
      encodeLinear(ctx, rec.pass, { x: ws.x, w: this.lmHead, y: ws.logits!, m: n });
    }
    if (want.headRows) {
      const slice = (b: GPUBuffer, r0: number, rows: number) => ({
        buffer: b,
        offset: r0 * 4,
        size: rows * 4,
      });
      for (let r0 = 0; r0 < n; r0 += want.headRows) {
        const rows = Math.min(want.headRows, n - r0);
        const logits = ws.headLogits!;
        encodeLmHeadBlock(ctx, rec.pass, {
          head: this.lmHead,
          x: ws.x,
          logits,
          r0,
          rows,
          alpha: want.headAlpha,
        });
        encodeLogprob(ctx, rec.pass, {
          logits,
          targets: slice(ws.targets, r0, rows),
          out: slice(ws.logprobs, r0, rows),
          lse: slice(ws.lse, r0, rows),
          entropy: slice(ws.entropy, r0, rows),
          rows,
          v: c.vocabSize,
        });
        rec.layerDone(); // an LM-head block counts as a layer
      }
    }
    rec.end();
    return rec.encoder;
  }

  /**
   * {@linkcode WebGpuQwen3.#workspace}, then, when it allocated a new one, the out-of-memory
   * check of its buffers (error scopes only: no GPU round trip), so that a workspace that does
   * not fit is named before work uses it, and freed (so that the context stops reporting it and a
   * smaller call can run). A reused workspace comes back as it is, not as a promise, so that the
   * caller records without yielding.
   */
  #checkedWorkspace(
    tokens: number,
    want: ForwardWants,
    call: string,
  ): Workspace | Promise<Workspace> {
    const old = this.#ws;
    const ws = this.#workspace(tokens, want);
    if (ws === old) return ws;
    return this.ctx.checkAllocations(`allocating the ${call} workspace for ${ws.tokens} tokens`)
      // A concurrent call may have replaced it (each covers the sizes of the one before) during
      // the await: take the current one, recorded without a further await.
      .then(() => this.#workspace(tokens, want), (error) => {
        this.#freeWorkspace();
        throw error;
      });
  }

  #workspace(tokens: number, want: ForwardWants): Workspace {
    const c = this.config;
    const old = this.#ws;
    const rank = this.#lora?.maxRank ?? 0;
    const layerHidden = want.layerHidden !== undefined;
    if (
      old && old.tokens >= tokens && (!want.logits || old.logits) && (!want.hidden || old.hidden) &&
      (!layerHidden || old.layerHidden) && old.rank >= rank &&
      old.headRows >= (want.headRows ?? 0)
    ) {
      return old;
    }
    const n = Math.max(tokens, old?.tokens ?? 0);
    this.#freeWorkspace();
    const buf = (elements: number, label: string) => {
      const bytes = elements * 4;
      if (bytes > this.ctx.gpu.maxBindingSize) {
        throw new RangeError(
          `Cannot run the model: activation "${label}" for ${n} tokens needs ${bytes} bytes, more ` +
            `than one storage binding (${this.ctx.gpu.maxBindingSize}); use fewer tokens per call`,
        );
      }
      return this.ctx.createBuffer(bytes, label);
    };
    const headRows = Math.max(want.headRows ?? 0, old?.headRows ?? 0);
    const ws: Workspace = {
      tokens: n,
      rank,
      headRows,
      ids: buf(n, "ids"),
      mask: buf(n, "mask"),
      positions: buf(n, "positions"),
      targets: buf(n, "targets"),
      ...allocateLayerActivations(c, n, buf),
      logprobs: buf(n, "logprobs"),
      lse: buf(n, "lse"),
      entropy: buf(n, "entropy"),
    };
    if (rank > 0) ws.loraU = buf(n * rank, "lora_u");
    if (want.logits || old?.logits) ws.logits = buf(n * c.vocabSize, "logits");
    if (headRows > 0) ws.headLogits = buf(headRows * c.vocabSize, "head_logits");
    if (want.hidden || old?.hidden) {
      ws.hidden = this.ctx.createBuffer((c.numHiddenLayers + 1) * n * c.hiddenSize * 4, "hidden");
    }
    if (layerHidden || old?.layerHidden) ws.layerHidden = buf(n * c.hiddenSize, "layer_hidden");
    this.#ws = ws;
    return ws;
  }

  #checkIdle(what: string): void {
    if (this.#busy !== null) {
      throw new Error(
        `Cannot ${what}: a call to ${this.#busy} on this model is still running; await it first`,
      );
    }
  }

  #releaseExternal(): void {
    const list = [...this.#external];
    this.#external.clear();
    for (const release of list) release();
  }

  #freeWorkspace(): void {
    if (!this.#ws) return;
    for (const b of Object.values(this.#ws)) if (b instanceof GPUBuffer) this.ctx.release(b);
    this.#ws = undefined;
    this.ctx.clearBindGroups();
  }
}
