/**
 * The WebGPU backend: the Qwen3 forward pass as an ordered list of WGSL kernel launches over
 * preallocated activations, recorded into one command encoder and read back once.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import { destroyMatrix, type GpuMatrix, uploadMatrix } from "../gpu/matrix.ts";
import { readback, type ReadbackRange } from "../gpu/readback.ts";
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
import type { Qwen3Weights } from "./weights.ts";

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

/** Activation buffers for a batch of `tokens` tokens (reused while shapes fit). */
interface Workspace {
  tokens: number;
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

  /** Frees every weight and activation buffer. */
  dispose(): void {
    this.#freeWorkspace();
    const mats = new Set<GpuMatrix>([this.embedTokens, this.lmHead]);
    for (const l of this.layers) {
      for (const m of [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj]) {
        mats.add(m);
      }
      for (const b of [l.inputLayernorm, l.qNorm, l.kNorm, l.postAttentionLayernorm]) b.destroy();
    }
    for (const m of mats) destroyMatrix(m);
    this.norm.destroy();
    this.ropeTable.destroy();
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
    const [hsz, hq, hkv, d, inter, eps] = [
      c.hiddenSize,
      c.numAttentionHeads,
      c.numKeyValueHeads,
      c.headDim,
      c.intermediateSize,
      c.rmsNormEps,
    ];
    const enc = ctx.device.createCommandEncoder({ label: "forward" });
    let pass = enc.beginComputePass();
    const snapshot = (l: number, src: GPUBuffer) => {
      if (!want.hidden) return;
      pass.end();
      enc.copyBufferToBuffer(src, 0, ws.hidden!, l * n * hsz * 4, n * hsz * 4);
      pass = enc.beginComputePass();
    };
    const linear = (x: GPUBuffer, w: GpuMatrix, y: GPUBuffer, accumulate = false) =>
      encodeLinear(ctx, pass, { x, w, y, m: n, accumulate });

    encodeEmbedding(ctx, pass, { ids: ws.ids, table: this.embedTokens, out: ws.h, tokens: n });
    snapshot(0, ws.h);
    this.layers.forEach((w, l) => {
      encodeRmsNorm(ctx, pass, { x: ws.h, w: w.inputLayernorm, y: ws.x, rows: n, d: hsz, eps });
      linear(ws.x, w.qProj, ws.qRaw);
      linear(ws.x, w.kProj, ws.kRaw);
      linear(ws.x, w.vProj, ws.v);
      encodeRmsNorm(ctx, pass, { x: ws.qRaw, w: w.qNorm, y: ws.q, rows: n * hq, d, eps });
      encodeRmsNorm(ctx, pass, { x: ws.kRaw, w: w.kNorm, y: ws.k, rows: n * hkv, d, eps });
      const rope = {
        positions: ws.positions,
        table: this.ropeTable,
        d,
        maxPos: c.maxPositionEmbeddings,
      };
      encodeRope(ctx, pass, { ...rope, x: ws.q, rows: n * hq, heads: hq });
      encodeRope(ctx, pass, { ...rope, x: ws.k, rows: n * hkv, heads: hkv });
      encodeAttention(ctx, pass, {
        q: ws.q,
        k: ws.k,
        v: ws.v,
        mask: ws.mask,
        o: ws.att,
        b: batch.batch,
        tq: batch.seqLen,
        s: batch.seqLen,
        hq,
        hkv,
        d,
      });
      linear(ws.att, w.oProj, ws.h, true);
      encodeRmsNorm(ctx, pass, {
        x: ws.h,
        w: w.postAttentionLayernorm,
        y: ws.x,
        rows: n,
        d: hsz,
        eps,
      });
      linear(ws.x, w.gateProj, ws.gate);
      linear(ws.x, w.upProj, ws.up);
      encodeSwiglu(ctx, pass, { gate: ws.gate, up: ws.up, out: ws.act, n: n * inter });
      linear(ws.act, w.downProj, ws.h, true);
      if (l < this.layers.length - 1) snapshot(l + 1, ws.h);
    });
    // The final-norm output stays in ws.x: HF's hidden_states[-1].
    encodeRmsNorm(ctx, pass, { x: ws.h, w: this.norm, y: ws.x, rows: n, d: hsz, eps });
    snapshot(this.layers.length, ws.x);
    if (want.logits) {
      linear(ws.x, this.lmHead, ws.logits!);
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
    if (
      old && old.tokens >= tokens && (!want.logits || old.logits) && (!want.hidden || old.hidden)
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
    if (want.logits || old?.logits) ws.logits = buf(n * c.vocabSize, "logits");
    if (want.hidden || old?.hidden) {
      ws.hidden = this.ctx.createBuffer((c.numHiddenLayers + 1) * n * c.hiddenSize * 4, "hidden");
    }
    this.#ws = ws;
    return ws;
  }

  #freeWorkspace(): void {
    if (!this.#ws) return;
    for (const b of Object.values(this.#ws)) if (b instanceof GPUBuffer) b.destroy();
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
