/**
 * Generation on WebGPU with everything on the device: a left-padded prefill writes the KV cache,
 * then each decode step (embedding → layers with an in-place cache append → final norm → LM head
 * → sampler → cursor advance) is recorded back to back, `readbackEvery` steps per readback (on a
 * hardware adapter each step submitted as soon as it is recorded, on a software one per chunk). The
 * sampler writes the next input id where the embedding reads it, and the cache slot, output step
 * and RoPE positions advance on the GPU, so a decode step's dispatches, uniforms and bind groups
 * are the same every step and nothing is read back until the chunk ends.
 *
 * The prefill (and the merge before it) is submitted every `WebGpuQwen3.submitEveryLayers` layers
 * (default: after each on a hardware adapter, never on a software one), so that a long prefill is
 * not one submission of seconds of GPU work (OS GPU watchdogs; model/submit_splitter.ts); decode
 * keeps the submits above.
 *
 * Layout: prompts are left-padded to the longest, `P`; pad slots are masked out of attention and
 * token `t` of a prompt of length `L` gets RoPE position `t − (P − L)`. Decode step `s ≥ 1` writes
 * slot `P + s − 1` of every row. Decode attention runs over the cache with a `kvLen` rounded up to
 * a multiple of 64 and relies on the mask (set by `kv_write` as slots fill) for the rest. The
 * cache holds f32 or, with the model's `kvDtype` `"f16"`, f16 keys and values (half the bytes;
 * the writers round, the attention kernels widen to f32 as they read).
 *
 * Each layer is `encodeDecoderLayer` (the one the forward and the training step record) with the
 * layer's KV cache and `matvec` on. LoRA adapters set on the model
 * ({@linkcode WebGpuQwen3.setAdapters}) are applied to every projection on top of the shared
 * base weights: tiled steps (prefill) use the tiled matmuls; skinny steps (decode) keep the
 * matvec kernel for the base weight and add each expert's `scale·(x·Aᵀ)·Bᵀ` with a matvec for
 * `x·Aᵀ` and a matmul for the rank-deep up-projection. `x·Aᵀ` goes to one scratch of
 * `tokens · maxRank` floats in the workspace.
 *
 * With `mergeAdapters` (on by default on a hardware adapter with f32 weights; f16 weights merge
 * only when it is `true`, since their copy rounds small adapter updates away), each call first
 * merges the plain LoRA adapters into copies of their base weights (`W + scale·B·A`; f32: a copy
 * and one small matmul per projection and expert; f16: one kernel per projection writing
 * `f16(f32(W16) + scale·B·A)`, whose overflow status comes back with the first readback and is
 * an error there; recorded before the prefill: see `model/merge_adapters_webgpu.ts`), held for
 * that call only, and records the layers over those: one matmul per merged projection. Routed
 * (HILO) adapters, row-split base weights and f16 ones under several unrouted experts keep the
 * unmerged path above. Where q|k|v (and gate|up) are one buffer, a decode step records one
 * matvec for the group into the workspace's `qkv` (`gateUp`), which the q/k norm + RoPE + KV
 * write (SwiGLU) reads at column offsets: 9 → 6 dispatches a layer on a hardware adapter (SwiGLU
 * in down_proj's matvec), 12 → 9 on a software one. That holds for the merged weights, and for
 * the base weights, which `WebGpuQwen3` stores fused by default (`fuseProjections`): a base
 * model, or full fine-tuning, decodes that way without merging anything; unmerged plain LoRA
 * members add their branches into the group's output at their columns (2 dispatches each, as
 * before), and a group with a HILO-routed member records one projection per member.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { Qwen3Config } from "./config.ts";
import { readback } from "../gpu/readback.ts";
import { attentionScratchSize } from "../kernels/attention/attention.ts";
import { encodeDecodeAdvance } from "../kernels/decode_advance/decode_advance.ts";
import { encodeEmbedding } from "../kernels/embedding/embedding.ts";
import type { MatvecPrologue } from "../kernels/matvec/matvec.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import { encodeSample, sampleInfo } from "../kernels/sample/sample.ts";
import {
  allocateLayerActivations,
  encodeDecoderLayer,
  encodeLinear,
  type GpuModelWeights,
  type LayerActivationBuffers,
} from "./decoder_layer_webgpu.ts";
import type {
  GeneratedSequence,
  GenerateResult,
  ResolvedGenerateOptions,
  StopReason,
} from "./generate.ts";
import { kvBytesPerElement, KvCache, type KvDtype } from "./kv_cache.ts";
import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
import { SubmitSplitter } from "./submit_splitter.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

/**
 * Sizes a generation workspace is allocated for (trainer/rl/gpu_memory_estimate.ts sizes its
 * estimate by the same fields).
 *
 * @example A workspace for 8 rows of 64 slots, prefilled 64 tokens at a time, without LoRA
 * ```ts
 * import type { GenerateWorkspaceSizes } from "./generate_webgpu.ts";
 * const sizes: GenerateWorkspaceSizes = {
 *   rows: 8, tokens: 64, capacity: 64, outWords: 1024, infoWords: 16, rank: 0,
 * };
 * ```
 */
