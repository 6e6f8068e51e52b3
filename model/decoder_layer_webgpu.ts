/**
 * One Qwen3 decoder layer on the GPU, written once (web-rwkv's `dispatch_layer`):
 * {@linkcode encodeDecoderLayer} records the layer's forward (every projection with its LoRA
 * experts) for the model's forward, the training step's forward and its per-layer recomputation,
 * and generation (prefill and decode, with the KV cache as an option);
 * {@linkcode encodeDecoderLayerBackward} records its backward, op for op the forward in reverse.
 *
 * Both take named hook points (web-rwkv's `Hook`): a {@linkcode LayerHook} runs inside the pass
 * at `afterAttention` (the residual stream after the attention block) and `layerOutput` (after the
 * MLP block: the layer's output, HF's `hidden_states[layer + 1]`). In the forward it sees the
 * hidden state there ({@linkcode captureHidden} copies it into a buffer); in the backward it sees
 * d loss / d (that hidden state) and may add to it ({@linkcode addCotangent} injects a loss term's
 * cotangent there).
 *
 * @module
 */
import type { Binding, GpuContext } from "../gpu/context.ts";
import type { GpuMatrix, GpuMatrixChunk } from "../gpu/matrix.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { encodeAttention } from "../kernels/attention/attention.ts";
import { encodeAttentionBackward } from "../kernels/attention/attention_backward.ts";
import { encodeKvWrite } from "../kernels/kv_write/kv_write.ts";
import { encodeMoeBalanceStats } from "../kernels/moe_route/moe_balance.ts";
import { encodeMatmul } from "../kernels/matmul/matmul.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { encodeMatvec, type MatvecPrologue } from "../kernels/matvec/matvec.ts";
import { encodeQkNormRope } from "../kernels/qk_norm_rope/qk_norm_rope.ts";
import { encodeQkNormRopeBackward } from "../kernels/qk_norm_rope/qk_norm_rope_backward.ts";
import {
  encodeQkNormRopeKv,
  fusedQkvRows,
  qkNormRopeKvFits,
} from "../kernels/qk_norm_rope/qk_norm_rope_kv.ts";
import { encodeNormRopeBackward } from "../kernels/qk_norm_rope/norm_rope_backward.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import { encodeRmsNormBackward } from "../kernels/rms_norm/rms_norm_backward.ts";
import { encodeSwiglu, fusedGateUpRows } from "../kernels/swiglu/swiglu.ts";
import { encodeSwigluBackward } from "../kernels/swiglu/swiglu_backward.ts";
import type { Qwen3Config } from "./config.ts";
import { encodeLoraBackward, encodeLoraForward, type GpuLora } from "./lora_webgpu.ts";
import {
  FUSED_GROUPS,
  PROJECTION_FIELD,
  type ProjectionName,
  PROJECTIONS,
} from "./tensor_table.ts";

/** One decoder layer's weights on the GPU (the fields of `LAYER_TENSORS`). */
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
  /**
   * q_proj, k_proj and v_proj as one `[qDim + 2·kvDim, hidden]` weight (q rows, then k, then v,
   * with the three fields above views into it): the base weights as `WebGpuQwen3` stores them
   * (`fuseProjections`), or the merged ones `MergedAdapterWeights.view` gives. A decode step with
   * `acts.qkv` records one matvec for the three, then the adapter branch of each plain LoRA
   * member into its columns; with a HILO-routed member, one projection each, through the views.
   */
  qkvProj?: GpuMatrix;
  /**
   * gate_proj and up_proj as one `[2·intermediate, hidden]` weight (gate rows, then up), as
   * `qkvProj`: a decode step with `acts.gateUp` records one matvec for the two.
   */
  gateUpProj?: GpuMatrix;
}

/**
 * A Qwen3 model on the GPU as layers, the training step and generation read it: weights,
 * adapters and the RoPE table (`WebGpuQwen3` is one).
 */
export interface GpuModelWeights {
  /** The GPU context running the kernels. */
  readonly ctx: GpuContext;
  /** The model config. */
  readonly config: Qwen3Config;
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
  /** The LoRA adapters every projection applies, or null. */
  readonly adapters: GpuLora | null;
}

/** Per-layer activation buffers of {@linkcode encodeDecoderLayer}, `[tokens, …]` each. */
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
  /**
   * The fused q|k|v projection's output `[tokens, (heads + 2·kvHeads)·headDim]`: decode steps
   * over a layer with `qkvProj` use it (without it they record the three projections).
   */
  qkv?: GPUBuffer;
  /** The fused gate|up projection's output `[tokens, 2·intermediate]`, as `qkv` for `gateUpProj`. */
  gateUp?: GPUBuffer;
}

/** The buffers {@linkcode allocateLayerActivations} allocates: a layer's activations, and the
 * residual stream `h` and the normed input `x` (`x1` = `x2` = `x` where they are not kept). */
export type LayerActivationSet = Omit<LayerActivationBuffers, "x1" | "x2" | "loraScratch"> & {
  /** The residual stream `[tokens, hidden]`. */
  h: GPUBuffer;
  /** The normed input of the projections `[tokens, hidden]`. */
  x: GPUBuffer;
};

/**
 * Allocates the activation buffers of `tokens` rows of a decoder layer through `buf(elements,
 * label)`, which creates (and may size-check) one f32 buffer: the labels are `h`, `x`, `q_raw`,
 * `k_raw`, `q`, `k`, `v`, `att`, `gate`, `up`, `act`.
 *
 * @param config The model's shape.
 * @param tokens Rows of every buffer.
 * @param buf Creates a buffer of `elements` floats named `label`.
 * @returns The buffers.
 *
 * @example Buffers for 8 tokens
 * ```ts ignore
 * import { allocateLayerActivations } from "./decoder_layer_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const config: import("./config.ts").Qwen3Config;
 * const acts = allocateLayerActivations(config, 8, (n, label) => ctx.createBuffer(4 * n, label));
 * ```
 */
