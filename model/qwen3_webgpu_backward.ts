/**
 * The training step of the WebGPU backend: forward, the caller's loss kernels, and the backward,
 * recorded into one command encoder. The backward follows `qwen3_cpu_backward.ts` op by op (its
 * float64 twin and reference) and keeps activation memory bounded:
 *
 * - the forward saves only each layer's input residual `[tokens, hidden]` (plus the final hidden
 *   state, log-probs and log-sum-exps); the backward recomputes a layer's forward from its saved
 *   input into one set of per-layer scratch buffers before running that layer's backward
 *   (gradient checkpointing per layer), so memory grows with layers only by `tokens · hidden`;
 *   with `keepActivations` the forward writes every trained layer's activations into buffers of
 *   its own instead and the backward reads them (no recomputation: about a quarter of a LoRA
 *   step's FLOPs fewer, for {@linkcode keptActivationBytes} more memory), the gradients bit for
 *   bit the same;
 * - the LM head runs over row blocks of tokens when `[tokens, vocab]` logits do not fit one
 *   storage binding (or `headChunkTokens` asks for it): a block's logits are recomputed in the
 *   backward and turned into their gradient in place, so a 151936-token vocabulary needs one
 *   `[block, vocab]` buffer; with `keepActivations` every block's logits stay in a buffer of
 *   their own (each within one binding, {@linkcode keptLogitsBytes} more memory) and the
 *   backward reads them: no block is recomputed (one LM-head matmul fewer per step);
 * - `"adapters"` mode allocates no base-weight gradient, records no base `dW` matmul, and stops
 *   below the lowest adapted layer.
 *
 * Gradients are added into their buffers, so k micro-batches accumulate until the optimizer runs
 * (`accumulate: true`, or `zeroGrads`).
 *
 * `encodeTrainStep` runs in named phases: check the options, prepare (workspace, uploads,
 * zeroing), forward (`encodeDecoderLayer` per layer), the caller's loss hook, head backward (LM
 * head and final norm), layers backward (`encodeDecoderLayerBackward`, last layer first; a hidden
 * cotangent taken at a layer's output is injected there by an `addCotangent` hook), embedding
 * backward.
 *
 * `encodeTrainStep` records into the caller's encoder and never submits. `runTrainStep` and
 * `backward` own their encoder and submit it every `WebGpuQwen3.submitEveryLayers` layers (the
 * forward's and the backward's layers counted together, and each LM-head row block of either as
 * one; by default after each one on a hardware adapter), continuing in a new encoder, so that a micro-step that is tens of seconds of GPU work
 * at 14B is not one submission (OS GPU watchdogs: model/submit_splitter.ts); the readback stays
 * one and the gradients are bit-identical. All three allocate the step's buffers before recording
 * and check them (`GpuContext.checkAllocations`, error scopes only: no GPU round trip): a
 * workspace that does not fit is named, with its bytes, before anything is recorded or submitted,
 * and freed, so a smaller step can run after it. The kernels' scratch (`GpuContext.scratch`: the
 * split-K partial sums of the backward's products on a hardware adapter, small next to the
 * workspace) is made while recording, so it is checked at the step's readback (for
 * `encodeTrainStep`, the caller's): that check names a scratch buffer that did not fit and frees
 * it, and the readback takes with it the validation errors of the work that used it, so the step
 * can run again once it fits (the failed step's gradients are not to be used: one that
 * accumulates starts again from `zeroGrads`).
 *
 * @module
 */
import { checkBackwardArgs, checkTemperature } from "./backward_args.ts";
import type { Binding, GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { readback, type ReadbackRange } from "../gpu/readback.ts";
import { encodeLmHeadBlock, lmHeadBlockRows } from "./lm_head_webgpu.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { encodeEmbedding } from "../kernels/embedding/embedding.ts";
import { encodeEmbeddingBackward } from "../kernels/embedding/embedding_backward.ts";
import { encodeLogprob } from "../kernels/logprob/logprob.ts";
import { encodeLogprobBackward } from "../kernels/logprob/logprob_backward.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import {
  encodeRmsNormBackward,
  RMS_NORM_BACKWARD_BLOCK_ROWS,
} from "../kernels/rms_norm/rms_norm_backward.ts";
import type { Qwen3Config } from "./config.ts";
import {
  addCotangent,
  allocateLayerActivations,
  encodeDecoderLayer,
  encodeDecoderLayerBackward,
  type GpuLayerWeights,
  type GpuModelWeights,
  type LayerActivationBuffers,
  type LayerGradBuffers,
} from "./decoder_layer_webgpu.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import { LAYER_TENSORS, layerTensorName } from "./tensor_table.ts";
import { defaultSubmitEveryLayers, SubmitSplitter } from "./submit_splitter.ts";

/**
 * Which parameters get gradients: `"adapters"` only the LoRA matrices (base frozen: no base
 * gradient buffers, no base `dW` matmuls), `"full"` every base weight and, when adapters are set,
 * their matrices too.
 */
export type GpuBackwardMode = "adapters" | "full";

/** What the forward of a training step leaves for the loss hook (valid until the next step). */
export interface TrainActivations {
  /** Tokens of the step (`batch · seqLen`). */
  tokens: number;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Token ids `[tokens]` (u32). */
  ids: GPUBuffer;
  /** Key mask `[tokens]` (u32, 1 = real token). */
  mask: GPUBuffer;
  /** Next-token target of each position `[tokens]` (i32; −1 for none). */
  targets: GPUBuffer;
  /**
   * `log p(target)` of each position `[tokens]` (0 where there is no target); position
   * `b·seqLen + t` scores token `t + 1` of sequence `b`.
   */
  logprobs: GPUBuffer;
  /** Log-sum-exp of each position's logits `[tokens]`. */
  lse: GPUBuffer;
  /**
   * Entropy `−Σ p log p` of each position's next-token distribution `[tokens]` (from the
   * log-softmax pass; at positions without a target it is the entropy of a prediction nobody
   * scores: mask it).
   */
  entropy: GPUBuffer;
  /**
   * The hidden state the loss reads `[tokens, hidden]`: the final-norm output (HF's
   * `hidden_states[-1]`), or with `TrainStepOptions.hiddenLayer = l` the output of decoder
   * layer `l` (the backward's saved residual: read it, do not write it).
   */
  lastHidden: GPUBuffer;
  /**
   * Logits `[tokens, vocab]` when the LM head ran in one block (else undefined); the backward
   * turns them into their gradient in place.
   */
  logits?: GPUBuffer;
}

/**
 * Cotangent buffers the loss hook writes (zeroed before it runs): the gradient of the scalar
 * loss with respect to each output. Only those named in `TrainStepOptions.cotangents` are read.
 */
export interface TrainCotangents {
  /** d loss / d logprobs `[tokens]`, laid out as {@linkcode TrainActivations.logprobs}. */
  dLogprobs: GPUBuffer;
  /**
   * d loss / d lastHidden `[tokens, hidden]` (Hidden-Align; zero rows where no term applies),
   * injected into the backward where `lastHidden` was taken.
   */
  dLastHidden: GPUBuffer;
  /** d loss / d logits `[tokens, vocab]`, when `cotangents.logits` asked for it. */
  dLogits?: GPUBuffer;
}

/**
 * The caller's loss kernels: record into `pass` (without ending it) the dispatches that write
 * the cotangents from the activations.
 */
export type LossHook = (
  pass: GPUComputePassEncoder,
  acts: TrainActivations,
  cot: TrainCotangents,
) => void;

/** Which cotangents a training step reads. */
export interface TrainCotangentFlags {
  /** `dLogprobs`; default true. */
  logprobs?: boolean;
  /** `dLastHidden`; default true. */
  lastHidden?: boolean;
  /** `dLogits` (allocates a `[tokens, vocab]` buffer); default false. */
  logits?: boolean;
}

