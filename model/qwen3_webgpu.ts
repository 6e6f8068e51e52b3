/**
 * The WebGPU backend: the Qwen3 forward pass as an ordered list of WGSL kernel launches over
 * preallocated activations, recorded into one command encoder and read back once; LoRA adapters
 * on any projection ({@linkcode WebGpuQwen3.setAdapters}); and the training step (forward, a
 * caller's loss kernels, backward with per-layer recomputation) of `qwen3_webgpu_backward.ts`.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import { type GpuMatrix, uploadMatrix } from "../gpu/matrix.ts";
import { readback, type ReadbackRange } from "../gpu/readback.ts";
import { checkLoraFits, type Lora } from "../adapters/lora.ts";
import type { LoraTarget } from "../adapters/lora_config.ts";
import { encodeLoraForward, GpuLora } from "../adapters/gpu_lora.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { encodeAttention } from "../kernels/attention/attention.ts";
import { encodeEmbedding } from "../kernels/embedding/embedding.ts";
import { encodeLogprob } from "../kernels/logprob/logprob.ts";
import { encodeMatmul } from "../kernels/matmul/matmul.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import { encodeRope } from "../kernels/rope/rope.ts";
import { ropeTable } from "../kernels/rope/rope_ref.ts";
import { encodeSwiglu } from "../kernels/swiglu/swiglu.ts";
import type { Qwen3Config } from "./config.ts";
import { type ForwardInput, packBatch, type PackedBatch } from "./forward_input.ts";
import type { ForwardOutput, Qwen3Model, TokenLogprobsOutput } from "./model.ts";
import { dropLastPosition } from "./qwen3_cpu.ts";
import {
  type GpuBackwardOptions,
  type GpuBackwardResult,
  type GpuParameter,
  type TrainStepBuffers,
  type TrainStepOptions,
  WebGpuQwen3Backward,
} from "./qwen3_webgpu_backward.ts";
import type { Qwen3Weights } from "./weights.ts";

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

/** One decoder layer's weights on the GPU. */
export interface GpuLayerWeights {
  /** RMSNorm before attention `[hidden]`. */
  inputLayernorm: GPUBuffer;
  /** Projections `[out, in]`. */
  qProj: GpuMatrix;
  /** Key projection. */
  kProj: GpuMatrix;
  /** Value projection. */
  vProj: GpuMatrix;
  /** Output projection. */
  oProj: GpuMatrix;
  /** Per-head query norm `[headDim]`. */
  qNorm: GPUBuffer;
  /** Per-head key norm `[headDim]`. */
  kNorm: GPUBuffer;
  /** RMSNorm before the MLP `[hidden]`. */
  postAttentionLayernorm: GPUBuffer;
  /** MLP gate projection. */
  gateProj: GpuMatrix;
  /** MLP up projection. */
  upProj: GpuMatrix;
  /** MLP down projection. */
  downProj: GpuMatrix;
}

/** The weight of each projection in {@linkcode GpuLayerWeights}. */
const PROJECTION_FIELD: Record<LoraTarget, keyof GpuLayerWeights> = {
  q_proj: "qProj",
  k_proj: "kProj",
  v_proj: "vProj",
  o_proj: "oProj",
  gate_proj: "gateProj",
  up_proj: "upProj",
  down_proj: "downProj",
};

/** Per-layer activation buffers of {@linkcode WebGpuQwen3.encodeLayer}, `[tokens, …]` each. */
export interface LayerActivationBuffers {
  /** `input_layernorm` output `[tokens, hidden]` (q/k/v projections' input). */
  x1: GPUBuffer;
  /** `post_attention_layernorm` output `[tokens, hidden]` (may be `x1` when not kept). */
  x2: GPUBuffer;
  /** q_proj output `[tokens, heads·headDim]`. */
  qRaw: GPUBuffer;
  /** k_proj output `[tokens, kvHeads·headDim]`. */
  kRaw: GPUBuffer;
  /** Queries after q_norm and RoPE. */
  q: GPUBuffer;
  /** Keys after k_norm and RoPE. */
  k: GPUBuffer;
  /** v_proj output. */
  v: GPUBuffer;
  /** Attention output (o_proj's input). */
  att: GPUBuffer;
  /** gate_proj output `[tokens, intermediate]`. */
  gate: GPUBuffer;
  /** up_proj output. */
  up: GPUBuffer;
  /** `silu(gate)·up` (down_proj's input). */
  act: GPUBuffer;
  /** At least `tokens · adapters.maxRank` floats; needed when adapters are set. */
  loraScratch?: GPUBuffer;
}