export function allocateLayerActivations(
  config: Pick<
    Qwen3Config,
    "hiddenSize" | "intermediateSize" | "numAttentionHeads" | "numKeyValueHeads" | "headDim"
  >,
  tokens: number,
  buf: (elements: number, label: string) => GPUBuffer,
): LayerActivationSet {
  const n = tokens;
  const qd = config.numAttentionHeads * config.headDim;
  const kvd = config.numKeyValueHeads * config.headDim;
  return {
    h: buf(n * config.hiddenSize, "h"),
    x: buf(n * config.hiddenSize, "x"),
    qRaw: buf(n * qd, "q_raw"),
    kRaw: buf(n * kvd, "k_raw"),
    q: buf(n * qd, "q"),
    k: buf(n * kvd, "k"),
    v: buf(n * kvd, "v"),
    att: buf(n * qd, "att"),
    gate: buf(n * config.intermediateSize, "gate"),
    up: buf(n * config.intermediateSize, "up"),
    act: buf(n * config.intermediateSize, "act"),
  };
}

/**
 * Whether `m` rows through a `k`-deep projection run as a skinny matmul (kernels/matvec) rather
 * than tiles: up to 32 rows when `k % 4 == 0`, where the vec4 matvec keeps 4 columns × 8 rows per
 * thread in registers (on llvmpipe 4-15 GFLOP/s at 1-32 rows against ≤ 2.7 for the tiles:
 * docs/perf.md, "Matmul: vec4 global reads, and the decode GEMV"); else (the scalar matvec) the
 * old rule: ≤ 4 rows, or ≤ 32 rows with `k ≥ 64·m`.
 */
function skinny(m: number, k: number): boolean {
  return m <= 4 || (m <= 32 && (k % 4 === 0 || m * 64 <= k));
}

/**
 * A row block of a weight as a binding: the buffer, or for a view into a larger buffer (fused
 * q|k|v and gate|up, base or merged) the block's bytes from its offset.
 */
function chunkBinding(w: GpuMatrix, chunk: GpuMatrixChunk): Binding {
  if (!chunk.offset) return chunk.buffer;
  const size = Math.ceil((chunk.rows * w.cols * (w.dtype === "f16" ? 2 : 4)) / 4) * 4;
  return { buffer: chunk.buffer, offset: chunk.offset, size };
}

/** Arguments of {@linkcode encodeLinear}. */
export interface LinearArgs {
  /** Input `[m, w.cols]`; with a `prologue`, written first (the prologue's output). */
  x: GPUBuffer;
  /** Weight `[out, in]`, possibly split into row blocks. */
  w: GpuMatrix;
  /** Output `[m, w.rows]`. */
  y: GPUBuffer;
  /** Rows of `x`. */
  m: number;
  /** Add to `y` (a residual connection); default false. */
  accumulate?: boolean;
  /**
   * Use the matvec kernel when the shape is skinny (≤ 32 rows with an inner dimension that is a
   * multiple of 4; else ≤ 4 rows, or ≤ 32 with an inner dimension ≥ 64·m), as generation does;
   * default false (always the tiled matmul).
   */
  matvec?: boolean;
  /**
   * The op that produces `x` (RMSNorm of raw rows, or SwiGLU of gate and up; see
   * `MatvecPrologue`, whose `write` is set here): on the vec4 matvec route (`matvec`, a skinny
   * shape, `w.cols % 4 == 0`) computed inside the first block's dispatch, which also writes `x`
   * (bit-identical to the separate kernel's output); elsewhere recorded first as its own
   * dispatch (`encodeRmsNorm` / `encodeSwiglu`). Default none: `x` is read as it is.
   */
  prologue?: MatvecPrologue;
}

/**
 * Records `y = [y +] x · wᵀ` for a weight held in row blocks (one matmul per block, each writing
 * its own column range of `y`), after the `prologue` that produces `x` when one is given.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands.
 *
 * @example Project 8 tokens
 * ```ts ignore
 * import { encodeLinear } from "./decoder_layer_webgpu.ts";
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
  const { m, prologue: pro } = args;
  const k = args.w.cols;
  const matvec = (args.matvec ?? false) && skinny(m, k);
  // The prologue goes into the vec4 matvec (the matvec route when k % 4 == 0).
  const fused = pro !== undefined && matvec && k % 4 === 0;
  if (pro?.kind === "rmsnorm" && !fused) {
    encodeRmsNorm(ctx, pass, { x: pro.h, w: pro.g, y: args.x, rows: m, d: k, eps: pro.eps });
  } else if (pro?.kind === "swiglu" && !fused) {
    // Rows `stride` apart (a fused gate|up output, each operand bound from its first row).
    const layout = pro.stride === undefined
      ? undefined
      : { cols: k, stride: pro.stride, gateOffset: 0, upOffset: 0 };
    encodeSwiglu(ctx, pass, { gate: pro.gate, up: pro.up, out: args.x, n: m * k, layout });
  }
  args.w.chunks.forEach((chunk, j) => {
    const w = chunkBinding(args.w, chunk);
    const op = {
      x: args.x,
      w,
      y: args.y,
      m,
      n: chunk.rows,
      k,
      ldy: args.w.rows,
      yCol: chunk.rowStart,
      accumulate: args.accumulate,
      wF16: args.w.dtype === "f16",
    };
    const prologue = fused ? { ...pro, write: j === 0 } : undefined;
    if (matvec) encodeMatvec(ctx, pass, { ...op, prologue });
    else encodeMatmul(ctx, pass, op);
  });
}

/** Arguments of {@linkcode encodeProjection}. */
export interface ProjectionArgs {
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: ProjectionName;
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
  /** As {@linkcode LinearArgs.matvec}, for the base weight and the adapter's `x·Aᵀ`. */
  matvec?: boolean;
  /** As {@linkcode LinearArgs.prologue}: the adapter reads `x` once the base projection wrote it. */
  prologue?: MatvecPrologue;
}