/** Options of {@linkcode WebGpuQwen3Backward.encodeTrainStep}. */
export interface TrainStepOptions {
  /** Which parameters get gradients. */
  mode: GpuBackwardMode;
  /** Add to the gradients already accumulated; default false (they are zeroed first). */
  accumulate?: boolean;
  /** Which cotangents the hook writes; the backward skips the paths of the others. */
  cotangents?: TrainCotangentFlags;
  /**
   * Tokens per LM-head block: a multiple of 64 (the storage offset alignment over 4 bytes) or
   * at least the step's tokens; default all tokens when `[tokens, vocab]` fits one storage
   * binding, else the largest multiple of 64 that fits.
   */
  headChunkTokens?: number;
  /**
   * Which hidden state `acts.lastHidden` is (and where `dLastHidden` enters the backward):
   * undefined = the final-norm output (HF's `hidden_states[-1]`); `l` in
   * `[0, numHiddenLayers)` = the output of decoder layer `l` (HF's `hidden_states[l + 1]` for
   * all but the last layer, whose output is taken before the final norm).
   */
  hiddenLayer?: number;
  /**
   * Keep every trained layer's forward activations (its own buffers per layer, allocated with
   * the workspace and freed with it) and run the backward from them, instead of recomputing each
   * layer's forward from its saved input: fewer FLOPs (the layer forwards are not run twice) for
   * {@linkcode keptActivationBytes} more memory. When the LM head runs in several blocks, each
   * block's logits are kept too (a buffer per block) instead of recomputed in the backward: the
   * LM-head matmul runs once, not twice, for {@linkcode keptLogitsBytes} more memory. The same
   * gradients bit for bit. Default false.
   */
  keepActivations?: boolean;
  /**
   * The step's policy is `softmax(logits / temperature)`: the LM head's matmul scales its output
   * by `1 / temperature`, so `acts.logprobs`, `acts.lse`, `acts.entropy` (and `acts.logits`) are
   * the tempered ones, and the head's backward scales by the same `1 / temperature` (the chain
   * rule). A finite number ≥ 1e-6; default 1. A temperature other than 1 with
   * `cotangents.logits` is a `TypeError`.
   */
  temperature?: number;
  /**
   * Weight of HILO's load-balancing term in this step: the adapters' `balanceCoef` is multiplied
   * by it (e.g. `1 / micro-batches` when the step's gradients are summed with others'). A finite
   * number ≥ 0; default 1.
   */
  balanceWeight?: number;
  /** Records the loss kernels between the forward and the backward. */
  lossHook: LossHook;
}

/** What {@linkcode WebGpuQwen3Backward.encodeTrainStep} returns. */
export interface TrainStepBuffers {
  /** The forward's outputs. */
  acts: TrainActivations;
  /** The cotangent buffers. */
  cot: TrainCotangents;
  /**
   * One float holding the step's HILO balance loss (before the coefficient), when the step
   * records one.
   */
  balanceTotal?: GPUBuffer;
}

/** Options of {@linkcode WebGpuQwen3Backward.backward}: cotangents of the loss (at least one). */
export interface GpuBackwardOptions {
  /** Which parameters get gradients. */
  mode: GpuBackwardMode;
  /** d loss / d logits `[batch, seqLen, vocab]`. */
  dLogits?: ArrayLike<number>;
  /**
   * d loss / d lastHidden `[batch, seqLen, hidden]` at the final-norm output, or at the output
   * of layer `hiddenLayer` when given.
   */
  dLastHidden?: ArrayLike<number>;
  /** d loss / d logprobs `[batch, seqLen − 1]` on the token log-probs of `tokenLogprobs`. */
  dLogprobs?: ArrayLike<number>;
  /** Add to the gradients already accumulated; default false. */
  accumulate?: boolean;
  /** As {@linkcode TrainStepOptions.headChunkTokens}. */
  headChunkTokens?: number;
  /** As {@linkcode TrainStepOptions.hiddenLayer}. */
  hiddenLayer?: number;
  /** As {@linkcode TrainStepOptions.keepActivations}. */
  keepActivations?: boolean;
  /** As {@linkcode TrainStepOptions.temperature}: `dLogprobs` is on the tempered log-probs. */
  temperature?: number;
  /** As {@linkcode TrainStepOptions.balanceWeight}. */
  balanceWeight?: number;
}

/** Result of {@linkcode WebGpuQwen3Backward.backward}. */
export interface GpuBackwardResult {
  /**
   * The gradients of the mode (accumulated ones when asked), keyed as `cpuBackward`'s: LoRA
   * matrices by PEFT name, base weights by checkpoint name (the LM head's gradient added to
   * `model.embed_tokens.weight` when tied).
   */
  grads: Map<string, Float32Array>;
  /** Token log-probs `[batch, seqLen − 1]` of the forward. */
  logprobs: Float32Array;
  /**
   * Final-norm hidden states `[batch, seqLen, hidden]` (layer `hiddenLayer`'s output when
   * given).
   */
  lastHidden: Float32Array;
  /**
   * HILO's load-balancing loss of the step (before the coefficient; summed over routed
   * projections and layers), when the adapters have a balance term.
   */
  balanceLoss?: number;
}

/** One trainable tensor (or row block of one) with its gradient, for a GPU optimizer. */
export interface GpuParameter {
  /** Checkpoint / PEFT name of the whole tensor. */
  name: string;
  /** The buffer holding the values (updated in place by the optimizer), from `paramOffset`. */
  param: GPUBuffer;
  /**
   * Byte offset of the values in `param`: 0, but for a projection stored in a fused q|k|v or
   * gate|up buffer (`WebGpuQwen3Options.fuseProjections`), a multiple of the storage offset
   * alignment. Bind, read and write `n` floats from there.
   */
  paramOffset: number;
  /** The gradient (a buffer of its own, `n` floats). */
  grad: GPUBuffer;
  /** Floats of this entry. */
  n: number;
  /** Index of this entry's first float within the whole tensor (row blocks of split weights). */
  offset: number;
}

/** Base-weight gradients, laid out like the weights (split matrices split the same way). */
interface BaseGrads {
  embed: GpuMatrix;
  lmHead: GpuMatrix;
  norm: GPUBuffer;
  layers: GpuLayerWeights[];
}

/** Buffers of a training step for up to `tokens` tokens. */
interface TrainWorkspace {
  tokens: number;
  rank: number;
  headRows: number;
  dLogits: boolean;
  ids: GPUBuffer;
  mask: GPUBuffer;
  positions: GPUBuffer;
  targets: GPUBuffer;
  /** Residual stream entering each layer; `hs[layers]` is the last layer's output. */
  hs: GPUBuffer[];
  /** The final-norm output (the LM head's input). */
  lastHidden: GPUBuffer;
  logprobs: GPUBuffer;
  lse: GPUBuffer;
  entropy: GPUBuffer;
  /** `[headRows, vocab]` logits of one LM-head block (block 0's with `keepActivations`). */
  logits: GPUBuffer;
  /**
   * `keepActivations` with the LM head in several blocks: the logits of blocks 1, 2, … (`[rows,
   * vocab]` each; block 0 uses `logits`), written by the forward and turned into their gradient
   * by the backward; allocated on demand.
   */
  keptLogits: GPUBuffer[];
  dLogprobs: GPUBuffer;
  dLastHidden: GPUBuffer;
  dLogitsBuf?: GPUBuffer;
  /** One layer's activations (the layer being recomputed, and the last layer's). */
  acts: LayerActivationBuffers & { loraScratch: GPUBuffer };
  /** One layer's post-attention residual. */
  hMid: GPUBuffer;
  /**
   * `keepActivations`: layer `l`'s own activations and post-attention residual, for the layers
   * below the last (which uses `acts` and `hMid`) that a step trained; allocated on demand.
   */
  kept: (KeptLayer | undefined)[];
  /** One layer's gradients and scratch; `grads.dh` carries d loss / d residual down the layers. */
  grads: LayerGradBuffers;
}

/** A layer's activations kept from the forward for the backward (`keepActivations`). */
interface KeptLayer {
  acts: LayerActivationBuffers;
  hMid: GPUBuffer;
}

/** One recorded step: its batch layout, workspace and what its backward runs. */
interface StepPlan {
  ws: TrainWorkspace;
  /** The batch, packed. */
  batch: PackedBatch;
  /** Number of sequences. */
  rows: number;
  /** Tokens per sequence. */
  tokens: number;
  /** `rows · tokens`. */
  n: number;
  /** Which cotangents the hook writes. */
  flags: Required<TrainCotangentFlags>;
  /** Base-weight gradients (full fine-tuning). */
  base?: BaseGrads;
  /** The lowest layer with trainable parameters (the backward stops there). */
  lowest: number;
  /** The LM head's row blocks `[firstRow, rows]`. */
  blocks: [number, number][];
  /** Each block's logits buffer (all `ws.logits` unless `headKept` with several blocks). */
  blockLogits: GPUBuffer[];
  /** Whether every block's logits survive the forward (one block, or `keepActivations`). */
  headKept: boolean;
  /** As {@linkcode TrainStepOptions.hiddenLayer}. */
  hiddenLayer?: number;
  /** Whether layer `l` keeps its activations (`keepActivations`): `ws.kept[l]` is set. */
  keeps: (l: number) => boolean;
  /** Scale of the LM head's output, `1 / temperature` (undefined: 1, the untempered step). */
  headAlpha?: number;
  /** As {@linkcode TrainStepOptions.balanceWeight} (default 1). */
  balanceWeight: number;
  /** Whether the step records HILO's balance loss (into the adapters' `balanceTotal`). */
  balance: boolean;
}