export interface GenerateWorkspaceSizes {
  /** Batch rows (sequences). */
  rows: number;
  /** Activation rows (prefill chunk tokens, at least `rows`). */
  tokens: number;
  /** Cache slots per row. */
  capacity: number;
  /** Words of the output record buffer. */
  outWords: number;
  /** Words of the sampler info buffer. */
  infoWords: number;
  /** Floats per activation row of the LoRA scratch (the adapters' largest rank; 0 for none). */
  rank: number;
}

/** Device buffers of generation, kept per model and reused while they fit. */
interface Workspace
  extends GenerateWorkspaceSizes, Omit<LayerActivationBuffers, "x1" | "x2" | "loraScratch"> {
  cache: KvCache;
  h: GPUBuffer;
  /** Both norms' output (`x1` and `x2` of the layer's activations). */
  x: GPUBuffer;
  /** Prefill ids, positions and key mask `[chunk rows · P]`. */
  idsPre: GPUBuffer;
  posPre: GPUBuffer;
  maskPre: GPUBuffer;
  /** Decode input id and RoPE position per row. */
  idsDec: GPUBuffer;
  posDec: GPUBuffer;
  /** Last prompt token's residual per row `[rows, hidden]`. */
  hLast: GPUBuffer;
  logits: GPUBuffer;
  /** Decode cursor `[slot, step]`. */
  ctrl: GPUBuffer;
  info: GPUBuffer;
  out: GPUBuffer;
  state: GPUBuffer;
  /** One layer's keys (of the cache's dtype), for moving cache rows when rows finish. */
  scratch: GPUBuffer;
  /** Split-KV decode attention's partial sums (any row count and `kvLen` up to the sizes). */
  attnScratch: GPUBuffer;
  /** `x·Aᵀ` of the LoRA branch `[tokens, rank]`; only when `rank > 0`. */
  loraU?: GPUBuffer;
  /** A decode step's fused q|k|v output `[rows, (heads + 2·kvHeads)·headDim]` (fused weights). */
  qkv: GPUBuffer;
  /** A decode step's fused gate|up output `[rows, 2·intermediate]` (fused weights). */
  gateUp: GPUBuffer;
  /** The adapters merged into copies of the base weights (`mergeAdapters`), during a call. */
  merged?: MergedAdapterWeights;
}

const workspaces = new WeakMap<WebGpuQwen3, Workspace>();
const releasers = new WeakMap<WebGpuQwen3, () => void>();

/** One function per model that frees its generation workspace (registered with the model). */
function releaserOf(model: WebGpuQwen3): () => void {
  let f = releasers.get(model);
  if (!f) {
    f = () => releaseGenerateWorkspace(model);
    releasers.set(model, f);
  }
  return f;
}