/**
 * Records one projection of a layer, `y = [y +] x·Wᵀ + Σ_e scale_e·(x·A_eᵀ)·B_eᵀ` (the sum over
 * the experts of the projection's adapter, if it has one).
 *
 * @param pass The compute pass being recorded.
 * @param model The model.
 * @param args Layer, projection, operands and LoRA scratch.
 * @throws {TypeError} If the projection has an adapter and no `loraScratch` is given.
 *
 * @example The query projection of layer 0 for 8 tokens
 * ```ts ignore
 * import { encodeProjection } from "./decoder_layer_webgpu.ts";
 * declare const model: import("./decoder_layer_webgpu.ts").GpuModelWeights;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, q: GPUBuffer, u: GPUBuffer;
 * encodeProjection(pass, model, { layer: 0, target: "q_proj", x, y: q, m: 8, loraScratch: u });
 * ```
 */
export function encodeProjection(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: ProjectionArgs,
): void {
  const w = model.layers[args.layer][PROJECTION_FIELD[args.target]] as GpuMatrix;
  const matvec = (args.matvec ?? false) && skinny(args.m, w.cols);
  const { x, y, m } = args;
  const { accumulate, prologue } = args;
  encodeLinear(model.ctx, pass, { x, w, y, m, accumulate, matvec, prologue });
  encodeAdapterBranch(pass, model, args, matvec);
}

/**
 * Records the adapter branch of a projection (`y += Σ_e scale_e·(x·A_eᵀ)·B_eᵀ`) if it has one:
 * into `y` as it is, or, with `out`, into the projection's columns of a fused output.
 */
function encodeAdapterBranch(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: Pick<ProjectionArgs, "layer" | "target" | "x" | "y" | "m" | "loraScratch">,
  matvec: boolean,
  out?: { ldy: number; yCol: number },
): void {
  const { x, y, m } = args;
  const lora = model.adapters;
  const module = lora?.module(args.layer, args.target);
  if (!module) return;
  if (!args.loraScratch) {
    throw new TypeError(
      `Cannot record "${module.name}": it has a LoRA adapter, so option "loraScratch" (at ` +
        `least ${m * lora!.maxRank} floats) is required: current value is undefined`,
    );
  }
  encodeLoraForward(model.ctx, pass, {
    module,
    x,
    y,
    m,
    scratch: args.loraScratch,
    matvec,
    ...out,
  });
}

/** The named points of a layer where hooks run. */
export type GpuLayerHookPoint = "afterAttention" | "layerOutput";

/** What a {@linkcode LayerHook} is given. */
export interface LayerHookState {
  /** Decoder layer index. */
  layer: number;
  /** Where in the layer. */
  point: GpuLayerHookPoint;
  /**
   * Forward: the residual stream there `[tokens, hidden]` (read it; do not write it). Backward:
   * d loss / d (that residual stream), which the hook may add to.
   */
  state: GPUBuffer;
  /** Floats of `state` in use (`tokens · hidden`). */
  elements: number;
}

/** Records dispatches into the layer's pass at a hook point (without ending the pass). */
export type LayerHook = (pass: GPUComputePassEncoder, at: LayerHookState) => void;

/** Hooks by point; a missing point runs nothing. */
export type LayerHooks = Partial<Record<GpuLayerHookPoint, LayerHook>>;

/**
 * A forward hook that copies the hidden state at its point into `dst`.
 *
 * @param ctx The GPU context.
 * @param dst At least `tokens · hidden` floats.
 * @returns The hook.
 *
 * @example Keep layer 2's output of a forward
 * ```ts ignore
 * import { captureHidden } from "./decoder_layer_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const dst: GPUBuffer;
 * const hooks = { layerOutput: captureHidden(ctx, dst) }; // pass as `hooks` for layer 2
 * ```
 */
export function captureHidden(ctx: GpuContext, dst: Binding): LayerHook {
  return (pass, at) => encodeAdd(ctx, pass, { x: at.state, y: dst, n: at.elements });
}

/**
 * A backward hook that adds `cotangent` (d loss / d (the hidden state at its point), e.g. a
 * Hidden-Align term's on a layer's output) to the residual-stream gradient there.
 *
 * @param ctx The GPU context.
 * @param cotangent `[tokens, hidden]` floats.
 * @returns The hook.
 *
 * @example Inject a cotangent at layer 2's output
 * ```ts ignore
 * import { addCotangent } from "./decoder_layer_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const dHidden: GPUBuffer;
 * const hooks = { layerOutput: addCotangent(ctx, dHidden) }; // backward hooks of layer 2
 * ```
 */
export function addCotangent(ctx: GpuContext, cotangent: Binding): LayerHook {
  return (pass, at) =>
    encodeAdd(ctx, pass, { x: cotangent, y: at.state, n: at.elements, accumulate: true });
}