/**
 * Bytes that {@linkcode TrainStepOptions.keepActivations} adds to a training step's workspace:
 * one set of activations per trained layer below the last (the last one's are kept anyway), each
 * `4 · tokens · (3·hidden + 3·heads·headDim + 3·kvHeads·headDim + 3·intermediate)` bytes (the
 * two norm outputs, the post-attention residual; q before and after norm/RoPE, the attention
 * output; k before and after, v; gate, up and their SwiGLU).
 *
 * @param config The model's shape.
 * @param tokens Tokens per micro-batch (`batch · seqLen`).
 * @param layers Layers kept; default `numHiddenLayers − 1` (every layer trained).
 * @returns The bytes.
 *
 * @example Qwen3-0.6B, 8 sequences of 512 tokens: ≈ 9.5 GB (27 layers × 352 MB)
 * ```ts
 * import { keptActivationBytes } from "./qwen3_webgpu_backward.ts";
 * import { strictEqual } from "node:assert/strict";
 * const qwen3_06b = {
 *   hiddenSize: 1024,
 *   intermediateSize: 3072,
 *   numAttentionHeads: 16,
 *   numKeyValueHeads: 8,
 *   headDim: 128,
 *   numHiddenLayers: 28,
 * };
 * strictEqual(keptActivationBytes(qwen3_06b, 4096), 27 * 4 * 4096 * 21504);
 * ```
 */
export function keptActivationBytes(
  config: Pick<
    Qwen3Config,
    | "hiddenSize"
    | "intermediateSize"
    | "numAttentionHeads"
    | "numKeyValueHeads"
    | "headDim"
    | "numHiddenLayers"
  >,
  tokens: number,
  layers = config.numHiddenLayers - 1,
): number {
  const c = config;
  const perToken = 3 *
    (c.hiddenSize + c.numAttentionHeads * c.headDim + c.numKeyValueHeads * c.headDim +
      c.intermediateSize);
  return layers * 4 * tokens * perToken;
}

/**
 * Bytes that {@linkcode TrainStepOptions.keepActivations} adds to a training step's workspace for
 * the LM head's logits when the head runs in blocks of `blockRows` tokens (fewer than `tokens`):
 * every block but the first keeps its `[rows, vocab]` logits in a buffer of its own (the first
 * uses the block buffer the step has anyway), `4 · (tokens − blockRows) · vocab` bytes, just under
 * the whole `tokens × vocab × 4`; 0 with one block. Add it to {@linkcode keptActivationBytes}.
 *
 * @param config The model's vocabulary size.
 * @param tokens Tokens per micro-batch (`batch · seqLen`).
 * @param blockRows Tokens per LM-head block (`lmHeadBlockRows`, or `headChunkTokens`).
 * @returns The bytes.
 *
 * @example Qwen3-0.6B, 8 × 512 tokens in blocks of 3520 (a 2 GiB binding, rounded down to 64
 * rows): ≈ 350 MB more
 * ```ts
 * import { keptLogitsBytes } from "./qwen3_webgpu_backward.ts";
 * import { strictEqual } from "node:assert/strict";
 * strictEqual(keptLogitsBytes({ vocabSize: 151936 }, 4096, 3520), 4 * 576 * 151936);
 * strictEqual(keptLogitsBytes({ vocabSize: 151936 }, 2048, 3520), 0);
 * ```
 */
export function keptLogitsBytes(
  config: Pick<Qwen3Config, "vocabSize">,
  tokens: number,
  blockRows: number,
): number {
  return blockRows >= tokens ? 0 : 4 * (tokens - blockRows) * config.vocabSize;
}

/** f16 weights are frozen: `"full"` mode needs f32 ones. */
function checkFullF16(model: GpuModelWeights, mode: GpuBackwardMode, action: string): void {
  if (mode === "full" && model.embedTokens.dtype === "f16") {
    throw new TypeError(
      `Cannot ${action}: mode "full" trains the base weights, which this model stores as f16 ` +
        `(frozen): train adapters (mode "adapters") or load the model with weightDtype "f32"`,
    );
  }
}

function checkMode(mode: unknown): asserts mode is GpuBackwardMode {
  if (mode !== "adapters" && mode !== "full") {
    throw new TypeError(
      `Cannot run the backward: option "mode" must be "adapters" or "full": current value is ` +
        `${JSON.stringify(mode)}`,
    );
  }
}

/**
 * Checks a hidden-layer index: undefined, or an integer in `[0, layers)`.
 *
 * @param hiddenLayer The index.
 * @param layers The model's number of decoder layers.
 * @param action What is refused, for the message, e.g. `"run the model"`.
 * @throws {RangeError} Naming the expected range and the current value.
 *
 * @example Layer 4 of a 2-layer model
 * ```ts
 * import { checkGpuHiddenLayer } from "./qwen3_webgpu_backward.ts";
 * import { throws } from "node:assert/strict";
 * checkGpuHiddenLayer(1, 2, "run the model"); // fine
 * throws(() => checkGpuHiddenLayer(4, 2, "run the model"), RangeError);
 * ```
 */
export function checkGpuHiddenLayer(hiddenLayer: unknown, layers: number, action: string): void {
  if (
    hiddenLayer !== undefined &&
    (!Number.isInteger(hiddenLayer) || (hiddenLayer as number) < 0 ||
      (hiddenLayer as number) >= layers)
  ) {
    throw new RangeError(
      `Cannot ${action}: option "hiddenLayer" must be undefined or an integer in [0, ${layers}): ` +
        `current value is ${JSON.stringify(hiddenLayer)}`,
    );
  }
}

// ---- Argument checks of `backward` (the cotangents given by the host) ----------------------
/**
 * Checks `backward`'s mode and cotangents against the batch; returns the packed batch. The
 * same checks, in the same order, as `cpuBackward`'s.
 */
function checkBackwardOptions(
  options: GpuBackwardOptions,
  input: ForwardInput,
  config: Qwen3Config,
): PackedBatch {
  checkMode(options.mode);
  const batch = packBatch(input, config);
  checkBackwardArgs({
    mode: options.mode,
    hasAdapters: true, // the GPU checks its adapters where it records them
    batch: batch.batch,
    seqLen: batch.seqLen,
    hiddenSize: config.hiddenSize,
    vocabSize: config.vocabSize,
    numHiddenLayers: config.numHiddenLayers,
    dLogits: options.dLogits,
    dLastHidden: options.dLastHidden,
    dLogprobs: options.dLogprobs,
  });
  return batch;
}
// ---- End of the argument checks --------------------------------------------------------------

function rowsOf(buffer: GPUBuffer, row0: number, rows: number, width: number): Binding {
  return { buffer, offset: row0 * width * 4, size: rows * width * 4 };
}

/**
 * The training state of one {@linkcode WebGpuQwen3}: step workspace and base-weight gradients.
 * Reach it through the model's `encodeTrainStep`, `backward`, `zeroGrads`, `gradients` and
 * `readGradients`.
 *
 * @example Two accumulated micro-batches, then read the sum
 * ```ts ignore
 * import { WebGpuQwen3Backward } from "./qwen3_webgpu_backward.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * const train = new WebGpuQwen3Backward(model);
 * await train.backward({ inputIds: [[1, 2, 3]] }, { mode: "adapters", dLogprobs: [1, 1] });
 * const { grads } = await train.backward({ inputIds: [[4, 5, 6]] }, {
 *   mode: "adapters",
 *   dLogprobs: [1, 1],
 *   accumulate: true,
 * });
 * ```
 */
export class WebGpuQwen3Backward {
  /** The model trained. */
  readonly model: GpuModelWeights;
  #ws?: TrainWorkspace;
  #base?: BaseGrads;
  #encoders = new WeakSet<GPUCommandEncoder>();
  #uploads = new Map<string, GPUBuffer>();