/** One recorded forward over `rows × tokens` inputs. */
interface StepShape {
  rows: number;
  tokens: number;
  ids: GPUBuffer;
  positions: GPUBuffer;
  /** Prefill: first cache row written; the attention runs over the fresh keys. */
  row0: number;
  /** Decode: attend over cache slots `< kvLen` (1 token per row, written at the GPU cursor). */
  kvLen?: number;
}

/**
 * Generates on a WebGPU model with the KV cache and the on-GPU sampler, applying the model's LoRA
 * adapters (if any are set) on top of its base weights.
 *
 * @param model The WebGPU model.
 * @param options Resolved options from `resolveGenerateOptions`.
 * @returns Tokens, log-probs, stop reasons and counters.
 * @throws {RangeError} If the batch's cache or activations do not fit the device's bindings.
 * @throws {Error} If the model is busy with another operation (`WebGpuQwen3.acquire`: another
 * generation, which shares these buffers, or a training step). The generation holds the model
 * until it returns, so `setAdapters` and the other calls that would change what it records
 * with are refused meanwhile.
 *
 * @example Greedy on the GPU
 * ```ts ignore
 * import { loadModel } from "./load_model.ts";
 * import { resolveGenerateOptions } from "./generate.ts";
 * import { generateWebGpu } from "./generate_webgpu.ts";
 * import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny") as WebGpuQwen3;
 * const options = resolveGenerateOptions(model.config, {
 *   prompts: [[5, 6], [7]], maxNewTokens: 8, temperature: 0,
 * });
 * const { sequences, stats } = await generateWebGpu(model, options);
 * console.log(stats.readbacks); // 1
 * ```
 */
export async function generateWebGpu(
  model: WebGpuQwen3,
  options: ResolvedGenerateOptions,
): Promise<GenerateResult> {
  const start = performance.now();
  const done = model.acquire("generate");
  try {
    return await run(model, options, start);
  } finally {
    done();
  }
}