/** The KV cache of one layer, for generation (see `KvCache`). */
export interface LayerKvCache {
  /** Keys `[cacheRows, slots, width]`. */
  k: GPUBuffer;
  /** Values, as the keys. */
  v: GPUBuffer;
  /** Slot mask `[cacheRows, slots]` (u32), set by the write as slots fill. */
  mask: GPUBuffer;
  /** Decode cursor `[slot, step]` on the GPU. */
  ctrl: GPUBuffer;
  /** Slots per row. */
  slots: number;
  /** Values per slot (`kvHeads · headDim`). */
  width: number;
  /** Keys and values are f16 packed two per 32-bit word (`KvCache` dtype `"f16"`); default f32. */
  f16?: boolean;
  /** Prefill: the first cache row written (0 when decoding). */
  row0: number;
  /**
   * Decode (one token per row, written at the GPU cursor): attend over the cache slots
   * `< kvLen`. Undefined: prefill, attention over the fresh keys with `mask`.
   */
  kvLen?: number;
  /**
   * Decode: scratch of the split-KV attention kernel (`attentionScratchSize` floats for the
   * rows and `kvLen`); without it decode attention keeps one workgroup per (row, head).
   */
  attnScratch?: GPUBuffer;
}

/** Arguments of {@linkcode encodeDecoderLayer}. */
export interface DecoderLayerArgs {
  /** Decoder layer index. */
  layer: number;
  /** Residual stream entering the layer `[tokens, hidden]`. */
  hIn: GPUBuffer;
  /** Receives the residual stream after attention; default `hIn` (updated in place). */
  hMid?: GPUBuffer;
  /**
   * Receives the layer's output; default `hMid` (in place); null stops after SwiGLU (the
   * backward's recomputation needs nothing later, and `layerOutput` does not run).
   */
  hOut?: GPUBuffer | null;
  /** The layer's activations. */
  acts: LayerActivationBuffers;
  /** Number of sequences. */
  rows: number;
  /** Tokens per sequence (1 when decoding). */
  tokens: number;
  /** RoPE positions `[rows, tokens]` (u32). */
  positions: GPUBuffer;
  /** Key mask `[rows, tokens]` (u32) of the self-attention; unused when decoding. */
  mask?: GPUBuffer;
  /** Generation: append the keys and values to this cache (and attend over it when decoding). */
  kvCache?: LayerKvCache;
  /** As {@linkcode LinearArgs.matvec}, for every projection; default false. */
  matvec?: boolean;
  /**
   * Fold the RMSNorms before q_proj and gate_proj and the SwiGLU before down_proj into those
   * projections (see {@linkcode LinearArgs.prologue}: on the vec4 matvec route with `matvec`,
   * elsewhere the same separate dispatches): 3 dispatches fewer per decode layer, the outputs the
   * same bit for bit. Default: on a hardware adapter, where a decode step is bound by its
   * dispatches; not on a software one (`isFallbackAdapter`: llvmpipe ran the fused matvecs
   * 1.05–1.4× slower than rms_norm / swiglu + matvec, docs/perf.md "Fusion").
   */
  fusePrologues?: boolean;
  /** Hooks at the layer's named points. */
  hooks?: LayerHooks;
}

/**
 * Records one decoder layer: input norm, q/k/v projections, q/k norms, RoPE, (KV-cache append,)
 * attention, o projection added to the residual (`afterAttention`), post-attention norm,
 * gate/up projections, SwiGLU, down projection added to the residual (`layerOutput`); every
 * projection with its adapter.
 *
 * @param pass The compute pass being recorded.
 * @param model The model.
 * @param args Layer, residual buffers, activations, batch layout, cache and hooks.
 * @throws {TypeError} If an adapted projection has no LoRA scratch, or `mask` is missing when
 * not decoding.
 *
 * @example Layer 0 in place on the residual stream `h`, keeping its output
 * ```ts ignore
 * import { captureHidden, encodeDecoderLayer } from "./decoder_layer_webgpu.ts";
 * declare const model: import("./decoder_layer_webgpu.ts").GpuModelWeights;
 * declare const pass: GPUComputePassEncoder, h: GPUBuffer, mask: GPUBuffer, pos: GPUBuffer;
 * declare const out: GPUBuffer;
 * declare const acts: import("./decoder_layer_webgpu.ts").LayerActivationBuffers;
 * encodeDecoderLayer(pass, model, {
 *   layer: 0, hIn: h, acts, mask, positions: pos, rows: 1, tokens: 8,
 *   hooks: { layerOutput: captureHidden(model.ctx, out) },
 * });
 * ```
 */