/** Arguments of {@linkcode WebGpuQwen3.encodeLayer}. */
export interface EncodeLayerArgs {
  /** Decoder layer index. */
  layer: number;
  /** Residual stream entering the layer `[tokens, hidden]`. */
  hIn: GPUBuffer;
  /** Receives the residual stream after attention (`hIn` itself: updated in place). */
  hMid: GPUBuffer;
  /**
   * Receives the layer's output (`hMid` itself: in place); null stops after SwiGLU (the
   * backward's recomputation needs nothing later).
   */
  hOut: GPUBuffer | null;
  /** The layer's activations. */
  acts: LayerActivationBuffers;
  /** Key mask `[batch, seqLen]` (u32). */
  mask: GPUBuffer;
  /** Positions `[batch, seqLen]` (u32). */
  positions: GPUBuffer;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/** Arguments of {@linkcode WebGpuQwen3.encodeProjection}. */
export interface ProjectionArgs {
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: LoraTarget;
  /** Input `[m, in]`. */
  x: GPUBuffer;
  /** Output `[m, out]`. */
  y: GPUBuffer;
  /** Rows. */
  m: number;
  /** Add to `y` (a residual connection); default false. */
  accumulate?: boolean;
  /** At least `m · adapters.maxRank` floats; needed when the projection has an adapter. */
  loraScratch?: GPUBuffer;
}

/** Activation buffers for a batch of `tokens` tokens (reused while shapes fit). */
interface Workspace {
  tokens: number;
  /** Floats per token of `loraU` (the adapters' largest rank; 0 without adapters). */
  rank: number;
  loraU?: GPUBuffer;
  ids: GPUBuffer;
  mask: GPUBuffer;
  positions: GPUBuffer;
  targets: GPUBuffer;
  h: GPUBuffer;
  x: GPUBuffer;
  qRaw: GPUBuffer;
  kRaw: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  att: GPUBuffer;
  gate: GPUBuffer;
  up: GPUBuffer;
  act: GPUBuffer;
  logits?: GPUBuffer;
  logprobs: GPUBuffer;
  lse: GPUBuffer;
  /** `[layers + 1, tokens, hidden]` snapshots, made when hidden states are asked for. */
  hidden?: GPUBuffer;
}

/** Options of the {@linkcode WebGpuQwen3} constructor. */
export interface WebGpuQwen3Options {
  /** Largest row block of a weight matrix in bytes; default the device's binding limit. */
  maxChunkBytes?: number;
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
export class WebGpuQwen3 implements Qwen3Model {
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

  /**
   * Uploads the weights.
   *
   * @param ctx The GPU context.
   * @param config The model config.
   * @param weights The weights (float32).
   * @param options `maxChunkBytes`: largest row block of a weight matrix (default: the device's
   * storage binding limit); matrices above it are split.
   */
  constructor(
    ctx: GpuContext,
    config: Qwen3Config,
    weights: Qwen3Weights,
    options: WebGpuQwen3Options = {},
  ) {
    this.ctx = ctx;
    this.config = config;
    const c = config;
    const mat = (name: string, data: Float32Array, rows: number, cols: number) =>
      uploadMatrix(ctx, { name, data, rows, cols }, { maxChunkBytes: options.maxChunkBytes });
    this.embedTokens = mat(
      "model.embed_tokens.weight",
      weights.embedTokens,
      c.vocabSize,
      c.hiddenSize,
    );
    this.lmHead = weights.lmHead === weights.embedTokens
      ? this.embedTokens
      : mat("lm_head.weight", weights.lmHead, c.vocabSize, c.hiddenSize);
    this.norm = ctx.upload(weights.norm, "model.norm.weight");
    const [hsz, qd, kvd, inter] = [
      c.hiddenSize,
      c.numAttentionHeads * c.headDim,
      c.numKeyValueHeads * c.headDim,
      c.intermediateSize,
    ];
    this.layers = weights.layers.map((w, i) => {
      const p = `model.layers.${i}`;
      return {
        inputLayernorm: ctx.upload(w.inputLayernorm, `${p}.input_layernorm.weight`),
        qProj: mat(`${p}.self_attn.q_proj.weight`, w.qProj, qd, hsz),
        kProj: mat(`${p}.self_attn.k_proj.weight`, w.kProj, kvd, hsz),
        vProj: mat(`${p}.self_attn.v_proj.weight`, w.vProj, kvd, hsz),
        oProj: mat(`${p}.self_attn.o_proj.weight`, w.oProj, hsz, qd),
        qNorm: ctx.upload(w.qNorm, `${p}.self_attn.q_norm.weight`),
        kNorm: ctx.upload(w.kNorm, `${p}.self_attn.k_norm.weight`),
        postAttentionLayernorm: ctx.upload(
          w.postAttentionLayernorm,
          `${p}.post_attention_layernorm.weight`,
        ),
        gateProj: mat(`${p}.mlp.gate_proj.weight`, w.gateProj, inter, hsz),
        upProj: mat(`${p}.mlp.up_proj.weight`, w.upProj, inter, hsz),
        downProj: mat(`${p}.mlp.down_proj.weight`, w.downProj, hsz, inter),
      };
    });
    this.ropeTable = ctx.upload(
      ropeTable(c.maxPositionEmbeddings, { d: c.headDim, theta: c.ropeTheta }),
      "rope_table",
    );
  }