async function run(
  model: WebGpuQwen3,
  options: ResolvedGenerateOptions,
  start: number,
): Promise<GenerateResult> {
  const { ctx } = model;
  const c = model.config;
  const lora = model.adapters;
  const { prompts, maxNewTokens } = options;
  const B = prompts.length;
  const lens = prompts.map((p) => p.length);
  const P = Math.max(...lens);
  const hsz = c.hiddenSize;
  const widest = Math.max(
    hsz,
    c.numAttentionHeads * c.headDim,
    c.intermediateSize,
  );
  const chunkRows = Math.min(B, Math.floor(ctx.gpu.maxBindingSize / (P * widest * 4)));
  if (chunkRows < 1) {
    throw new RangeError(
      `Cannot generate: a prompt of ${P} tokens needs ${P * widest * 4} bytes of activations, ` +
        `more than one storage binding (${ctx.gpu.maxBindingSize}); use shorter prompts`,
    );
  }
  const reused = workspaces.get(model);
  const ws = workspace(model, {
    rows: B,
    tokens: Math.max(chunkRows * P, B),
    capacity: cacheCapacity(P, maxNewTokens),
    outWords: maxNewTokens * B * 3,
    infoWords: 2 + B + options.eosTokenIds.length + options.stopTokenIds.length,
    rank: lora?.maxRank ?? 0,
  });
  const cache = ws.cache;
  const queue = ctx.device.queue;
  // The weights the layers read: the model's, or with the plain LoRA adapters merged in (their
  // values recomputed below, before the prefill, from this call's adapters and base weights).
  let weights: GpuModelWeights = model;
  // They live for this call only (freed once its last readback is in), so that a trainer's
  // steps between generations do not hold a second copy of the weights.
  // By default not f16 weights: their merged copy rounds W + s·B·A to f16, which loses an
  // adapter update below half an f16 spacing of W (early in training); only when asked for.
  const merge = lora !== null &&
    (options.mergeAdapters ?? (!ctx.gpu.isFallbackAdapter && model.weightDtype !== "f16"));
  ws.merged?.dispose(); // left by a call that failed
  ws.merged = merge ? new MergedAdapterWeights(ctx, model) : undefined;
  if (ws.merged) weights = ws.merged.view(model);
  // A new workspace (or merged copy) that did not fit is named here, before any work uses it;
  // the check waits on error scopes only (microseconds, no GPU round trip). It is then freed
  // (nothing used it), so that the context stops reporting it and a smaller call can run.
  if (ws !== reused || ws.merged) {
    try {
      await ctx.checkAllocations(
        `allocating the generation workspace${
          ws.merged ? " and the merged adapter weights" : ""
        } for ${B} prompts`,
      );
    } catch (error) {
      workspaces.delete(model);
      destroy(ws);
      ctx.clearBindGroups();
      throw error;
    }
  }
  // On a hardware adapter each decode step is submitted once recorded, so that recording (about
  // 5 µs of CPU per dispatch, some 1.4 ms a token for Qwen3-0.6B's ~280 dispatches) overlaps the
  // GPU's work on the steps before it; readbacks stay one per chunk. A software adapter runs on
  // the CPU that records, so it gets one submit per chunk.
  const overlap = !ctx.gpu.isFallbackAdapter;
  let submits = 0;
  let readbacks = 0;
  let rowSteps = 0;

  // Per-call state: cache mask of the prompts, cursor [P − 1, 0], positions, stop state.
  let rowSeq = Array.from({ length: B }, (_, b) => b);
  const mask = new Uint32Array(cache.rows * cache.capacity);
  for (let b = 0; b < B; b++) {
    mask.fill(1, b * cache.capacity + P - lens[b], b * cache.capacity + P);
  }
  queue.writeBuffer(cache.mask, 0, mask);
  queue.writeBuffer(ws.ctrl, 0, Uint32Array.of(P - 1, 0, 0, 0));
  queue.writeBuffer(ws.posDec, 0, Uint32Array.from(lens, (l) => l - 1));
  queue.writeBuffer(ws.state, 0, new Uint32Array(B * 2));
  const writeInfo = () =>
    queue.writeBuffer(
      ws.info,
      0,
      sampleInfo({
        seed: options.seed,
        rowSequence: rowSeq,
        eosTokenIds: options.eosTokenIds,
        stopTokenIds: options.stopTokenIds,
      }),
    );
  writeInfo();

  // Prefill, in chunks of rows that fit one binding; all but the last submitted on their own,
  // and each also every `submitEveryLayers` layers (then the merge too is submitted apart).
  const prefill = new SubmitSplitter(
    ctx,
    ctx.device.createCommandEncoder({ label: "generate" }),
    model.submitEveryLayers,
    "generate",
  );
  if (merge) {
    ws.merged!.encode(prefill.encoder, model);
    if (model.submitEveryLayers > 0) prefill.submit();
  }
  for (let row0 = 0; row0 < B; row0 += chunkRows) {
    const rows = Math.min(chunkRows, B - row0);
    const ids = new Uint32Array(rows * P);
    const pos = new Uint32Array(rows * P);
    const pmask = new Uint32Array(rows * P);
    for (let r = 0; r < rows; r++) {
      const p = prompts[row0 + r];
      const pad = P - p.length;
      ids.set(p, r * P + pad);
      pmask.fill(1, r * P + pad, (r + 1) * P);
      for (let t = 0; t < p.length; t++) pos[r * P + pad + t] = t;
    }
    // The chunk's inputs overwrite the last one's, which must be submitted first.
    if (row0 > 0) prefill.submit();
    queue.writeBuffer(ws.idsPre, 0, ids);
    queue.writeBuffer(ws.posPre, 0, pos);
    queue.writeBuffer(ws.maskPre, 0, pmask);
    prefill.begin();
    recordForward(ctx, prefill, weights, ws, {
      rows,
      tokens: P,
      ids: ws.idsPre,
      positions: ws.posPre,
      row0,
    });
    prefill.end();
    for (let r = 0; r < rows; r++) {
      prefill.encoder.copyBufferToBuffer(
        ws.h,
        (r * P + P - 1) * hsz * 4,
        ws.hLast,
        (row0 + r) * hsz * 4,
        hsz * 4,
      );
    }
  }
  submits += prefill.submits;
  let enc = prefill.encoder;

  // Decode in chunks of readbackEvery sampling steps.
  const host = new Uint32Array(maxNewTokens * B * 3);
  const state = new Uint32Array(B * 2);
  let step = 0;
  let chunk = 0;
  while (step < maxNewTokens) {
    // Recording goes on after each readback's await with the adapters (and the scratch sized
    // for them) the earlier steps ran with: the model is held (acquire), so setAdapters refuses.
    const R = rowSeq.length;
    const first = step;
    chunk++;
    const end = Math.min(maxNewTokens, step + options.readbackEvery);
    let pass = enc.beginComputePass();
    for (; step < end; step++) {
      if (step > first && overlap) {
        // The GPU runs the steps submitted so far while this one is recorded.
        pass.end();
        queue.submit([enc.finish()]);
        submits++;
        enc = ctx.device.createCommandEncoder({ label: "generate" });
        pass = enc.beginComputePass();
      }
      if (step === 0) {
        recordHead(ctx, pass, model, ws, ws.hLast, R, options, B);
      } else {
        const kvLen = Math.min(cache.capacity, Math.ceil((P + step) / 64) * 64);
        recordForward(ctx, pass, weights, ws, {
          rows: R,
          tokens: 1,
          ids: ws.idsDec,
          positions: ws.posDec,
          row0: 0,
          kvLen,
        });
        recordHead(ctx, pass, model, ws, ws.h, R, options, B);
      }
      rowSteps += R;
    }
    pass.end();
    // The first readback also brings the f16 merge's overflow status (merged f16 weights).
    const status = first === 0 ? ws.merged?.status : undefined;
    const what = `generate of ${B} prompts: chunk ${chunk}, steps ${first + 1}–${end} of ` +
      `${maxNewTokens}`;
    const [s, o, st] = await readback(
      ctx,
      [
        { buffer: ws.state, offset: 0, size: B * 8 },
        { buffer: ws.out, offset: first * B * 12, size: (end - first) * B * 12 },
        ...(status ? [{ buffer: status, offset: 0, size: status.size }] : []),
      ],
      enc,
      { what },
    );
    submits++;
    readbacks++;
    if (st) ws.merged!.checkStatus(new Uint32Array(st));
    state.set(new Uint32Array(s));
    host.set(new Uint32Array(o), first * B * 3);
    enc = ctx.device.createCommandEncoder({ label: "generate" });
    const running = rowSeq.filter((b) => state[b * 2] === 0);
    if (running.length === 0 || step >= maxNewTokens) break;
    if (options.compact && R - running.length >= Math.max(1, R / 8)) {
      compact(enc, model, ws, { rowSeq, running, step, lens, P, host, B });
      rowSeq = running;
      writeInfo();
    }
  }

  // Every step has been read back: the merged weights are no longer in use.
  ws.merged?.dispose();
  ws.merged = undefined;
  const floats = new Float32Array(host.buffer);
  const sequences: GeneratedSequence[] = prompts.map((p, b) => {
    const length = state[b * 2 + 1];
    const at = (i: number) => (i * B + b) * 3;
    return {
      tokens: Array.from({ length }, (_, i) => host[at(i)]),
      logprobs: Float32Array.from({ length }, (_, i) => floats[at(i) + 1]),
      modelLogprobs: Float32Array.from({ length }, (_, i) => floats[at(i) + 2]),
      stopReason: (["length", "eos", "stop", "length"] as StopReason[])[state[b * 2]],
      length,
      promptLength: p.length,
    };
  });
  return {
    sequences,
    stats: {
      readbacks,
      submits,
      steps: step,
      promptTokens: lens.reduce((n, l) => n + l, 0),
      generatedTokens: sequences.reduce((n, s) => n + s.length, 0),
      rowSteps,
      seconds: (performance.now() - start) / 1000,
    },
  };
}