export function encodeDecoderLayer(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: DecoderLayerArgs,
): void {
  const { ctx } = model;
  const c = model.config;
  const { layer, hIn, acts: a, kvCache: cache } = args;
  const hMid = args.hMid ?? hIn;
  const hOut = args.hOut === undefined ? hMid : args.hOut;
  const n = args.rows * args.tokens;
  const [hsz, hq, hkv, d, inter, eps] = [
    c.hiddenSize,
    c.numAttentionHeads,
    c.numKeyValueHeads,
    c.headDim,
    c.intermediateSize,
    c.rmsNormEps,
  ];
  const w = model.layers[layer];
  const fuse = args.fusePrologues ?? !ctx.gpu.isFallbackAdapter;
  const proj = (
    target: ProjectionName,
    x: GPUBuffer,
    y: GPUBuffer,
    accumulate = false,
    prologue?: MatvecPrologue,
  ) =>
    encodeProjection(pass, model, {
      layer,
      target,
      x,
      y,
      m: n,
      accumulate,
      loraScratch: a.loraScratch,
      matvec: args.matvec,
      prologue: fuse ? prologue : undefined,
    });
  const hook = (point: GpuLayerHookPoint, state: GPUBuffer) =>
    args.hooks?.[point]?.(pass, { layer, point, state, elements: n * hsz });

  // The input norm: inside q_proj's dispatch on the matvec route (k/v_proj and the adapters read
  // the x1 it writes), else a dispatch of its own.
  if (!fuse) {
    encodeRmsNorm(ctx, pass, { x: hIn, w: w.inputLayernorm, y: a.x1, rows: n, d: hsz, eps });
  }
  const norm1 = { kind: "rmsnorm", h: hIn, g: w.inputLayernorm, eps } as const;
  const decode = cache?.kvLen !== undefined;
  // A group decodes through its fused weight unless a member's adapter is routed (HILO: its
  // kernels write whole rows); plain LoRA members add their branches into their columns.
  const unrouted = (targets: readonly ProjectionName[]) =>
    targets.every((t) => !model.adapters?.module(layer, t)?.router);
  const fusedGroup = (
    whole: GpuMatrix,
    targets: readonly ProjectionName[],
    x: GPUBuffer,
    y: GPUBuffer,
    prologue: MatvecPrologue,
  ) => {
    const matvec = (args.matvec ?? false) && skinny(n, whole.cols);
    encodeLinear(ctx, pass, {
      x,
      w: whole,
      y,
      m: n,
      matvec,
      prologue: fuse ? prologue : undefined,
    });
    let yCol = 0;
    for (const target of targets) {
      const branch = { layer, target, x, y, m: n, loraScratch: a.loraScratch };
      encodeAdapterBranch(pass, model, branch, matvec, { ldy: whole.rows, yCol });
      yCol += (w[PROJECTION_FIELD[target]] as GpuMatrix).rows;
    }
  };
  // Decoding over a fused q|k|v weight (base or merged): one projection into `a.qkv` (and the
  // members' adapter branches), which the q/k norm + RoPE + KV write reads at its column offsets.
  const QKV = FUSED_GROUPS.qkv;
  const qkvFused = decode && qkNormRopeKvFits(ctx) && w.qkvProj !== undefined &&
    a.qkv !== undefined && unrouted(QKV);
  if (qkvFused) {
    fusedGroup(w.qkvProj!, QKV, a.x1, a.qkv!, norm1);
  } else {
    proj("q_proj", a.x1, a.qRaw, false, norm1);
    proj("k_proj", a.x1, a.kRaw);
    proj("v_proj", a.x1, a.v);
  }
  // q = rope(q_norm(qRaw)), k = rope(k_norm(kRaw)): one dispatch for the four ops; when decoding
  // on a device that binds 12 storage buffers, with the KV cache append folded in (the keys go
  // straight into the cache, not into `a.k`).
  const qk = {
    qRaw: a.qRaw,
    kRaw: a.kRaw,
    qNorm: w.qNorm,
    kNorm: w.kNorm,
    positions: args.positions,
    table: model.ropeTable,
    q: a.q,
    tokens: n,
    hq,
    hkv,
    d,
    maxPos: c.maxPositionEmbeddings,
    eps,
  };
  if (decode && qkNormRopeKvFits(ctx)) {
    const fused = qkvFused
      ? { qRaw: a.qkv!, kRaw: a.qkv!, v: a.qkv!, layout: fusedQkvRows({ hq, hkv, d }) }
      : { v: a.v };
    encodeQkNormRopeKv(ctx, pass, {
      ...qk,
      ...fused,
      kCache: cache!.k,
      vCache: cache!.v,
      mask: cache!.mask,
      ctrl: cache!.ctrl,
      rows: args.rows,
      slots: cache!.slots,
      row0: cache!.row0,
      kvF16: cache!.f16,
    });
  } else {
    encodeQkNormRope(ctx, pass, { ...qk, k: a.k });
    if (cache) {
      encodeKvWrite(ctx, pass, {
        kNew: a.k,
        vNew: a.v,
        kCache: cache.k,
        vCache: cache.v,
        mask: cache.mask,
        ctrl: cache.ctrl,
        rows: args.rows,
        tokens: args.tokens,
        slots: cache.slots,
        width: cache.width,
        row0: cache.row0,
        decode,
        kvF16: cache.f16,
      });
    }
  }
  const shape = { q: a.q, o: a.att, b: args.rows, hq, hkv, d };
  if (decode) {
    const kvLen = cache!.kvLen!;
    encodeAttention(ctx, pass, {
      ...shape,
      k: cache!.k,
      v: cache!.v,
      mask: cache!.mask,
      tq: 1,
      s: cache!.slots,
      kvLen,
      qStart: kvLen - 1,
      scratch: cache!.attnScratch,
      kvF16: cache!.f16,
    });
  } else {
    if (!args.mask) {
      throw new TypeError(
        `Cannot record decoder layer ${layer}: option "mask" is required unless decoding from ` +
          `a KV cache: current value is undefined`,
      );
    }
    const { tokens } = args;
    encodeAttention(ctx, pass, {
      ...shape,
      k: a.k,
      v: a.v,
      mask: args.mask,
      tq: tokens,
      s: tokens,
    });
  }
  if (hMid !== hIn) encodeAdd(ctx, pass, { x: hIn, y: hMid, n: n * hsz });
  proj("o_proj", a.att, hMid, true);
  hook("afterAttention", hMid);

  const norm2 = { kind: "rmsnorm", h: hMid, g: w.postAttentionLayernorm, eps } as const;
  if (!fuse) encodeRmsNorm(ctx, pass, { x: hMid, w: norm2.g, y: a.x2, rows: n, d: hsz, eps });
  // Decoding over a fused gate|up weight: one projection into `a.gateUp` `[n, 2·inter]`, which
  // SwiGLU reads at its column offsets (its own dispatch, or down_proj's prologue with gate and up
  // bound from their first columns where `4·inter` bytes is a storage offset).
  const GATE_UP = FUSED_GROUPS.gate_up;
  const gateUpFused = decode && w.gateUpProj !== undefined && a.gateUp !== undefined &&
    unrouted(GATE_UP);
  const gu = a.gateUp!;
  const upAligned = (4 * inter) % ctx.device.limits.minStorageBufferOffsetAlignment === 0;
  if (gateUpFused) {
    fusedGroup(w.gateUpProj!, GATE_UP, a.x2, gu, norm2);
  } else {
    proj("gate_proj", a.x2, a.gate, false, norm2);
    proj("up_proj", a.x2, a.up);
  }
  // SwiGLU: inside down_proj's dispatch on the matvec route, else its own dispatch (always when
  // stopping here: the backward's recomputation reads act).
  const inProlog = fuse && hOut !== null && (!gateUpFused || upAligned);
  if (gateUpFused && !inProlog) {
    const layout = fusedGateUpRows(inter);
    encodeSwiglu(ctx, pass, { gate: gu, up: gu, out: a.act, n: n * inter, layout });
  } else if (!inProlog) {
    encodeSwiglu(ctx, pass, { gate: a.gate, up: a.up, out: a.act, n: n * inter });
  }
  if (hOut === null) return;
  if (hOut !== hMid) encodeAdd(ctx, pass, { x: hMid, y: hOut, n: n * hsz });
  const span = 4 * ((n - 1) * 2 * inter + inter);
  const swiglu: MatvecPrologue = gateUpFused
    ? {
      kind: "swiglu",
      gate: { buffer: gu, offset: 0, size: span },
      up: { buffer: gu, offset: 4 * inter, size: span },
      stride: 2 * inter,
    }
    : { kind: "swiglu", gate: a.gate, up: a.up };
  proj("down_proj", a.act, hOut, true, inProlog ? swiglu : undefined);
  hook("layerOutput", hOut);
}