  /** The adapter this model runs on. */
  get device(): string {
    return this.ctx.gpu.description;
  }

  /**
   * Runs the model over a batch: one submit, one readback.
   *
   * @param input The batch.
   * @returns Logits and, when asked, hidden states.
   */
  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const batch = packBatch(input, this.config);
    const n = batch.batch * batch.seqLen;
    const ws = this.#workspace(n, { logits: true, hidden: input.outputHiddenStates ?? false });
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
    const [logits, ...hidden] = await readback(this.ctx, ranges, enc);
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
   * @returns `[batch, seqLen − 1]` log-probs.
   */
  async tokenLogprobs(input: ForwardInput): Promise<TokenLogprobsOutput> {
    const batch = packBatch(input, this.config);
    const n = batch.batch * batch.seqLen;
    const ws = this.#workspace(n, { logits: true, hidden: false });
    const enc = this.#record(batch, ws, { logits: true, hidden: false, logprobs: true });
    const ranges: ReadbackRange[] = [{ buffer: ws.logprobs, offset: 0, size: n * 4 }];
    if (input.outputHiddenStates) {
      ranges.push({ buffer: ws.x, offset: 0, size: n * this.config.hiddenSize * 4 });
    }
    const [lp, last] = await readback(this.ctx, ranges, enc);
    return {
      logprobs: dropLastPosition(new Float32Array(lp), batch.batch, batch.seqLen),
      lastHidden: last ? new Float32Array(last) : undefined,
      batch: batch.batch,
      seqLen: batch.seqLen,
    };
  }