/** KV cache slots per sequence: the longest prompt and the new tokens, rounded up to 64. */
function cacheCapacity(promptLength: number, maxNewTokens: number): number {
  return Math.ceil((promptLength + maxNewTokens) / 64) * 64;
}

/** Options of {@linkcode generateRowBytes}. */
export interface GenerateRowBytesOptions {
  /** Storage of the KV cache (the model's `kvDtype`); default `"f32"`. */
  kvDtype?: KvDtype;
}

/**
 * The bytes each sequence adds to the largest per-sequence buffer of a `generateWebGpu` call
 * whose longest prompt has `promptLength` tokens: a layer's K (or V) cache row of
 * `capacity × kvHeads·headDim` values of the cache's dtype (`capacity` = prompt +
 * `maxNewTokens` rounded up to 64), or the decode logits row of `vocab` floats when that is
 * larger. A call of `rows` sequences needs `rows × generateRowBytes(…)` bytes in one storage
 * binding (`maxBindingSize`).
 *
 * @param config The model's config.
 * @param promptLength Tokens of the call's longest prompt.
 * @param maxNewTokens Most new tokens per sequence.
 * @param options The KV cache's dtype (default f32: 4 bytes a value; f16: 2).
 * @returns Bytes per sequence.
 *
 * @example Qwen3-0.6B (8 KV heads of 128), a 818-token prompt and 2,048 new tokens
 * ```ts
 * import { generateRowBytes } from "./generate_webgpu.ts";
 * import { strictEqual } from "node:assert/strict";
 * const config = { numKeyValueHeads: 8, headDim: 128, vocabSize: 151936 };
 * strictEqual(generateRowBytes(config, 818, 2048), 2880 * 1024 * 4);
 * strictEqual(generateRowBytes(config, 818, 2048, { kvDtype: "f16" }), 2880 * 1024 * 2);
 * ```
 */