/** Gradient and scratch buffers of {@linkcode encodeDecoderLayerBackward}. */
export interface LayerGradBuffers {
  /** d loss / d (layer output) on entry, d loss / d (layer input) on exit `[tokens, hidden]`. */
  dh: GPUBuffer;
  /** Gradient of a norm's output `[tokens, hidden]`. */
  dx: GPUBuffer;
  /** Gradient of `act` `[tokens, intermediate]`. */
  dAct: GPUBuffer;
  /** Gradient of `gate`. */
  dGate: GPUBuffer;
  /** Gradient of `up`. */
  dUp: GPUBuffer;
  /** Gradient of the attention output `[tokens, heads·headDim]`. */
  dAtt: GPUBuffer;
  /** Gradient of the queries. */
  dq: GPUBuffer;
  /** Gradient of the keys `[tokens, kvHeads·headDim]`. */
  dk: GPUBuffer;
  /** Gradient of the values. */
  dv: GPUBuffer;
  /** Attention statistics `[tokens, heads, 2]`. */
  stats: GPUBuffer;
  /** RMSNorm reciprocal std per row (rows of the widest norm). */
  rstd: GPUBuffer;
  /** RMSNorm weight-gradient partial sums (see `RMS_NORM_BACKWARD_BLOCK_ROWS`). */
  partials: GPUBuffer;
  /** LoRA `du` scratch, at least `tokens · adapters.maxRank` floats. */
  loraDu: GPUBuffer;
}

/** Arguments of {@linkcode encodeDecoderLayerBackward}. */
export interface DecoderLayerBackwardArgs {
  /** Decoder layer index. */
  layer: number;
  /** The layer's saved input `[tokens, hidden]`. */
  hIn: GPUBuffer;
  /** The residual stream after attention (recomputed into it with `recompute`). */
  hMid: GPUBuffer;
  /** The layer's activations (recomputed into them with `recompute`). */
  acts: LayerActivationBuffers;
  /** Gradients and scratch; `grads.dh` holds d loss / d (layer output) on entry. */
  grads: LayerGradBuffers;
  /** Base-weight gradients to add into (full fine-tuning); omit when the base is frozen. */
  weightGrads?: GpuLayerWeights;
  /** Number of sequences. */
  rows: number;
  /** Tokens per sequence. */
  tokens: number;
  /** RoPE positions `[rows, tokens]` (u32). */
  positions: GPUBuffer;
  /** Key mask `[rows, tokens]` (u32). */
  mask: GPUBuffer;
  /** Recompute the layer's forward from `hIn` first (false when `acts` still hold it). */
  recompute: boolean;
  /** Leave d loss / d (layer input) in `grads.dh` (false for the lowest trained layer). */
  inputGrad: boolean;
  /** Hooks at the layer's named points, given the residual-stream gradient there. */
  hooks?: LayerHooks;
  /**
   * Weight of HILO's balance term in this step (the adapters' `balanceCoef` is multiplied by
   * it, e.g. `1 / micro-batches`); default 1.
   */
  balanceWeight?: number;
}

/**
 * Records the backward of one decoder layer, adding into the LoRA (and `weightGrads`) gradients:
 * the forward's ops in reverse, each projection's base matmul backward followed by its adapter's.
 * The `layerOutput` hook runs first (on d loss / d output), `afterAttention` after the MLP block.
 *
 * @param pass The compute pass being recorded.
 * @param model The model.
 * @param args Layer, saved input, activations, gradients, batch layout and hooks.
 * @throws {TypeError} If an adapted projection has no LoRA scratch or gradient buffers.
 *
 * @example Backward of layer 3 from its saved input, with a cotangent injected at its output
 * ```ts ignore
 * import { addCotangent, encodeDecoderLayerBackward } from "./decoder_layer_webgpu.ts";
 * declare const model: import("./decoder_layer_webgpu.ts").GpuModelWeights;
 * declare const pass: GPUComputePassEncoder, hIn: GPUBuffer, hMid: GPUBuffer, dHidden: GPUBuffer;
 * declare const mask: GPUBuffer, positions: GPUBuffer;
 * declare const acts: import("./decoder_layer_webgpu.ts").LayerActivationBuffers;
 * declare const grads: import("./decoder_layer_webgpu.ts").LayerGradBuffers;
 * encodeDecoderLayerBackward(pass, model, {
 *   layer: 3, hIn, hMid, acts, grads, rows: 2, tokens: 16, positions, mask,
 *   recompute: true, inputGrad: true, hooks: { layerOutput: addCotangent(model.ctx, dHidden) },
 * });
 * ```
 */