  /**
   * Attaches to a model (allocates nothing yet).
   *
   * @param model The model (a `WebGpuQwen3`).
   */
  constructor(model: GpuModelWeights) {
    this.model = model;
  }

  get #ctx(): GpuContext {
    return this.model.ctx;
  }

  /**
   * Allocates and checks a training step's buffers, then records it; see
   * `WebGpuQwen3.encodeTrainStep`.
   *
   * @param encoder The command encoder (outside any pass).
   * @param input The batch.
   * @param options Mode, accumulation, cotangent flags, LM-head blocking and the loss hook.
   * @returns The step's activation and cotangent buffers.
   * @throws {TypeError} If the mode is unknown, `"adapters"` mode has no adapters, the hook is
   * not a function, or `encoder` already holds a step.
   * @throws {RangeError} If `headChunkTokens` is not a positive multiple of 64 below the tokens,
   * or `hiddenLayer` is not a layer index.
   * @throws {GpuOutOfMemoryError} As {@linkcode WebGpuQwen3Backward.runTrainStep}.
   *
   * @example Hidden-Align gradient written by a loss kernel
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * declare function encodeAlignGrad(p: GPUComputePassEncoder, h: GPUBuffer, d: GPUBuffer): void;
   * const enc = train.model.ctx.device.createCommandEncoder();
   * await train.encodeTrainStep(enc, { inputIds: [[1, 2, 3]] }, {
   *   mode: "adapters",
   *   cotangents: { logprobs: false, lastHidden: true },
   *   lossHook: (pass, acts, cot) => encodeAlignGrad(pass, acts.lastHidden, cot.dLastHidden),
   * });
   * train.model.ctx.device.queue.submit([enc.finish()]);
   * ```
   */
  async encodeTrainStep(
    encoder: GPUCommandEncoder,
    input: ForwardInput,
    options: TrainStepOptions,
  ): Promise<TrainStepBuffers> {
    this.#checkTrainStep(options);
    this.#checkEncoder(encoder);
    await this.#allocateChecked(input, options);
    // Recorded with no await since the check (see runTrainStep).
    return this.#encodeTrainStep(
      new SubmitSplitter(this.#ctx, encoder, 0, "train step"),
      input,
      options,
    );
  }

  #checkEncoder(encoder: GPUCommandEncoder): void {
    if (this.#encoders.has(encoder)) {
      throw new TypeError(
        "Cannot record a training step: this encoder already holds one, and the batch is " +
          "written with queue.writeBuffer at submit; submit it before recording the next step",
      );
    }
  }

  /**
   * Phase 1a and its check: the step's buffers (`#allocate`), then their out-of-memory check
   * (error scopes only: no GPU round trip), so that a buffer that does not fit is named before
   * anything is recorded or submitted. On a failure it frees what the failed buffer may belong to
   * (nothing of it was used), so that the context stops reporting it and a smaller step can run:
   * the workspace, the cotangent uploads of `backward`, and base-weight gradients allocated by
   * this call. (The kernels' scratch is made while recording, after this check: the readback's
   * check reports it, and frees one that did not fit; see the module doc.)
   */
  async #allocateChecked(input: ForwardInput, options: TrainStepOptions): Promise<void> {
    const hadBase = this.#base !== undefined;
    const { n } = this.#allocate(input, options);
    try {
      await this.#ctx.checkAllocations(
        `allocating the training step's workspace for ${n} tokens (mode "${options.mode}")`,
      );
    } catch (error) {
      this.#freeWorkspace();
      this.#freeUploads();
      if (!hadBase) this.#freeBaseGrads();
      throw error;
    }
  }

  /**
   * `encodeTrainStep` into `rec`, which submits at layer boundaries when it splits (the caller's
   * `encoder` of `encodeTrainStep` never does: the caller owns it).
   */
  #encodeTrainStep(
    rec: SubmitSplitter,
    input: ForwardInput,
    options: TrainStepOptions,
  ): TrainStepBuffers {
    const encoder = rec.encoder;
    this.#checkTrainStep(options);
    this.#checkEncoder(encoder);
    const step = this.#prepare(encoder, input, options);
    // The balance kernels add each routed projection's loss to this total.
    if (step.balance) encoder.clearBuffer(this.model.adapters!.balanceTotal);
    rec.begin({ label: "train step" });
    const acts = this.#forward(rec, step);
    const { ws } = step;
    const cot: TrainCotangents = {
      dLogprobs: ws.dLogprobs,
      dLastHidden: ws.dLastHidden,
      dLogits: ws.dLogitsBuf,
    };
    options.lossHook(rec.pass, acts, cot);
    const { flags } = step;
    // Without any cotangent nothing reaches the model: the gradients stay as they are.
    if (flags.logprobs || flags.logits || flags.lastHidden) {
      this.#headBackward(rec, step);
      this.#layersBackward(rec, step);
      this.#embeddingBackward(rec.pass, step);
    }
    rec.end();
    return step.balance ? { acts, cot, balanceTotal: this.model.adapters!.balanceTotal } : {
      acts,
      cot,
    };
  }

  /** Phase 0: the checks of `encodeTrainStep`'s options (before anything is allocated). */
  #checkTrainStep(options: TrainStepOptions): void {
    const { mode } = options;
    checkMode(mode);
    checkFullF16(this.model, mode, "record a training step");
    if (mode === "adapters" && this.model.adapters === null) {
      throw new TypeError(
        `Cannot run the backward: mode "adapters" needs adapters (call setAdapters first)`,
      );
    }
    if (typeof options.lossHook !== "function") {
      throw new TypeError(
        `Cannot record a training step: option "lossHook" must be a function: current value is ` +
          `${typeof options.lossHook}`,
      );
    }
    checkGpuHiddenLayer(
      options.hiddenLayer,
      this.model.config.numHiddenLayers,
      "record a training step",
    );
    const temperature = checkTemperature(options.temperature, "record a training step");
    if (temperature !== 1 && options.cotangents?.logits) {
      throw new TypeError(
        `Cannot record a training step: a logits cotangent ("cotangents.logits", "dLogits") ` +
          `takes temperature 1 (the raw logits'): current temperature is ${temperature}`,
      );
    }
  }

  /**
   * Phase 1a: the step's plan and every buffer it needs (workspace, kept activations and logits,
   * gradients), allocated or reused; records nothing. `runTrainStep` checks the allocations
   * between this and the recording.
   */
  #allocate(input: ForwardInput, options: TrainStepOptions): StepPlan {
    const flags = {
      logprobs: options.cotangents?.logprobs ?? true,
      lastHidden: options.cotangents?.lastHidden ?? true,
      logits: options.cotangents?.logits ?? false,
    };
    const balanceWeight = options.balanceWeight ?? 1;
    if (!(Number.isFinite(balanceWeight) && balanceWeight >= 0)) {
      throw new RangeError(
        `Cannot record a training step: option "balanceWeight" must be a finite number ≥ 0: ` +
          `current value is ${balanceWeight}`,
      );
    }
    const c = this.model.config;
    const lora = this.model.adapters;
    const batch = packBatch(input, c);
    const n = batch.batch * batch.seqLen;
    const headRows = lmHeadBlockRows(this.#ctx, c.vocabSize, n, {
      requested: options.headChunkTokens,
      action: "record a training step",
    });
    const ws = this.#workspace(n, lora?.maxRank ?? 0, headRows, flags.logits);
    const full = options.mode === "full";
    lora?.ensureGrads();
    const base = full ? this.#baseGrads() : undefined;
    const blocks: [number, number][] = [];
    for (let r0 = 0; r0 < n; r0 += headRows) blocks.push([r0, Math.min(headRows, n - r0)]);
    const lowest = full ? 0 : Math.min(...lora!.modules.map((m) => m.layer));
    const keep = options.keepActivations ?? false;
    this.#keepLayers(ws, keep ? lowest : c.numHiddenLayers);
    this.#keepLogits(ws, keep ? blocks : []);
    const headKept = keep || blocks.length === 1;
    return {
      ws,
      batch,
      rows: batch.batch,
      tokens: batch.seqLen,
      n,
      flags,
      base,
      lowest,
      blocks,
      blockLogits: blocks.map((_, i) => (headKept && i > 0 ? ws.keptLogits[i - 1] : ws.logits)),
      headKept,
      hiddenLayer: options.hiddenLayer,
      keeps: (l) => keep && l >= lowest && l < c.numHiddenLayers - 1,
      headAlpha: (options.temperature ?? 1) === 1 ? undefined : 1 / options.temperature!,
      balanceWeight,
      balance: lora !== null && lora !== undefined && lora.balanceCoef * balanceWeight !== 0 &&
        lora.modules.some((m) => m.router !== null),
    };
  }

  /**
   * Phase 1: the step's plan and workspace (`#allocate`); uploads
   * the batch and records the zeroing of the gradients (unless accumulating) and of the
   * cotangents.
   */
  #prepare(encoder: GPUCommandEncoder, input: ForwardInput, options: TrainStepOptions): StepPlan {
    const step = this.#allocate(input, options);
    const { ws, batch, flags, hiddenLayer } = step;
    this.#encoders.add(encoder);
    const q = this.#ctx.device.queue;
    q.writeBuffer(ws.ids, 0, batch.ids);
    q.writeBuffer(ws.mask, 0, batch.mask);
    q.writeBuffer(ws.positions, 0, batch.positions);
    q.writeBuffer(ws.targets, 0, batch.targets);
    if (!options.accumulate) {
      this.model.adapters?.zeroGrads(encoder);
      if (step.base) { for (const b of this.#baseGradBuffers()) encoder.clearBuffer(b); }
    }
    encoder.clearBuffer(ws.dLogprobs);
    encoder.clearBuffer(ws.dLastHidden);
    if (ws.dLogitsBuf) encoder.clearBuffer(ws.dLogitsBuf);
    // A layer's cotangent alone starts the backward at that layer, from a zero gradient.
    if (hiddenLayer !== undefined && !flags.logprobs && !flags.logits) {
      encoder.clearBuffer(ws.grads.dh);
    }
    return step;
  }

  /**
   * Gives `ws.kept` a set of buffers for every layer in `[from, layers − 1)` and frees the
   * others (all of them with `from = layers`).
   */
  #keepLayers(ws: TrainWorkspace, from: number): void {
    const c = this.model.config;
    const L = c.numHiddenLayers;
    const ctx = this.#ctx;
    let freed = false;
    for (let l = 0; l < L - 1; l++) {
      const k = ws.kept[l];
      if (l >= from && !k) {
        const n = ws.tokens;
        const buf = (elements: number, label: string) =>
          trainBuffer(ctx, elements, `train.layer${l}.${label}`, n);
        const { h, x, ...rest } = allocateLayerActivations(c, n, buf);
        ws.kept[l] = { acts: { ...rest, x1: x, x2: buf(n * c.hiddenSize, "x2") }, hMid: h };
      } else if (l < from && k) {
        for (const b of [...Object.values(k.acts), k.hMid]) ctx.release(b as GPUBuffer);
        ws.kept[l] = undefined;
        freed = true;
      }
    }
    if (freed) ctx.clearBindGroups();
  }

  /**
   * Gives `ws.keptLogits` a `[rows, vocab]` buffer for every block of `blocks` but the first
   * (reusing those large enough) and frees the others (all of them with no blocks).
   */
  #keepLogits(ws: TrainWorkspace, blocks: readonly [number, number][]): void {
    const ctx = this.#ctx;
    const V = this.model.config.vocabSize;
    const kept = ws.keptLogits;
    let freed = false;
    const want = blocks.slice(1);
    want.forEach(([, rows], i) => {
      if (kept[i] && kept[i].size >= rows * V * 4) return;
      if (kept[i]) {
        ctx.release(kept[i]);
        freed = true;
      }
      kept[i] = trainBuffer(ctx, rows * V, `train.logits.block${i + 1}`, ws.tokens);
    });
    for (const b of kept.splice(want.length)) {
      ctx.release(b);
      freed = true;
    }
    if (freed) ctx.clearBindGroups();
  }

  /**
   * Phase 2: the forward, keeping each layer's input residual, the final-norm output, the
   * log-probs and log-sum-exps (and the logits when the LM head runs in one block, or every
   * block's with `keepActivations`).
   */
  #forward(rec: SubmitSplitter, step: StepPlan): TrainActivations {
    const ctx = this.#ctx;
    const model = this.model;
    const c = model.config;
    const { ws, n, rows, tokens } = step;
    const L = c.numHiddenLayers;
    encodeEmbedding(ctx, rec.pass, {
      ids: ws.ids,
      table: model.embedTokens,
      out: ws.hs[0],
      tokens: n,
    });
    for (let l = 0; l < L; l++) {
      // The last layer keeps its post-attention residual in hMid, so that all its activations
      // are still in the scratch buffers when the backward reaches it: no recomputation there.
      // With keepActivations, so does every trained layer, in buffers of its own.
      const kept = step.keeps(l) ? ws.kept[l]! : undefined;
      encodeDecoderLayer(rec.pass, model, {
        layer: l,
        hIn: ws.hs[l],
        hMid: kept?.hMid ?? (l === L - 1 ? ws.hMid : ws.hs[l + 1]),
        hOut: ws.hs[l + 1],
        acts: kept ? { ...kept.acts, loraScratch: ws.acts.loraScratch } : ws.acts,
        mask: ws.mask,
        positions: ws.positions,
        rows,
        tokens,
      });
      rec.layerDone();
    }
    const [H, eps] = [c.hiddenSize, c.rmsNormEps];
    encodeRmsNorm(ctx, rec.pass, {
      x: ws.hs[L],
      w: model.norm,
      y: ws.lastHidden,
      rows: n,
      d: H,
      eps,
    });
    step.blocks.forEach(([r0, rows], i) => {
      const logits = step.blockLogits[i];
      encodeLmHeadBlock(ctx, rec.pass, {
        head: model.lmHead,
        x: ws.lastHidden,
        logits,
        r0,
        rows,
        alpha: step.headAlpha,
      });
      encodeLogprob(ctx, rec.pass, {
        logits,
        targets: rowsOf(ws.targets, r0, rows, 1),
        out: rowsOf(ws.logprobs, r0, rows, 1),
        lse: rowsOf(ws.lse, r0, rows, 1),
        entropy: rowsOf(ws.entropy, r0, rows, 1),
        rows,
        v: c.vocabSize,
      });
      rec.layerDone(); // an LM-head block counts as a layer
    });
    return {
      tokens: n,
      batch: rows,
      seqLen: tokens,
      ids: ws.ids,
      mask: ws.mask,
      targets: ws.targets,
      logprobs: ws.logprobs,
      lse: ws.lse,
      entropy: ws.entropy,
      lastHidden: step.hiddenLayer === undefined ? ws.lastHidden : ws.hs[step.hiddenLayer + 1],
      logits: step.blocks.length === 1 ? ws.logits : undefined,
    };
  }

  /**
   * Phase 3: LM head and final norm. `dx` = d loss / d (final-norm output) from the hidden
   * cotangent (when it is taken there) and the log-prob / logit cotangents through the LM head;
   * then `grads.dh` = d loss / d (last layer's output). Skipped when neither reaches the head.
   */
  #headBackward(rec: SubmitSplitter, step: StepPlan): void {
    const ctx = this.#ctx;
    const model = this.model;
    const c = model.config;
    const { ws, n, flags, base } = step;
    const { dx, dh } = ws.grads;
    const [H, V] = [c.hiddenSize, c.vocabSize];
    const headNeeded = flags.logprobs || flags.logits;
    // Without a hidden cotangent here, the LM head's first block overwrites dx.
    const hiddenHere = flags.lastHidden && step.hiddenLayer === undefined;
    if (!headNeeded && !hiddenHere) return;
    if (hiddenHere) encodeAdd(ctx, rec.pass, { x: ws.dLastHidden, y: dx, n: n * H });
    if (headNeeded) {
      step.blocks.forEach(([r0, rows], i) => {
        const logits = step.blockLogits[i];
        let dy: Binding;
        if (flags.logprobs) {
          // Logits overwritten by a later block (without keepActivations): recompute them.
          if (!step.headKept) {
            encodeLmHeadBlock(ctx, rec.pass, {
              head: model.lmHead,
              x: ws.lastHidden,
              logits,
              r0,
              rows,
              alpha: step.headAlpha,
            });
          }
          encodeLogprobBackward(ctx, rec.pass, {
            logits,
            targets: rowsOf(ws.targets, r0, rows, 1),
            lse: rowsOf(ws.lse, r0, rows, 1),
            dLogprob: rowsOf(ws.dLogprobs, r0, rows, 1),
            rows,
            v: V,
          });
          if (flags.logits) {
            encodeAdd(ctx, rec.pass, {
              x: rowsOf(ws.dLogitsBuf!, r0, rows, V),
              y: logits,
              n: rows * V,
              accumulate: true,
            });
          }
          dy = logits;
        } else {
          dy = rowsOf(ws.dLogitsBuf!, r0, rows, V);
        }
        model.lmHead.chunks.forEach((chunk, j) => {
          encodeMatmulBackward(ctx, rec.pass, {
            dy,
            m: rows,
            n: chunk.rows,
            k: H,
            ldy: V,
            yCol: chunk.rowStart,
            w: chunk.buffer,
            wF16: model.lmHead.dtype === "f16",
            dx: rowsOf(dx, r0, rows, H),
            accumulateDx: hiddenHere || j > 0,
            x: base ? rowsOf(ws.lastHidden, r0, rows, H) : undefined,
            dw: base?.lmHead.chunks[j].buffer,
            accumulateDw: true,
            // d/d(alpha · x·Wᵀ): the tempered logits' cotangent times 1 / temperature.
            alpha: step.headAlpha,
          });
        });
        rec.layerDone(); // an LM-head block counts as a layer
      });
    }
    encodeRmsNormBackward(ctx, rec.pass, {
      dy: dx,
      x: ws.hs[c.numHiddenLayers],
      w: model.norm,
      dx: dh,
      dw: base?.norm,
      rows: n,
      d: H,
      accumulateDw: true,
      rstd: base ? ws.grads.rstd : undefined,
      partials: base ? ws.grads.partials : undefined,
      eps: c.rmsNormEps,
    });
  }

  /**
   * Phase 4: the layers, last first down to the lowest trained one, each recomputed from its
   * saved input (but the last, whose activations are still there, and with `keepActivations`
   * every one, whose activations the forward kept); a hidden cotangent taken at
   * a layer's output is added to `grads.dh` when the backward passes that layer. With only a
   * hidden cotangent the backward starts at its layer, unless HILO's balance term has routers
   * above it (then at the last layer, from a zero gradient).
   */
  #layersBackward(rec: SubmitSplitter, step: StepPlan): void {
    const model = this.model;
    const L = model.config.numHiddenLayers;
    const { ws, flags, base, lowest, hiddenLayer } = step;
    // HILO's balance term reaches every routed layer, those above a hidden cotangent's too
    // (their other gradients are zero there).
    const balanceAbove = step.balance && hiddenLayer !== undefined &&
      model.adapters!.modules.some((m) => m.router !== null && m.layer > hiddenLayer);
    const fromHead = flags.logprobs || flags.logits || hiddenLayer === undefined || balanceAbove;
    const inject = { layerOutput: addCotangent(this.#ctx, ws.dLastHidden) };
    for (let l = fromHead ? L - 1 : hiddenLayer!; l >= lowest; l--) {
      const kept = step.keeps(l) ? ws.kept[l]! : undefined;
      encodeDecoderLayerBackward(rec.pass, model, {
        layer: l,
        hIn: ws.hs[l],
        hMid: kept?.hMid ?? ws.hMid,
        acts: kept ? { ...kept.acts, loraScratch: ws.acts.loraScratch } : ws.acts,
        grads: ws.grads,
        weightGrads: base?.layers[l],
        rows: step.rows,
        tokens: step.tokens,
        positions: ws.positions,
        mask: ws.mask,
        recompute: l < L - 1 && !kept,
        inputGrad: base !== undefined || l > lowest,
        hooks: flags.lastHidden && l === hiddenLayer ? inject : undefined,
        balanceWeight: step.balanceWeight,
      });
      rec.layerDone();
    }
  }

  /** Phase 5: the embedding's gradient (full fine-tuning), from d loss / d (layer 0 input). */
  #embeddingBackward(pass: GPUComputePassEncoder, step: StepPlan): void {
    if (!step.base) return;
    encodeEmbeddingBackward(this.#ctx, pass, {
      ids: step.ws.ids,
      dOut: step.ws.grads.dh,
      dTable: step.base.embed,
      tokens: step.n,
      accumulate: true,
    });
  }

  /**
   * Gradients of a loss given by its cotangents; see `WebGpuQwen3.backward`.
   *
   * @param input The batch.
   * @param options Mode, cotangents, accumulation and LM-head blocking. The cotangents are
   * uploaded once the step's buffers are known to fit (after the allocation check), so they must
   * not change until the call settles.
   * @returns The gradients, log-probs and last hidden state.
   * @throws {TypeError} If no cotangent is given, or as
   * {@linkcode WebGpuQwen3Backward.encodeTrainStep}.
   * @throws {RangeError} If a cotangent has the wrong length.
   * @throws {GpuOutOfMemoryError} As {@linkcode WebGpuQwen3Backward.runTrainStep}.
   *
   * @example Full fine-tuning gradients of a hidden-state cotangent
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * const hidden = train.model.config.hiddenSize;
   * const { grads } = await train.backward({ inputIds: [[1, 2]] }, {
   *   mode: "full",
   *   dLastHidden: new Float32Array(2 * hidden).fill(1),
   * });
   * console.log(grads.has("model.norm.weight")); // true
   * ```
   */
  async backward(input: ForwardInput, options: GpuBackwardOptions): Promise<GpuBackwardResult> {
    const batch = checkBackwardOptions(options, input, this.model.config);
    const { dLogits, dLastHidden, dLogprobs } = options;
    const ctx = this.#ctx;
    const c = this.model.config;
    const { batch: B, seqLen: T } = batch;
    const n = B * T;
    const [H, V] = [c.hiddenSize, c.vocabSize];
    // Persistent upload buffers (not per-call ones: those would pile up bind groups). Their
    // writes wait for the loss hook, which runs after `runTrainStep`'s allocation check and
    // before the work that reads them is submitted: a write into a buffer that ran out of memory
    // would queue a validation error that the next, healthy step's readback would report.
    const writes: (() => void)[] = [];
    const upload = (data: ArrayLike<number>, label: string) => {
      const values = data instanceof Float32Array ? data : Float32Array.from(data);
      let b = this.#uploads.get(label);
      if (!b || b.size < values.byteLength) {
        if (b) {
          ctx.release(b);
          ctx.clearBindGroups();
        }
        b = ctx.createBuffer(values.byteLength, label);
        this.#uploads.set(label, b);
      }
      const buffer = b;
      writes.push(() =>
        ctx.device.queue.writeBuffer(buffer, 0, values as Float32Array<ArrayBuffer>)
      );
      return b;
    };
    const logitsBuf = dLogits ? upload(dLogits, "dLogits (upload)") : undefined;
    const hBuf = dLastHidden ? upload(dLastHidden, "dLastHidden (upload)") : undefined;
    let lpBuf: GPUBuffer | undefined;
    if (dLogprobs) {
      const flat = new Float32Array(n);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t + 1 < T; t++) flat[b * T + t] = dLogprobs[b * (T - 1) + t];
      }
      lpBuf = upload(flat, "dLogprobs (upload)");
    }
    const { grads, reads: [lp, last], balanceLoss } = await this.runTrainStep(input, {
      mode: options.mode,
      accumulate: options.accumulate,
      headChunkTokens: options.headChunkTokens,
      hiddenLayer: options.hiddenLayer,
      keepActivations: options.keepActivations,
      temperature: options.temperature,
      balanceWeight: options.balanceWeight,
      cotangents: { logprobs: !!lpBuf, lastHidden: !!hBuf, logits: !!logitsBuf },
      lossHook: (pass, _acts, cot) => {
        for (const write of writes.splice(0)) write();
        if (lpBuf) encodeAdd(ctx, pass, { x: lpBuf, y: cot.dLogprobs, n });
        if (hBuf) encodeAdd(ctx, pass, { x: hBuf, y: cot.dLastHidden, n: n * H });
        if (logitsBuf) encodeAdd(ctx, pass, { x: logitsBuf, y: cot.dLogits!, n: n * V });
      },
    }, ({ acts }) => [
      { buffer: acts.logprobs, offset: 0, size: n * 4 },
      { buffer: acts.lastHidden, offset: 0, size: n * H * 4 },
    ]);
    const lpAll = new Float32Array(lp);
    const logprobs = new Float32Array(B * (T - 1));
    for (let b = 0; b < B; b++) {
      logprobs.set(lpAll.subarray(b * T, b * T + T - 1), b * (T - 1));
    }
    return {
      grads,
      logprobs,
      lastHidden: new Float32Array(last),
      ...(balanceLoss === undefined ? {} : { balanceLoss }),
    };
  }

  /**
   * Records one training step into a new encoder, submits it, and reads back the gradients of
   * `options.mode` together with the caller's ranges of the step's buffers, in one readback: the
   * step's only GPU→CPU round trip (see `WebGpuQwen3.runTrainStep`).
   *
   * @param input The batch.
   * @param options As {@linkcode WebGpuQwen3Backward.encodeTrainStep}, and `readGradients`:
   * false leaves the gradients on the GPU (for a GPU-resident optimizer; the map is empty).
   * @param reads The ranges to read with the gradients, from the step's buffers (e.g. a loss
   * kernel's scalars); default none.
   * @returns The gradients by name (accumulated ones with `accumulate`), the ranges' bytes and,
   * when the step records one, HILO's balance loss (before the coefficient).
   * @throws {TypeError} As {@linkcode WebGpuQwen3Backward.encodeTrainStep}.
   * @throws {GpuOutOfMemoryError} If a buffer of the step (its workspace, gradients) does not fit:
   * found before anything is recorded or submitted, naming the buffer and its bytes; the step's
   * workspace is freed, so a smaller step can run after it.
   *
   * @example Gradients and the loss kernels' scalars in one readback
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * declare const hook: import("./qwen3_webgpu_backward.ts").LossHook, out: GPUBuffer;
   * const { grads, reads: [scalars] } = await train.runTrainStep({ inputIds: [[1, 2, 3]] }, {
   *   mode: "adapters",
   *   lossHook: hook,
   * }, () => [{ buffer: out, offset: 0, size: 40 }]);
   * ```
   */
  async runTrainStep(
    input: ForwardInput,
    options: TrainStepOptions & { readGradients?: boolean },
    reads: (step: TrainStepBuffers) => readonly ReadbackRange[] = () => [],
  ): Promise<{ grads: Map<string, Float32Array>; reads: ArrayBuffer[]; balanceLoss?: number }> {
    // The step's buffers, then their out-of-memory check (error scopes only: no GPU round trip),
    // so that a workspace that does not fit is named before anything is recorded or submitted.
    this.#checkTrainStep(options);
    await this.#allocateChecked(input, options);
    // Recorded with no await since the check: the workspace is the one checked (or, if a
    // concurrent `encodeTrainStep` grew it meanwhile, that one, which #allocate returns).
    const rec = new SubmitSplitter(
      this.#ctx,
      this.#ctx.device.createCommandEncoder({ label: "train step" }),
      // A WebGpuQwen3's setting; other weights get the adapter's default.
      (this.model as Partial<{ submitEveryLayers: number }>).submitEveryLayers ??
        defaultSubmitEveryLayers(this.#ctx),
      "train step",
    );
    const step = this.#encodeTrainStep(rec, input, options);
    const enc = rec.encoder;
    const extra = [...reads(step)];
    const nExtra = extra.length;
    if (step.balanceTotal) extra.push({ buffer: step.balanceTotal, offset: 0, size: 4 });
    const params = options.readGradients === false ? [] : this.gradients(options.mode);
    const ranges: ReadbackRange[] = [
      ...extra,
      ...params.map((p) => ({ buffer: p.grad, offset: 0, size: p.n * 4 })),
    ];
    const bytes = await readback(this.#ctx, ranges, enc, {
      what: `train step (${options.mode}) of ${input.inputIds.length}×` +
        `${input.inputIds[0]?.length ?? 0} tokens`,
    });
    return {
      grads: gather(params, bytes.slice(extra.length)),
      reads: bytes.slice(0, nExtra),
      ...(step.balanceTotal ? { balanceLoss: new Float32Array(bytes[nExtra])[0] } : {}),
    };
  }

  /**
   * Zeroes every gradient buffer that exists (adapters and base weights).
   *
   * @param encoder A command encoder to record into; default one submitted at once.
   *
   * @example Zero before accumulating
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * train.zeroGrads();
   * ```
   */
  zeroGrads(encoder?: GPUCommandEncoder): void {
    const enc = encoder ?? this.#ctx.device.createCommandEncoder({ label: "zero grads" });
    this.model.adapters?.zeroGrads(enc);
    for (const b of this.#baseGradBuffers()) enc.clearBuffer(b);
    if (!encoder) this.#ctx.device.queue.submit([enc.finish()]);
  }

  /**
   * The trainable tensors of a mode with their gradient buffers (allocated if needed).
   *
   * @param mode `"adapters"` (LoRA matrices) or `"full"` (base weights, then LoRA matrices).
   * @returns One entry per buffer: split weights give one per row block.
   * @throws {TypeError} If the mode is unknown, or `"adapters"` mode has no adapters.
   *
   * @example Feed a GPU optimizer
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * for (const p of train.gradients("adapters")) console.log(p.name, p.n);
   * ```
   */
  gradients(mode: GpuBackwardMode): GpuParameter[] {
    checkMode(mode);
    checkFullF16(this.model, mode, "list gradients");
    const model = this.model;
    const lora = model.adapters;
    if (mode === "adapters" && lora === null) {
      throw new TypeError(
        `Cannot list gradients: mode "adapters" needs adapters (call setAdapters first)`,
      );
    }
    const out: GpuParameter[] = [];
    if (mode === "full") {
      const g = this.#baseGrads();
      const mat = (w: GpuMatrix, gw: GpuMatrix) => {
        w.chunks.forEach((chunk, j) => {
          out.push({
            name: w.name,
            param: chunk.buffer,
            paramOffset: chunk.offset ?? 0,
            grad: gw.chunks[j].buffer,
            n: chunk.rows * w.cols,
            offset: chunk.rowStart * w.cols,
          });
        });
      };
      const vec = (name: string, param: GPUBuffer, grad: GPUBuffer) =>
        out.push({ name, param, paramOffset: 0, grad, n: param.size / 4, offset: 0 });
      mat(model.embedTokens, g.embed);
      model.layers.forEach((w, l) => {
        const gl = g.layers[l];
        for (const spec of LAYER_TENSORS) {
          const [p, gp] = [w[spec.field], gl[spec.field]];
          if (spec.projection) mat(p as GpuMatrix, gp as GpuMatrix);
          else vec(layerTensorName(l, spec), p as GPUBuffer, gp as GPUBuffer);
        }
      });
      vec("model.norm.weight", model.norm, g.norm);
      if (model.lmHead !== model.embedTokens) mat(model.lmHead, g.lmHead);
    }
    if (lora) {
      for (const t of lora.tensors()) out.push({ ...t, paramOffset: 0, offset: 0 });
    }
    return out;
  }

  /**
   * Reads every gradient that exists back (one readback).
   *
   * @returns Gradients by name (base weights whole, not per row block).
   *
   * @example Inspect accumulated gradients
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * console.log([...(await train.readGradients()).keys()]);
   * ```
   */
  async readGradients(): Promise<Map<string, Float32Array>> {
    const params: GpuParameter[] = [];
    if (this.#base) params.push(...this.gradients("full"));
    else if (this.model.adapters?.hasGrads) params.push(...this.gradients("adapters"));
    const bytes = await readback(
      this.#ctx,
      params.map((p) => ({ buffer: p.grad, offset: 0, size: p.n * 4 })),
      undefined,
      { what: "reading the gradients" },
    );
    return gather(params, bytes);
  }

  /**
   * Frees the step workspace (saved residuals, per-layer scratch, logits blocks, cotangents and
   * `backward`'s upload buffers), e.g. while generating rollouts; gradients are kept, and the
   * next step allocates the workspace again.
   *
   * @example Free training activations before generation
   * ```ts ignore
   * declare const train: import("./qwen3_webgpu_backward.ts").WebGpuQwen3Backward;
   * train.releaseWorkspace();
   * ```
   */
  releaseWorkspace(): void {
    this.#freeWorkspace();
    this.#freeUploads();
  }

  /** Frees the workspace and the base-weight gradients. */
  dispose(): void {
    this.#freeWorkspace();
    this.#freeUploads();
    this.#freeBaseGrads();
    this.#ctx.clearBindGroups();
  }

  #freeBaseGrads(): void {
    if (this.#base === undefined) return;
    for (const b of this.#baseGradBuffers()) this.#ctx.release(b);
    this.#base = undefined;
    this.#ctx.clearBindGroups();
  }

  /** The base-weight gradient buffers (full fine-tuning), allocated once. */
  #baseGrads(): BaseGrads {
    if (this.#base) return this.#base;
    const ctx = this.#ctx;
    const model = this.model;
    const zerosLike = (m: GpuMatrix): GpuMatrix => ({
      name: m.name,
      rows: m.rows,
      cols: m.cols,
      chunks: m.chunks.map((chunk) => ({
        buffer: ctx.createBuffer(chunk.rows * m.cols * 4, `grad.${m.name}[${chunk.rowStart}:]`),
        rowStart: chunk.rowStart,
        rows: chunk.rows,
      })),
    });
    const vec = (b: GPUBuffer, name: string) => ctx.createBuffer(b.size, `grad.${name}`);
    const embed = zerosLike(model.embedTokens);
    this.#base = {
      embed,
      lmHead: model.lmHead === model.embedTokens ? embed : zerosLike(model.lmHead),
      norm: vec(model.norm, "model.norm.weight"),
      layers: model.layers.map((w, l) =>
        Object.fromEntries(LAYER_TENSORS.map((spec) => {
          const p = w[spec.field];
          const g = spec.projection
            ? zerosLike(p as GpuMatrix)
            : vec(p as GPUBuffer, layerTensorName(l, spec));
          return [spec.field, g];
        })) as unknown as GpuLayerWeights
      ),
    };
    return this.#base;
  }

  #baseGradBuffers(): GPUBuffer[] {
    const g = this.#base;
    if (!g) return [];
    const out = new Set<GPUBuffer>();
    const mat = (m: GpuMatrix) => m.chunks.forEach((c) => out.add(c.buffer));
    mat(g.embed);
    mat(g.lmHead);
    out.add(g.norm);
    for (const l of g.layers) {
      for (const v of Object.values(l)) {
        if (v instanceof GPUBuffer) out.add(v);
        else mat(v as GpuMatrix);
      }
    }
    return [...out];
  }

  #workspace(tokens: number, rank: number, headRows: number, dLogits: boolean): TrainWorkspace {
    const old = this.#ws;
    if (
      old && old.tokens >= tokens && old.rank >= rank && old.headRows >= headRows &&
      (old.dLogits || !dLogits)
    ) {
      return old;
    }
    const n = Math.max(tokens, old?.tokens ?? 0);
    const r = Math.max(rank, old?.rank ?? 0, 1);
    const hr = Math.max(headRows, old?.headRows ?? 0);
    const wantLogits = dLogits || (old?.dLogits ?? false);
    this.#freeWorkspace();
    const ctx = this.#ctx;
    // A buffer above one binding throws part-way: the ones made before it are freed then.
    const made: GPUBuffer[] = [];
    const buf = (elements: number, label: string) => {
      const b = trainBuffer(ctx, elements, label, n);
      made.push(b);
      return b;
    };
    try {
      this.#ws = this.#newWorkspace(n, r, hr, wantLogits, buf);
    } catch (error) {
      for (const b of made) ctx.release(b);
      throw error;
    }
    return this.#ws;
  }

  /** The buffers of a workspace for `n` tokens, made with `buf`. */
  #newWorkspace(
    n: number,
    r: number,
    hr: number,
    wantLogits: boolean,
    buf: (elements: number, label: string) => GPUBuffer,
  ): TrainWorkspace {
    const c = this.model.config;
    const [H, I] = [c.hiddenSize, c.intermediateSize];
    const qd = c.numAttentionHeads * c.headDim;
    const kvd = c.numKeyValueHeads * c.headDim;
    const normRows = n * Math.max(c.numAttentionHeads, 1);
    const partials = Math.max(
      Math.ceil(n / RMS_NORM_BACKWARD_BLOCK_ROWS) * H,
      Math.ceil(normRows / RMS_NORM_BACKWARD_BLOCK_ROWS) * c.headDim,
    );
    return {
      tokens: n,
      rank: r,
      headRows: hr,
      dLogits: wantLogits,
      ids: buf(n, "train.ids"),
      mask: buf(n, "train.mask"),
      positions: buf(n, "train.positions"),
      targets: buf(n, "train.targets"),
      hs: Array.from({ length: c.numHiddenLayers + 1 }, (_, l) => buf(n * H, `train.h${l}`)),
      lastHidden: buf(n * H, "train.last_hidden"),
      logprobs: buf(n, "train.logprobs"),
      lse: buf(n, "train.lse"),
      entropy: buf(n, "train.entropy"),
      logits: buf(hr * c.vocabSize, "train.logits"),
      dLogprobs: buf(n, "train.d_logprobs"),
      dLastHidden: buf(n * H, "train.d_last_hidden"),
      dLogitsBuf: wantLogits ? buf(n * c.vocabSize, "train.d_logits") : undefined,
      hMid: buf(n * H, "train.h_mid"),
      kept: [],
      keptLogits: [],
      acts: {
        x1: buf(n * H, "train.x1"),
        x2: buf(n * H, "train.x2"),
        qRaw: buf(n * qd, "train.q_raw"),
        kRaw: buf(n * kvd, "train.k_raw"),
        q: buf(n * qd, "train.q"),
        k: buf(n * kvd, "train.k"),
        v: buf(n * kvd, "train.v"),
        att: buf(n * qd, "train.att"),
        gate: buf(n * I, "train.gate"),
        up: buf(n * I, "train.up"),
        act: buf(n * I, "train.act"),
        loraScratch: buf(n * r, "train.lora_u"),
      },
      grads: {
        loraDu: buf(n * r, "train.lora_du"),
        dh: buf(n * H, "train.dh"),
        dx: buf(n * H, "train.dx"),
        dAct: buf(n * I, "train.d_act"),
        dGate: buf(n * I, "train.d_gate"),
        dUp: buf(n * I, "train.d_up"),
        dAtt: buf(n * qd, "train.d_att"),
        dq: buf(n * qd, "train.dq"),
        dk: buf(n * kvd, "train.dk"),
        dv: buf(n * kvd, "train.dv"),
        stats: buf(n * c.numAttentionHeads * 2, "train.att_stats"),
        rstd: buf(normRows, "train.rstd"),
        partials: buf(partials, "train.norm_partials"),
      },
    };
  }

  #freeUploads(): void {
    for (const b of this.#uploads.values()) this.#ctx.release(b);
    this.#uploads.clear();
  }

  #freeWorkspace(): void {
    const ws = this.#ws;
    if (!ws) return;
    const bufs = new Set<GPUBuffer>();
    const add = (v: unknown) => {
      if (v instanceof GPUBuffer) bufs.add(v);
      else if (Array.isArray(v)) v.forEach(add);
      else if (v && typeof v === "object") Object.values(v).forEach(add);
    };
    add(ws);
    for (const b of bufs) this.#ctx.release(b);
    this.#ws = undefined;
    this.#ctx.clearBindGroups();
  }
}

/** A workspace buffer of `elements` floats, checked against one storage binding. */
function trainBuffer(ctx: GpuContext, elements: number, label: string, tokens: number): GPUBuffer {
  const bytes = elements * 4;
  if (bytes > ctx.gpu.maxBindingSize) {
    throw new RangeError(
      `Cannot record a training step: buffer "${label}" for ${tokens} tokens needs ${bytes} ` +
        `bytes, more than one storage binding (${ctx.gpu.maxBindingSize}); use fewer tokens ` +
        `per micro-batch`,
    );
  }
  return ctx.createBuffer(bytes, label);
}

/** Joins per-buffer gradients into whole tensors by name. */
function gather(
  params: readonly GpuParameter[],
  bytes: readonly ArrayBuffer[],
): Map<string, Float32Array> {
  const sizes = new Map<string, number>();
  for (const p of params) sizes.set(p.name, Math.max(sizes.get(p.name) ?? 0, p.offset + p.n));
  const out = new Map<string, Float32Array>();
  params.forEach((p, i) => {
    let t = out.get(p.name);
    if (!t) {
      t = new Float32Array(sizes.get(p.name)!);
      out.set(p.name, t);
    }
    t.set(new Float32Array(bytes[i]), p.offset);
  });
  return out;
}