  /** Frees every weight, adapter, gradient and activation buffer. */
  dispose(): void {
    this.#freeWorkspace();
    this.#backward?.dispose();
    this.#backward = undefined;
    this.#lora?.dispose();
    this.#lora = null;
    const { ctx } = this;
    const mats = new Set<GpuMatrix>([this.embedTokens, this.lmHead]);
    for (const l of this.layers) {
      for (const m of [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj]) {
        mats.add(m);
      }
      for (const b of [l.inputLayernorm, l.qNorm, l.kNorm, l.postAttentionLayernorm]) {
        ctx.release(b);
      }
    }
    for (const m of mats) for (const c of m.chunks) ctx.release(c.buffer);
    ctx.release(this.norm);
    ctx.release(this.ropeTable);
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
   * @param lora The adapters, or null.
   * @throws {RangeError} If the adapters do not fit this model (see `checkLoraFits`).
   *
   * @example Apply the fixture's PEFT adapter
   * ```ts ignore
   * import { loadPeftAdapter } from "../adapters/peft_io.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.setAdapters(await loadPeftAdapter("tests/fixtures/qwen3-tiny/adapter", model.config));
   * ```
   */
  setAdapters(lora: Lora | null): void {
    if (lora !== null) checkLoraFits(lora, this.config);
    this.#lora?.dispose();
    this.#lora = lora === null ? null : new GpuLora(this.ctx, lora);
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
   * @param args Layer, projection, operands and LoRA scratch.
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
    const w = this.layers[args.layer][PROJECTION_FIELD[args.target]] as GpuMatrix;
    encodeLinear(this.ctx, pass, {
      x: args.x,
      w,
      y: args.y,
      m: args.m,
      accumulate: args.accumulate,
    });
    const module = this.#lora?.module(args.layer, args.target);
    if (!module) return;
    if (!args.loraScratch) {
      throw new TypeError(
        `Cannot record "${module.name}": it has a LoRA adapter, so option "loraScratch" (at ` +
          `least ${args.m * this.#lora!.maxRank} floats) is required: current value is undefined`,
      );
    }
    encodeLoraForward(this.ctx, pass, {
      module,
      x: args.x,
      y: args.y,
      m: args.m,
      scratch: args.loraScratch,
    });
  }

  /**
   * Records one decoder layer: input norm, q/k/v projections, q/k norms, RoPE, attention, o
   * projection added to the residual, post-attention norm, gate/up projections, SwiGLU, down
   * projection added to the residual (every projection with its adapter).
   *
   * @param pass The compute pass being recorded.
   * @param args Layer, residual buffers, activations and batch layout.
   *
   * @example Layer 0 in place on the residual stream `h`
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare const pass: GPUComputePassEncoder, h: GPUBuffer, mask: GPUBuffer, pos: GPUBuffer;
   * declare const acts: import("./qwen3_webgpu.ts").LayerActivationBuffers;
   * model.encodeLayer(pass, {
   *   layer: 0, hIn: h, hMid: h, hOut: h, acts, mask, positions: pos, batch: 1, seqLen: 8,
   * });
   * ```
   */
  encodeLayer(pass: GPUComputePassEncoder, args: EncodeLayerArgs): void {
    const { ctx } = this;
    const c = this.config;
    const { layer, hIn, hMid, hOut, acts: a } = args;
    const n = args.batch * args.seqLen;
    const [hsz, hq, hkv, d, inter, eps] = [
      c.hiddenSize,
      c.numAttentionHeads,
      c.numKeyValueHeads,
      c.headDim,
      c.intermediateSize,
      c.rmsNormEps,
    ];
    const w = this.layers[layer];
    const proj = (target: LoraTarget, x: GPUBuffer, y: GPUBuffer, accumulate = false) =>
      this.encodeProjection(pass, {
        layer,
        target,
        x,
        y,
        m: n,
        accumulate,
        loraScratch: a.loraScratch,
      });
    encodeRmsNorm(ctx, pass, { x: hIn, w: w.inputLayernorm, y: a.x1, rows: n, d: hsz, eps });
    proj("q_proj", a.x1, a.qRaw);
    proj("k_proj", a.x1, a.kRaw);
    proj("v_proj", a.x1, a.v);
    encodeRmsNorm(ctx, pass, { x: a.qRaw, w: w.qNorm, y: a.q, rows: n * hq, d, eps });
    encodeRmsNorm(ctx, pass, { x: a.kRaw, w: w.kNorm, y: a.k, rows: n * hkv, d, eps });
    const rope = {
      positions: args.positions,
      table: this.ropeTable,
      d,
      maxPos: c.maxPositionEmbeddings,
    };
    encodeRope(ctx, pass, { ...rope, x: a.q, rows: n * hq, heads: hq });
    encodeRope(ctx, pass, { ...rope, x: a.k, rows: n * hkv, heads: hkv });
    encodeAttention(ctx, pass, {
      q: a.q,
      k: a.k,
      v: a.v,
      mask: args.mask,
      o: a.att,
      b: args.batch,
      tq: args.seqLen,
      s: args.seqLen,
      hq,
      hkv,
      d,
    });
    if (hMid !== hIn) encodeAdd(ctx, pass, { x: hIn, y: hMid, n: n * hsz });
    proj("o_proj", a.att, hMid, true);
    encodeRmsNorm(ctx, pass, {
      x: hMid,
      w: w.postAttentionLayernorm,
      y: a.x2,
      rows: n,
      d: hsz,
      eps,
    });
    proj("gate_proj", a.x2, a.gate);
    proj("up_proj", a.x2, a.up);
    encodeSwiglu(ctx, pass, { gate: a.gate, up: a.up, out: a.act, n: n * inter });
    if (hOut === null) return;
    if (hOut !== hMid) encodeAdd(ctx, pass, { x: hMid, y: hOut, n: n * hsz });
    proj("down_proj", a.act, hOut, true);
  }

  /**
   * Records a training step into `encoder`: the forward (keeping only each layer's input
   * residual, the final hidden state, the log-probs and log-sum-exps), then `options.lossHook`
   * (the caller's kernels that write the cotangents, from the activations, on the GPU), then the
   * backward (each layer's forward recomputed from its saved input), adding into the gradient
   * buffers. Submit it (or read back from it) before recording another step: the batch is
   * written with `queue.writeBuffer`. LoRA dropout is not applied (the adapters run as in
   * evaluation, whatever `lora_dropout` says).
   *
   * @param encoder The command encoder (outside any pass).
   * @param input The batch.
   * @param options Mode, accumulation, which cotangents the hook writes, and the hook.
   * @returns The step's activation and cotangent buffers (valid until the next step).
   * @throws {TypeError} If the mode is unknown, `"adapters"` mode has no adapters, or the
   * encoder already holds a step.
   *
   * @example A DAPO-style step whose loss kernel writes d loss / d logprobs on the GPU
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * declare function encodePgLossGrad(pass: GPUComputePassEncoder, lp: GPUBuffer, d: GPUBuffer): void;
   * const enc = model.ctx.device.createCommandEncoder();
   * model.encodeTrainStep(enc, { inputIds: [[1, 2, 3, 4]] }, {
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
  ): TrainStepBuffers {
    return this.#training().encodeTrainStep(encoder, input, options);
  }

  /**
   * Gradients of a loss given by its cotangents (on the logits, the final-norm hidden state
   * and/or the token log-probs): uploads them, records one training step, submits once and
   * reads the gradients back once. Keys as `cpuBackward`'s.
   *
   * @param input The batch.
   * @param options Mode, cotangents and accumulation.
   * @returns The gradients (accumulated ones with `accumulate`), log-probs and last hidden state.
   * @throws {TypeError} If no cotangent is given, or as {@linkcode WebGpuQwen3.encodeTrainStep}.
   * @throws {RangeError} If a cotangent has the wrong length.
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
  backward(input: ForwardInput, options: GpuBackwardOptions): Promise<GpuBackwardResult> {
    try {
      return this.#training().backward(input, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Zeroes every gradient buffer (adapters and base weights), recorded into `encoder` or, without
   * one, submitted at once.
   *
   * @param encoder A command encoder (outside any pass) to record into.
   *
   * @example Start accumulating k micro-batches
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.zeroGrads();
   * ```
   */
  zeroGrads(encoder?: GPUCommandEncoder): void {
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
    this.#freeWorkspace();
    this.#backward?.releaseWorkspace();
  }

  #training(): WebGpuQwen3Backward {
    this.#backward ??= new WebGpuQwen3Backward(this);
    return this.#backward;
  }