export function encodeDecoderLayerBackward(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: DecoderLayerBackwardArgs,
): void {
  const { ctx } = model;
  const c = model.config;
  const { layer, hIn, hMid, acts: a, grads: g, weightGrads: gw, inputGrad } = args;
  const n = args.rows * args.tokens;
  const [H, hq, hkv, D, I] = [
    c.hiddenSize,
    c.numAttentionHeads,
    c.numKeyValueHeads,
    c.headDim,
    c.intermediateSize,
  ];
  const w = model.layers[layer];
  const { rows, tokens, positions, mask } = args;
  if (args.recompute) {
    encodeDecoderLayer(pass, model, {
      layer,
      hIn,
      hMid,
      hOut: null,
      acts: a,
      rows,
      tokens,
      positions,
      mask,
    });
  }
  const hook = (point: GpuLayerHookPoint) =>
    args.hooks?.[point]?.(pass, { layer, point, state: g.dh, elements: n * H });
  const balance = balanceStatistics(pass, model, {
    layer,
    a,
    m: n,
    mask,
    weight: args.balanceWeight ?? 1,
  });
  const lin = (
    target: ProjectionName,
    dy: GPUBuffer,
    x: GPUBuffer,
    dx: GPUBuffer | undefined,
    accumulateDx = false,
  ) =>
    linearBackward(pass, model, {
      layer,
      target,
      dy,
      x,
      dx,
      accumulateDx,
      m: n,
      gw,
      a,
      g,
      balance,
    });
  const norm = (x: GPUBuffer, weight: keyof GpuLayerWeights, dy: GPUBuffer, dx: GPUBuffer, o: {
    rows: number;
    d: number;
    accumulateDx?: boolean;
  }) =>
    normBackward(pass, model, g, {
      x,
      w: w[weight] as GPUBuffer,
      dw: gw?.[weight] as GPUBuffer | undefined,
      dy,
      dx,
      ...o,
    });

  hook("layerOutput");
  // MLP: h = hMid + down(swiglu(gate(x2), up(x2))), x2 = norm(hMid).
  lin("down_proj", g.dh, a.act, g.dAct);
  encodeSwigluBackward(ctx, pass, {
    dOut: g.dAct,
    gate: a.gate,
    up: a.up,
    dGate: g.dGate,
    dUp: g.dUp,
    n: n * I,
  });
  lin("gate_proj", g.dGate, a.x2, g.dx);
  lin("up_proj", g.dUp, a.x2, g.dx, true);
  norm(hMid, "postAttentionLayernorm", g.dx, g.dh, { rows: n, d: H, accumulateDx: true });
  hook("afterAttention");

  // Attention: hMid = hIn + o(attention(rope(qnorm(q(x1))), rope(knorm(k(x1))), v(x1))).
  lin("o_proj", g.dh, a.att, g.dAtt);
  encodeAttentionBackward(ctx, pass, {
    q: a.q,
    k: a.k,
    v: a.v,
    mask,
    dO: g.dAtt,
    dq: g.dq,
    dk: g.dk,
    dv: g.dv,
    stats: g.stats,
    b: rows,
    tq: tokens,
    s: tokens,
    hq,
    hkv,
    d: D,
  });
  const rope = { positions, table: model.ropeTable, d: D, maxPos: c.maxPositionEmbeddings };
  let [dqRaw, dkRaw] = [g.dq, g.dk];
  if (!gw) {
    // Frozen norm weights: RoPE backward then the q/k norms' backward in one dispatch, the
    // gradients of qRaw and kRaw written over those of q and k.
    encodeQkNormRopeBackward(ctx, pass, {
      ...rope,
      dq: g.dq,
      dk: g.dk,
      qRaw: a.qRaw,
      kRaw: a.kRaw,
      qNorm: w.qNorm,
      kNorm: w.kNorm,
      tokens: n,
      hq,
      hkv,
      eps: c.rmsNormEps,
    });
  } else {
    // Trained norm weights: per tensor, the fused backward saves each head's 1 / rms and the
    // un-rotated gradient for the weight-gradient passes, and writes the input gradient into the
    // dead post-RoPE activations.
    [dqRaw, dkRaw] = [a.q, a.k];
    const common = { ...rope, tokens: n, eps: c.rmsNormEps, rstd: g.rstd, partials: g.partials };
    const dw = { accumulateDw: true };
    encodeNormRopeBackward(ctx, pass, {
      ...common,
      ...{ dy: g.dq, x: a.qRaw, w: w.qNorm, dx: dqRaw, dw: gw.qNorm, heads: hq, ...dw },
    });
    encodeNormRopeBackward(ctx, pass, {
      ...common,
      ...{ dy: g.dk, x: a.kRaw, w: w.kNorm, dx: dkRaw, dw: gw.kNorm, heads: hkv, ...dw },
    });
  }
  const dx1 = inputGrad ? g.dx : undefined;
  lin("q_proj", dqRaw, a.x1, dx1);
  lin("k_proj", dkRaw, a.x1, dx1, true);
  lin("v_proj", g.dv, a.x1, dx1, true);
  if (inputGrad) norm(hIn, "inputLayernorm", g.dx, g.dh, { rows: n, d: H, accumulateDx: true });
}