export function generateRowBytes(
  config: Pick<Qwen3Config, "numKeyValueHeads" | "headDim" | "vocabSize">,
  promptLength: number,
  maxNewTokens: number,
  options: GenerateRowBytesOptions = {},
): number {
  const kv = cacheCapacity(promptLength, maxNewTokens) * config.numKeyValueHeads * config.headDim;
  return Math.max(kv * kvBytesPerElement(options.kvDtype), 4 * config.vocabSize);
}

/**
 * Frees the generation buffers (KV cache, activations) kept for `model`; the next generation
 * allocates them again. Refused while the model is busy (`WebGpuQwen3.acquire`), e.g. while a
 * generation records into them.
 *
 * @param model The WebGPU model.
 * @throws {Error} If the model is busy with an operation (naming it).
 *
 * @example Free after a rollout phase
 * ```ts ignore
 * import { releaseGenerateWorkspace } from "./generate_webgpu.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * releaseGenerateWorkspace(model);
 * ```
 */
export function releaseGenerateWorkspace(model: WebGpuQwen3): void {
  const busy = model.busyWith;
  if (busy !== null) {
    throw new Error(
      `Cannot release the generation workspace: a call to ${busy} on this model is still ` +
        `running; await it first`,
    );
  }
  const ws = workspaces.get(model);
  if (!ws) return;
  workspaces.delete(model);
  destroy(ws);
  model.ctx.clearBindGroups();
}

function destroy(ws: Workspace): void {
  ws.cache.dispose();
  ws.merged?.dispose();
  for (const b of Object.values(ws)) if (b instanceof GPUBuffer) b.destroy();
}