  /** Records the whole forward pass into a new encoder (not submitted). */
  #record(
    batch: PackedBatch,
    ws: Workspace,
    want: { logits: boolean; hidden: boolean; logprobs?: boolean },
  ): GPUCommandEncoder {
    const { ctx } = this;
    const c = this.config;
    const q = ctx.device.queue;
    q.writeBuffer(ws.ids, 0, batch.ids);
    q.writeBuffer(ws.mask, 0, batch.mask);
    q.writeBuffer(ws.positions, 0, batch.positions);
    q.writeBuffer(ws.targets, 0, batch.targets);
    const n = batch.batch * batch.seqLen;
    const [hsz, eps] = [c.hiddenSize, c.rmsNormEps];
    const enc = ctx.device.createCommandEncoder({ label: "forward" });
    let pass = enc.beginComputePass();
    const snapshot = (l: number, src: GPUBuffer) => {
      if (!want.hidden) return;
      pass.end();
      enc.copyBufferToBuffer(src, 0, ws.hidden!, l * n * hsz * 4, n * hsz * 4);
      pass = enc.beginComputePass();
    };

    encodeEmbedding(ctx, pass, { ids: ws.ids, table: this.embedTokens, out: ws.h, tokens: n });
    snapshot(0, ws.h);
    const acts: LayerActivationBuffers = { ...ws, x1: ws.x, x2: ws.x, loraScratch: ws.loraU };
    this.layers.forEach((_, l) => {
      this.encodeLayer(pass, {
        layer: l,
        hIn: ws.h,
        hMid: ws.h,
        hOut: ws.h,
        acts,
        mask: ws.mask,
        positions: ws.positions,
        batch: batch.batch,
        seqLen: batch.seqLen,
      });
      if (l < this.layers.length - 1) snapshot(l + 1, ws.h);
    });
    // The final-norm output stays in ws.x: HF's hidden_states[-1].
    encodeRmsNorm(ctx, pass, { x: ws.h, w: this.norm, y: ws.x, rows: n, d: hsz, eps });
    snapshot(this.layers.length, ws.x);
    if (want.logits) {
      encodeLinear(ctx, pass, { x: ws.x, w: this.lmHead, y: ws.logits!, m: n });
      if (want.logprobs) {
        encodeLogprob(ctx, pass, {
          logits: ws.logits!,
          targets: ws.targets,
          out: ws.logprobs,
          lse: ws.lse,
          rows: n,
          v: c.vocabSize,
        });
      }
    }
    pass.end();
    return enc;
  }