/** What a projection's backward needs of HILO's balance loss: coefficient, statistics, mask. */
interface LayerBalance {
  coef: number;
  stats: Partial<Record<ProjectionName, GPUBuffer>>;
  mask: GPUBuffer;
}

/**
 * HILO's load-balancing loss of a layer (one term per routed projection, each over its own
 * router; see `kernels/moe_route/moe_balance_ref.ts`): when the adapters have a non-zero
 * coefficient and weight, writes every routed projection's statistics over the step's tokens
 * (router logits of its recomputed input, into the LoRA scratch) and adds its loss to the
 * adapters' `balanceTotal`, before any projection's backward uses them. Returns what the
 * projections' backwards need, or undefined.
 */
function balanceStatistics(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: { layer: number; a: LayerActivationBuffers; m: number; mask: GPUBuffer; weight: number },
): LayerBalance | undefined {
  const lora = model.adapters;
  const { layer, a, m, mask } = args;
  if (!lora || lora.balanceCoef * args.weight === 0) return undefined;
  const routed = PROJECTIONS.filter((t) => lora.module(layer, t)?.router);
  if (routed.length === 0) return undefined;
  if (a.x1 === a.x2) {
    throw new TypeError(
      `Cannot record the balance loss of layer ${layer}: it needs the q/k/v and gate/up inputs ` +
        `at once, but "x2" shares "x1"'s buffer`,
    );
  }
  const scratch = a.loraScratch;
  if (!scratch) {
    throw new TypeError(
      `Cannot record the balance loss of layer ${layer}: the activations' "loraScratch" is ` +
        `required: current value is undefined`,
    );
  }
  const inputs: Record<ProjectionName, GPUBuffer> = {
    q_proj: a.x1,
    k_proj: a.x1,
    v_proj: a.x1,
    o_proj: a.att,
    gate_proj: a.x2,
    up_proj: a.x2,
    down_proj: a.act,
  };
  const stats: LayerBalance["stats"] = {};
  for (const target of routed) {
    const mod = lora.module(layer, target)!;
    const E = mod.experts.length;
    const logits = { buffer: scratch, offset: 0, size: 4 * m * E };
    encodeMatmul(model.ctx, pass, {
      x: inputs[target],
      w: mod.router!.weight,
      y: logits,
      m,
      n: E,
      k: mod.inFeatures,
    });
    stats[target] = lora.balanceStats(layer, target)!;
    encodeMoeBalanceStats(model.ctx, pass, {
      logits: scratch,
      mask,
      stats: stats[target],
      total: lora.balanceTotal,
      m,
      experts: E,
      activation: mod.router!.activation,
      topK: mod.router!.topK,
      topP: mod.router!.topP,
    });
  }
  return { coef: lora.balanceCoef * args.weight, stats, mask };
}

/** RMSNorm backward adding into `dw` (when given) through the layer's scratch. */
function normBackward(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  g: LayerGradBuffers,
  args: {
    dy: GPUBuffer;
    x: GPUBuffer;
    w: GPUBuffer;
    dx: GPUBuffer;
    dw?: GPUBuffer;
    rows: number;
    d: number;
    accumulateDx?: boolean;
  },
): void {
  encodeRmsNormBackward(model.ctx, pass, {
    ...args,
    accumulateDw: true,
    rstd: args.dw ? g.rstd : undefined,
    partials: args.dw ? g.partials : undefined,
    eps: model.config.rmsNormEps,
  });
}

/**
 * Backward of a projection (base matmul, then its LoRA branch): `dx (+)= dy·W (+ LoRA)`, adding
 * `dW` into `gw` when given.
 */
function linearBackward(
  pass: GPUComputePassEncoder,
  model: GpuModelWeights,
  args: {
    layer: number;
    target: ProjectionName;
    dy: GPUBuffer;
    x: GPUBuffer;
    dx?: GPUBuffer;
    accumulateDx?: boolean;
    m: number;
    gw?: GpuLayerWeights;
    a: LayerActivationBuffers;
    g: LayerGradBuffers;
    balance?: LayerBalance;
  },
): void {
  const { layer, target, dy, x, dx, m } = args;
  const field = PROJECTION_FIELD[target];
  const w = model.layers[layer][field] as GpuMatrix;
  const gw = args.gw?.[field] as GpuMatrix | undefined;
  if (dx || gw) {
    w.chunks.forEach((chunk, j) => {
      encodeMatmulBackward(model.ctx, pass, {
        dy,
        m,
        n: chunk.rows,
        k: w.cols,
        ldy: w.rows,
        yCol: chunk.rowStart,
        w: dx ? chunkBinding(w, chunk) : undefined,
        wF16: w.dtype === "f16",
        dx,
        accumulateDx: (args.accumulateDx ?? false) || j > 0,
        x: gw ? x : undefined,
        dw: gw?.chunks[j].buffer,
        accumulateDw: true,
      });
    });
  }
  const module = model.adapters?.module(layer, target);
  if (!module) return;
  if (!args.a.loraScratch) {
    throw new TypeError(
      `Cannot record the backward of "${module.name}": it has a LoRA adapter, so the ` +
        `activations' "loraScratch" is required: current value is undefined`,
    );
  }
  encodeLoraBackward(model.ctx, pass, {
    module,
    x,
    dy,
    dx,
    m,
    u: args.a.loraScratch,
    du: args.g.loraDu,
    balance: args.balance?.stats[target] && {
      coef: args.balance.coef,
      stats: args.balance.stats[target],
      mask: args.balance.mask,
    },
  });
}