/** The model's workspace, reallocated (every size the larger of old and new) when too small. */
function workspace(model: WebGpuQwen3, need: GenerateWorkspaceSizes): Workspace {
  const old = workspaces.get(model);
  const keys = ["rows", "tokens", "capacity", "outWords", "infoWords", "rank"] as const;
  if (old && old.cache.dtype === model.kvDtype && keys.every((k) => old[k] >= need[k])) return old;
  const { ctx } = model;
  const c = model.config;
  const size = { ...need };
  if (old) { for (const k of keys) size[k] = Math.max(old[k], need[k]); }
  // Grown past one binding (more rows of an earlier call × this call's longer cache): this
  // call's own sizes, which may fit.
  const kvd = c.numKeyValueHeads * c.headDim;
  const kvBytes = kvBytesPerElement(model.kvDtype);
  if (size.rows * size.capacity * kvd * kvBytes > ctx.gpu.maxBindingSize) {
    Object.assign(size, need);
  }
  const cache = new KvCache(ctx, c, {
    rows: size.rows,
    capacity: size.capacity,
    dtype: model.kvDtype,
  });
  if (old) {
    destroy(old);
    ctx.clearBindGroups();
  }
  const n = size.tokens;
  const buf = (elements: number, label: string) => {
    if (elements * 4 > ctx.gpu.maxBindingSize) {
      throw new RangeError(
        `Cannot generate: buffer "${label}" needs ${elements * 4} bytes, more than one storage ` +
          `binding (${ctx.gpu.maxBindingSize}); generate fewer sequences at once`,
      );
    }
    return ctx.createBuffer(elements * 4, `generate.${label}`);
  };
  const ws: Workspace = {
    ...size,
    cache,
    ...allocateLayerActivations(c, n, buf),
    idsPre: buf(n, "ids_prefill"),
    posPre: buf(n, "positions_prefill"),
    maskPre: buf(n, "mask_prefill"),
    idsDec: buf(size.rows, "ids"),
    posDec: buf(size.rows, "positions"),
    hLast: buf(size.rows * c.hiddenSize, "h_last"),
    qkv: buf(size.rows * (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim, "qkv"),
    gateUp: buf(size.rows * 2 * c.intermediateSize, "gate_up"),
    logits: buf(size.rows * c.vocabSize, "logits"),
    ctrl: buf(4, "ctrl"),
    info: buf(size.infoWords, "info"),
    out: buf(size.outWords, "out"),
    state: buf(size.rows * 2, "state"),
    // In 4-byte words: one f32 value, or two f16 (kvd is even for an f16 cache).
    scratch: buf(size.rows * size.capacity * kvd * kvBytes / 4, "scratch"),
    attnScratch: buf(
      Math.max(
        1,
        attentionScratchSize({
          b: size.rows,
          tq: 1,
          kvLen: size.capacity,
          hq: c.numAttentionHeads,
          hkv: c.numKeyValueHeads,
          d: c.headDim,
        }),
      ),
      "attention_scratch",
    ),
  };
  if (size.rank > 0) ws.loraU = buf(n * size.rank, "lora_u");
  workspaces.set(model, ws);
  model.registerWorkspace(releaserOf(model));
  return ws;
}

/**
 * Records the embedding and the decoder layers over `rows × tokens` inputs into `ws.h`, appending
 * each layer's keys and values to the cache.
 */
function recordForward(
  ctx: GpuContext,
  into: GPUComputePassEncoder | SubmitSplitter,
  model: GpuModelWeights,
  ws: Workspace,
  step: StepShape,
): void {
  const split = into instanceof SubmitSplitter ? into : undefined;
  const pass = () => split?.pass ?? (into as GPUComputePassEncoder);
  const n = step.rows * step.tokens;
  const acts: LayerActivationBuffers = { ...ws, x1: ws.x, x2: ws.x, loraScratch: ws.loraU };
  encodeEmbedding(ctx, pass(), { ids: step.ids, table: model.embedTokens, out: ws.h, tokens: n });
  model.layers.forEach((_, l) => {
    const layer = ws.cache.layers[l];
    encodeDecoderLayer(pass(), model, {
      layer: l,
      hIn: ws.h,
      acts,
      rows: step.rows,
      tokens: step.tokens,
      positions: step.positions,
      mask: ws.maskPre,
      kvCache: {
        k: layer.k,
        v: layer.v,
        mask: ws.cache.mask,
        ctrl: ws.ctrl,
        slots: ws.cache.capacity,
        width: ws.cache.width,
        f16: ws.cache.dtype === "f16",
        row0: step.row0,
        kvLen: step.kvLen,
        attnScratch: ws.attnScratch,
      },
      matvec: true,
    });
    split?.layerDone();
  });
}

/** Records final norm → LM head → sampler → cursor advance for `rows` residual rows in `h`. */
function recordHead(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  model: WebGpuQwen3,
  ws: Workspace,
  h: GPUBuffer,
  rows: number,
  options: ResolvedGenerateOptions,
  sequences: number,
): void {
  const c = model.config;
  // The final norm: inside the LM head's matvec on a hardware adapter (as the layers' norms,
  // encodeDecoderLayer's `fusePrologues`), else a dispatch of its own.
  const norm: MatvecPrologue = { kind: "rmsnorm", h, g: model.norm, eps: c.rmsNormEps };
  const fuse = !ctx.gpu.isFallbackAdapter;
  if (!fuse) {
    encodeRmsNorm(ctx, pass, {
      x: h,
      w: model.norm,
      y: ws.x,
      rows,
      d: c.hiddenSize,
      eps: c.rmsNormEps,
    });
  }
  encodeLinear(ctx, pass, {
    x: ws.x,
    w: model.lmHead,
    y: ws.logits,
    m: rows,
    matvec: true,
    prologue: fuse ? norm : undefined,
  });
  encodeSample(ctx, pass, {
    logits: ws.logits,
    info: ws.info,
    ctrl: ws.ctrl,
    ids: ws.idsDec,
    out: ws.out,
    state: ws.state,
    rows,
    v: c.vocabSize,
    sequences,
    maxNewTokens: options.maxNewTokens,
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    minP: options.minP,
    numEos: options.eosTokenIds.length,
    numStop: options.stopTokenIds.length,
    minNewTokens: options.minNewTokens,
    firstSequence: options.firstSequence,
  });
  encodeDecodeAdvance(ctx, pass, { ctrl: ws.ctrl, positions: ws.posDec, rows });
}

/**
 * Drops finished rows: moves the cache rows of `running` sequences to the front (through the
 * scratch buffer: a buffer cannot be copied onto itself) and rewrites the per-row inputs.
 */
function compact(
  enc: GPUCommandEncoder,
  model: WebGpuQwen3,
  ws: Workspace,
  s: {
    rowSeq: number[];
    running: number[];
    step: number;
    lens: number[];
    P: number;
    host: Uint32Array;
    B: number;
  },
): void {
  const { cache } = ws;
  const queue = model.ctx.device.queue;
  const rowOf = new Map(s.rowSeq.map((b, r) => [b, r]));
  // Rows before the first move stay where they are.
  let keep = 0;
  while (keep < s.running.length && rowOf.get(s.running[keep]) === keep) keep++;
  // Slots written so far, in bytes (a multiple of 4: an f16 cache's width is even).
  const used = (s.P + s.step) * cache.width * cache.bytesPerElement;
  const rowBytes = cache.capacity * cache.width * cache.bytesPerElement;
  if (keep < s.running.length) {
    for (const layer of cache.layers) {
      for (const buffer of [layer.k, layer.v]) {
        for (let i = keep; i < s.running.length; i++) {
          enc.copyBufferToBuffer(
            buffer,
            rowOf.get(s.running[i])! * rowBytes,
            ws.scratch,
            i * rowBytes,
            used,
          );
        }
        enc.copyBufferToBuffer(
          ws.scratch,
          keep * rowBytes,
          buffer,
          keep * rowBytes,
          (s.running.length - keep) * rowBytes,
        );
      }
    }
  }
  // Per-row inputs of the next step: last token, its position, and the mask of written slots.
  const R = s.running.length;
  const mask = new Uint32Array(R * cache.capacity);
  const ids = new Uint32Array(R);
  const pos = new Uint32Array(R);
  s.running.forEach((b, r) => {
    mask.fill(1, r * cache.capacity + s.P - s.lens[b], r * cache.capacity + s.P + s.step - 1);
    ids[r] = s.host[((s.step - 1) * s.B + b) * 3];
    pos[r] = s.lens[b] + s.step - 1;
  });
  queue.writeBuffer(cache.mask, 0, mask);
  queue.writeBuffer(ws.idsDec, 0, ids);
  queue.writeBuffer(ws.posDec, 0, pos);
}