  #workspace(tokens: number, want: { logits: boolean; hidden: boolean }): Workspace {
    const c = this.config;
    const old = this.#ws;
    const rank = this.#lora?.maxRank ?? 0;
    if (
      old && old.tokens >= tokens && (!want.logits || old.logits) && (!want.hidden || old.hidden) &&
      old.rank >= rank
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
    const qd = c.numAttentionHeads * c.headDim;
    const kvd = c.numKeyValueHeads * c.headDim;
    const ws: Workspace = {
      tokens: n,
      rank,
      ids: buf(n, "ids"),
      mask: buf(n, "mask"),
      positions: buf(n, "positions"),
      targets: buf(n, "targets"),
      h: buf(n * c.hiddenSize, "h"),
      x: buf(n * c.hiddenSize, "x"),
      qRaw: buf(n * qd, "q_raw"),
      kRaw: buf(n * kvd, "k_raw"),
      q: buf(n * qd, "q"),
      k: buf(n * kvd, "k"),
      v: buf(n * kvd, "v"),
      att: buf(n * qd, "att"),
      gate: buf(n * c.intermediateSize, "gate"),
      up: buf(n * c.intermediateSize, "up"),
      act: buf(n * c.intermediateSize, "act"),
      logprobs: buf(n, "logprobs"),
      lse: buf(n, "lse"),
    };
    if (rank > 0) ws.loraU = buf(n * rank, "lora_u");
    if (want.logits || old?.logits) ws.logits = buf(n * c.vocabSize, "logits");
    if (want.hidden || old?.hidden) {
      ws.hidden = this.ctx.createBuffer((c.numHiddenLayers + 1) * n * c.hiddenSize * 4, "hidden");
    }
    this.#ws = ws;
    return ws;
  }

  #freeWorkspace(): void {
    if (!this.#ws) return;
    for (const b of Object.values(this.#ws)) if (b instanceof GPUBuffer) this.ctx.release(b);
    this.#ws = undefined;
    this.ctx.clearBindGroups();
  }
}

/** Arguments of {@linkcode encodeLinear}. */
export interface LinearArgs {
  /** Input `[m, w.cols]`. */
  x: GPUBuffer;
  /** Weight `[out, in]`, possibly split into row blocks. */
  w: GpuMatrix;
  /** Output `[m, w.rows]`. */
  y: GPUBuffer;
  /** Rows of `x`. */
  m: number;
  /** Add to `y` (a residual connection); default false. */
  accumulate?: boolean;
}

/**
 * Records `y = [y +] x · wᵀ` for a weight held in row blocks (one matmul per block, each writing
 * its own column range of `y`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands.
 *
 * @example Project 8 tokens
 * ```ts ignore
 * import { encodeLinear } from "./qwen3_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, y: GPUBuffer;
 * declare const w: import("../gpu/matrix.ts").GpuMatrix;
 * encodeLinear(ctx, pass, { x, w, y, m: 8 });
 * ```
 */
export function encodeLinear(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LinearArgs,
): void {
  for (const chunk of args.w.chunks) {
    encodeMatmul(ctx, pass, {
      x: args.x,
      w: chunk.buffer,
      y: args.y,
      m: args.m,
      n: chunk.rows,
      k: args.w.cols,
      ldy: args.w.rows,
      yCol: chunk.rowStart,
      accumulate: args.accumulate,
    });
  }
}
