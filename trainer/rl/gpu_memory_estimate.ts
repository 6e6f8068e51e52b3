/**
 * A start-up estimate of the GPU memory of an RL run on WebGPU, by item, from the model's shape
 * and the run's keys. The formulas repeat the allocation code, buffer by buffer: the weights
 * (`WebGpuQwen3`'s upload), the adapters and their gradients (`GpuLora`, `GpuAdamw`'s two
 * moments), generation's workspace (model/generate_webgpu.ts `workspace`: the KV cache of
 * model/kv_cache.ts, `allocateLayerActivations`, the decode buffers, the logits), the merged
 * adapter copy (model/merge_adapters_webgpu.ts), the forward workspace of `tokenLogprobs`
 * (`WebGpuQwen3#workspace`) and the training workspace (`WebGpuQwen3Backward#workspace`, with the
 * LM head's block rows of `lmHeadBlockRows`), and the kernels' scratch (`GpuContext.scratch`: the
 * split-K partial products of the backward's matmuls on a hardware adapter, from the products
 * each phase records and the launchers' own `matmulSplitK`, grown as `scratchBytes` grows them).
 * Left out: the objective's per-row buffers, uniforms and readback staging (small next to the
 * items; `gpu_memory_estimate_test.ts` bounds the difference on the tiny model), and the driver's
 * own overhead.
 *
 * The shapes are the largest a run can make: every prompt as long as the longest, every response
 * `rl.maxNewTokens` long, full micro-batches, and each generation call as many rows as
 * `generateGroups` puts in one call. The result is an estimate from code, not a measurement on a
 * real GPU.
 *
 * @module
 */
import type { Qwen3Config } from "../../model/config.ts";
import type { TensorTableConfig } from "../../model/tensor_table.ts";
import { generateRowBytes, type GenerateWorkspaceSizes } from "../../model/generate_webgpu.ts";
import { attentionScratchSize } from "../../kernels/attention/attention.ts";
import { RMS_NORM_BACKWARD_BLOCK_ROWS } from "../../kernels/rms_norm/rms_norm_backward.ts";
import { matmulSplitK } from "../../kernels/matmul/matmul.ts";
import { HILO_GROUPED_MAX_RANK } from "../../kernels/hilo_grouped/hilo_grouped_expert.ts";
import { HILO_GROUPED_MIN_EXPERTS } from "../../model/lora_webgpu.ts";
import { DEFAULT_FILL_WORKGROUPS, scratchBytes } from "../../gpu/context.ts";

/**
 * The adapters, per decoder layer: rank and (HILO) experts of every target projection.
 *
 * @example LoRA r = 16 on the attention projections of a 28-layer model
 * ```ts
 * import type { GpuMemoryAdapters } from "./gpu_memory_estimate.ts";
 *
 * const adapters: GpuMemoryAdapters = {
 *   targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
 *   ranks: Array(28).fill(16),
 * };
 * ```
 */
export interface GpuMemoryAdapters {
  /** The adapted projections (`q_proj` … `down_proj`), in every layer. */
  targets: readonly string[];
  /**
   * Rank of each layer's modules (the largest, where `rankPattern` varies it); a shorter list
   * repeats its last value.
   */
  ranks: readonly number[];
  /** HILO experts per layer (a router when more than 1), as `ranks`; default 1 (plain LoRA). */
  experts?: readonly number[];
}

/**
 * What {@linkcode estimateRlGpuMemory} needs: the model's shape and the run's keys.
 *
 * @example The keys of a GSM8K-length LoRA run of Qwen3-0.6B
 * ```ts
 * import type { GpuMemoryEstimateInput } from "./gpu_memory_estimate.ts";
 *
 * const input: GpuMemoryEstimateInput = {
 *   model: {
 *     vocabSize: 151936, hiddenSize: 1024, intermediateSize: 3072, numHiddenLayers: 28,
 *     numAttentionHeads: 16, numKeyValueHeads: 8, headDim: 128, tieWordEmbeddings: true,
 *     maxPositionEmbeddings: 40960,
 *   },
 *   adapters: { targets: ["q_proj", "v_proj"], ranks: Array(28).fill(16) },
 *   groupSize: 16, genBatchPrompts: 8, evalPrompts: 48, evalSamples: 4,
 *   promptTokens: 252, maxNewTokens: 1024, microBatchSize: 32,
 * };
 * ```
 */
export interface GpuMemoryEstimateInput {
  /** The model's shape. */
  model: TensorTableConfig & Pick<Qwen3Config, "maxPositionEmbeddings">;
  /** `model.weightDtype`: bytes of the weight matrices (norms stay f32). Default `"f32"`. */
  weightDtype?: "f32" | "f16";
  /** Bytes of a KV cache element (4 for f32, 2 for an f16 cache). Default 4. */
  kvBytes?: number;
  /** The adapters, or `null` for full fine-tuning (gradients of every weight, in f32). */
  adapters: GpuMemoryAdapters | null;
  /** AdamW on the device (`trainer.optimizer` auto/device): two f32 moments per parameter. Default true. */
  deviceOptimizer?: boolean;
  /** `rl.groupSize`. */
  groupSize: number;
  /**
   * `rl.genBatchPrompts`: prompts per rollout generation batch; 0 when the rollouts are not
   * generated on this GPU (a remote `rl.rollout.backend`).
   */
  genBatchPrompts: number;
  /** `rl.eval.prompts` (0: no held-out evaluation). */
  evalPrompts: number;
  /** `rl.eval.samples`. */
  evalSamples: number;
  /** `rl.eval.batchPrompts`: most held-out prompts per generate call; 0 or absent: no cap. */
  evalBatchPrompts?: number;
  /** Tokens of the longest training prompt. */
  promptTokens: number;
  /** Tokens of the longest held-out prompt; default `promptTokens`. */
  evalPromptTokens?: number;
  /** `rl.maxNewTokens`. */
  maxNewTokens: number;
  /** `rl.microBatchSize`. */
  microBatchSize: number;
  /**
   * Whether generation merges the adapters into copies of their weights, at the weight dtype
   * (`rl.mergeAdapters`). Default false.
   */
  mergeAdapters?: boolean;
  /** `rl.releaseWorkspaces`: each phase frees the others' workspaces. Default true. */
  releaseWorkspaces?: boolean;
  /** An align term at an intermediate layer (`layer: N`): one more `[tokens, hidden]` buffer. */
  intermediateLayer?: boolean;
  /** EOS and stop token ids (the sampler's info words). Default 1. */
  stopTokens?: number;
  /** The device's `maxStorageBufferBindingSize`. Default 2 GiB − 4. */
  maxBindingSize?: number;
  /** The device's `minStorageBufferOffsetAlignment` in bytes. Default 256. */
  offsetAlignment?: number;
  /**
   * The adapter is a software one (`Gpu.isFallbackAdapter`, e.g. lavapipe): its matmuls never
   * split K, so no scratch. Default false (a hardware GPU).
   */
  isFallbackAdapter?: boolean;
  /**
   * `GpuContext.fillWorkgroups` on a hardware adapter (the workgroups a split-K product aims
   * for). Default `DEFAULT_FILL_WORKGROUPS.hardware` (256).
   */
  fillWorkgroups?: number;
}

/**
 * Bytes by item of {@linkcode estimateRlGpuMemory}.
 *
 * @example Usage
 * ```ts
 * import type { GpuMemoryEstimate } from "./gpu_memory_estimate.ts";
 *
 * const gb = (e: GpuMemoryEstimate) => (e.peak / 1e9).toFixed(1);
 * ```
 */
export interface GpuMemoryEstimate {
  /** Embedding, LM head (when untied), projections, norms and the RoPE table. */
  weights: number;
  /** The adapters' parameters (LoRA A/B, HILO experts and routers). */
  adapters: number;
  /** The trainable parameters' gradients and, on the device, AdamW's two moments. */
  optimizer: number;
  /**
   * Generation's copy of the projections whose adapters merge (during generate calls), at the
   * weight dtype (f16: plus the merge's 8-byte overflow status).
   */
  mergedCopy: number;
  /** KV cache of the largest generate call: K and V of every layer, key mask, row scratch. */
  kvCache: number;
  /** The rest of generation's workspace: prefill activations, decode buffers, logits. */
  generation: number;
  /** `tokenLogprobs`' workspace for one micro-batch (recomputed old log-probs, anchors). */
  forward: number;
  /** The training step's workspace for one micro-batch. */
  training: number;
  /**
   * The kernels' scratch (`GpuContext.scratch`), kept from its first use until the model is
   * disposed: the "matmul split-K" partial products of the training step's backward products
   * (and of the merge's, which at ranks below 1024 never split) on a hardware adapter; every
   * buffer the name grew through, over the requests in record order (`scratchBytes`). 0 on a
   * software adapter.
   */
  scratch: number;
  /**
   * The "matmul split-K" requests behind `scratch`, in bytes, in the order the products record
   * them (the merge's, then one training step's: `scratch` is `scratchBytes` of them); empty on a
   * software adapter. `gpu_memory_estimate_test.ts` compares them with the requests a real
   * training step makes, so that a change to the backward's products or their order that the
   * estimate does not follow fails there.
   */
  scratchRequests: number[];
  /** Always allocated: weights + adapters + optimizer. */
  resident: number;
  /**
   * Largest total: `resident` plus `scratch` plus the largest phase (generation with its merged copy, the
   * forward pass, or the training step) when the phases release each other's workspaces, else
   * plus all of them (the workspaces kept all run, generation's grown to every call's largest
   * sizes).
   */
  peak: number;
  /** Rows of the largest rollout and held-out generate calls. */
  generateRows: { rollout: number; eval: number };
  /** Tokens of one micro-batch: `microBatchSize × (promptTokens + maxNewTokens)`. */
  microBatchTokens: number;
}

type Model = GpuMemoryEstimateInput["model"];

/** Sizes of one generation workspace. */
type GenSizes = GenerateWorkspaceSizes;

/** Bytes of a buffer of `elements` floats as `GpuContext.createBuffer` rounds them. */
function f32(elements: number): number {
  return Math.max(4, elements * 4);
}

/** `allocateLayerActivations` over `n` tokens: h, x, q_raw, k_raw, q, k, v, att, gate, up, act. */
function layerActivations(c: Model, n: number): number {
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  return 2 * f32(n * c.hiddenSize) + 3 * f32(n * qd) + 3 * f32(n * kvd) +
    3 * f32(n * c.intermediateSize);
}

/** Input and output sizes of a projection. */
function projectionShape(c: Model, target: string): [number, number] {
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const shapes: Record<string, [number, number]> = {
    q_proj: [H, qd],
    k_proj: [H, kvd],
    v_proj: [H, kvd],
    o_proj: [qd, H],
    gate_proj: [H, I],
    up_proj: [H, I],
    down_proj: [I, H],
  };
  const s = shapes[target];
  if (s === undefined) {
    throw new RangeError(
      `Cannot estimate the GPU memory: adapter target "${target}" must be one of ` +
        `${Object.keys(shapes).join(", ")}`,
    );
  }
  return s;
}

/** Entry `l` of a per-layer list, the last one past its end; `fallback` for an empty list. */
function atLayer(list: readonly number[] | undefined, l: number, fallback: number): number {
  if (list === undefined || list.length === 0) return fallback;
  return list[Math.min(l, list.length - 1)];
}

/** The LoRA scratch width of the workspaces (`GpuLora.maxRank`), 0 without adapters. */
function scratchRank(a: GpuMemoryAdapters | null, layers: number): number {
  if (a === null) return 0;
  let most = 1;
  for (let l = 0; l < layers; l++) {
    const E = atLayer(a.experts, l, 1);
    // A routed module's scratch also holds 4 areas of E gates after a 64-float gap.
    most = Math.max(most, atLayer(a.ranks, l, 1) + (E > 1 ? 4 * (E + 64) : 0));
  }
  return most;
}

/** Generation's workspace, split into its KV part and the rest. */
function generationBytes(
  c: Model,
  s: GenSizes,
  kvBytes: number,
): { kv: number; rest: number } {
  const kvd = c.numKeyValueHeads * c.headDim;
  const slots = s.rows * s.capacity;
  const kvBuf = Math.max(4, Math.ceil((slots * kvd * kvBytes) / 4) * 4);
  // K and V per layer, the shared u32 key mask, and the one-layer scratch that moves rows.
  const kv = c.numHiddenLayers * 2 * kvBuf + f32(slots) + kvBuf;
  const n = s.tokens;
  const B = s.rows;
  const attn = attentionScratchSize({
    b: B,
    tq: 1,
    kvLen: s.capacity,
    hq: c.numAttentionHeads,
    hkv: c.numKeyValueHeads,
    d: c.headDim,
  });
  const rest = layerActivations(c, n) + 3 * f32(n) + 2 * f32(B) + f32(B * c.hiddenSize) +
    f32(B * (c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim) +
    f32(B * 2 * c.intermediateSize) + f32(B * c.vocabSize) + f32(4) + f32(s.infoWords) +
    f32(s.outWords) + f32(B * 2) + f32(Math.max(1, attn)) + (s.rank > 0 ? f32(n * s.rank) : 0);
  return { kv, rest };
}

/** Rows per LM-head block (`lmHeadBlockRows` without a requested size). */
function headRows(vocab: number, tokens: number, binding: number, alignBytes: number): number {
  const align = Math.max(1, alignBytes / 4);
  const fit = Math.floor(binding / (vocab * 4));
  if (fit >= tokens) return tokens;
  return Math.max(align, Math.floor(fit / align) * align);
}

/** Which products of a training step (or merge) the scratch is sized over. */
interface ScratchShapes {
  model: Model;
  adapters: GpuMemoryAdapters | null;
  /** Tokens of the micro-batch. */
  tokens: number;
  /** LM-head block rows. */
  headRows: number;
  wBytes: number;
  binding: number;
  /** `matmulFill` of the device. */
  fill: number;
}

/** Row counts of a matrix's chunks as `uploadMatrix` splits it to fit one binding. */
function chunkRows(rows: number, cols: number, wBytes: number, binding: number): number[] {
  const per = Math.max(1, Math.floor(binding / (cols * wBytes)));
  const out: number[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) out.push(Math.min(per, rows - r0));
  return out;
}

/**
 * The scratch requests of one training step, in the order `WebGpuQwen3Backward` records its
 * backward products (model/qwen3_webgpu_backward.ts, decoder_layer_webgpu.ts `linearBackward`,
 * lora_webgpu.ts `encodeLoraBackward`): the LM head's blocks, then the layers from the last down,
 * each as down, gate, up, o, q, k, v. Each `encodeMatmulBackward` records `dx` before `dw`.
 */
function trainingScratchRequests(s: ScratchShapes): number[] {
  const { model: c, adapters: a, tokens: n, fill } = s;
  const out: number[] = [];
  // One backward product `[m, n]` over k, as matmul_backward.ts records it (splitK allowed).
  const product = (m: number, cols: number, k: number) => {
    const plan = matmulSplitK(m, cols, k, { fill, splitK: true });
    if (plan !== null) out.push(plan.scratchBytes);
  };
  const full = a === null;
  const H = c.hiddenSize;
  // The LM head: per row block, per chunk of the head, dx [rows, H] over the chunk's rows, and
  // (full fine-tuning) its gradient [chunk, H] over the block's rows.
  for (let r0 = 0; r0 < n; r0 += s.headRows) {
    const rows = Math.min(s.headRows, n - r0);
    for (const vr of chunkRows(c.vocabSize, H, s.wBytes, s.binding)) {
      product(rows, H, vr);
      if (full) product(vr, H, rows);
    }
  }
  const order = ["down_proj", "gate_proj", "up_proj", "o_proj", "q_proj", "k_proj", "v_proj"];
  const targets = new Set(a?.targets ?? []);
  for (let l = c.numHiddenLayers - 1; l >= 0; l--) {
    // The lowest layer (every layer is adapted here) leaves no input gradient: q, k and v
    // record no dx there, and with a frozen base no base product at all.
    const inputGrad = full || l > 0;
    const r = atLayer(a?.ranks, l, 1);
    const E = atLayer(a?.experts, l, 1);
    for (const t of order) {
      const [inF, outF] = projectionShape(c, t);
      const dx = inputGrad || !["q_proj", "k_proj", "v_proj"].includes(t);
      if (dx || full) {
        for (const rows of chunkRows(outF, inF, s.wBytes, s.binding)) {
          if (dx) product(n, inF, rows);
          if (full) product(rows, inF, n);
        }
      }
      if (!targets.has(t)) continue;
      // lora_webgpu.ts: a routed module with the grouped dispatch ("auto": E ≥ 4, rank ≤ 64)
      // runs its experts in their own kernels; otherwise each expert's B (dx then dw) and A.
      const grouped = E > 1 && E >= HILO_GROUPED_MIN_EXPERTS && r <= HILO_GROUPED_MAX_RANK;
      for (let e = 0; e < (grouped ? 0 : E); e++) {
        product(n, r, outF);
        product(outF, r, n);
        if (dx) product(n, inF, r);
        product(r, inF, n);
      }
      if (E > 1) {
        // The router [E, in]: dx over E, then its gradient over the tokens.
        if (dx) product(n, inF, E);
        product(E, inF, n);
      }
    }
  }
  return out;
}

/**
 * Estimates the GPU memory of an RL run, by item, and its peak: the weights, adapters, gradients
 * and optimizer moments stay all run, and on a hardware adapter the kernels' split-K scratch from
 * the first training step on; generation (KV cache, activations, logits, the merged copy
 * during a call), the forward pass and the training step each need a workspace, which
 * `rl.releaseWorkspaces` frees between the phases (peak: the largest phase) and which otherwise
 * all stay (peak: their sum).
 *
 * @param input The model's shape and the run's keys.
 * @returns Bytes by item, the peak, and the shapes they were sized for.
 * @throws {RangeError} When an adapter target is not a Qwen3 projection.
 *
 * @example Qwen3-0.6B, LoRA r = 16 on all projections, GSM8K-length rollouts
 * ```ts
 * import { estimateRlGpuMemory } from "./gpu_memory_estimate.ts";
 * import { ok } from "node:assert/strict";
 *
 * const all = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
 * const input = {
 *   model: {
 *     vocabSize: 151936, hiddenSize: 1024, intermediateSize: 3072, numHiddenLayers: 28,
 *     numAttentionHeads: 16, numKeyValueHeads: 8, headDim: 128, tieWordEmbeddings: true,
 *     maxPositionEmbeddings: 40960,
 *   },
 *   adapters: { targets: all, ranks: Array(28).fill(16) },
 *   groupSize: 16, genBatchPrompts: 8, evalPrompts: 48, evalSamples: 4,
 *   promptTokens: 252, maxNewTokens: 1024, microBatchSize: 32,
 * };
 * const released = estimateRlGpuMemory(input);
 * const kept = estimateRlGpuMemory({ ...input, releaseWorkspaces: false });
 * ok(released.peak < kept.peak);
 * console.log((released.kvCache / 1e9).toFixed(1), "GB of KV cache");
 * // On a GPU the LoRA weight gradients split K: 1 + 2 MiB of partial sums; none on llvmpipe.
 * console.log(released.scratch, estimateRlGpuMemory({ ...input, isFallbackAdapter: true }).scratch);
 * // 3145728 0
 * ```
 */
export function estimateRlGpuMemory(input: GpuMemoryEstimateInput): GpuMemoryEstimate {
  const c = input.model;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const L = c.numHiddenLayers;
  const V = c.vocabSize;
  const qd = c.numAttentionHeads * c.headDim;
  const kvd = c.numKeyValueHeads * c.headDim;
  const kvBytes = input.kvBytes ?? 4;
  const binding = input.maxBindingSize ?? 2 ** 31 - 4;
  const alignBytes = input.offsetAlignment ?? 256;
  const wBytes = (input.weightDtype ?? "f32") === "f16" ? 2 : 4;
  const release = input.releaseWorkspaces ?? true;
  const a = input.adapters;

  // Weights: matrices at the weight dtype (each buffer rounded to 4 bytes), norms in f32.
  const mat = (rows: number, cols: number) =>
    Math.max(4, Math.ceil((rows * cols * wBytes) / 4) * 4);
  const layerMats = mat(qd, H) + 2 * mat(kvd, H) + mat(H, qd) + 2 * mat(I, H) + mat(H, I);
  const layerNorms = 2 * f32(H) + 2 * f32(c.headDim);
  const embed = mat(V, H);
  // The final norm, and the RoPE table (cos and sin of every position, `headDim` floats each).
  const weights = embed + (c.tieWordEmbeddings ? 0 : mat(V, H)) + L * (layerMats + layerNorms) +
    f32(H) + f32(c.maxPositionEmbeddings * c.headDim);

  // Adapters: A [r, in] and B [out, r] per expert, a router [E, in] where E > 1.
  let adapterBytes = 0;
  let mergedCopy = 0;
  if (a !== null) {
    // Plain LoRA on a weight in one buffer merges into a copy of it at the weight dtype (f16:
    // plus an 8-byte overflow status); where a layer's q|k|v (gate|up) all can and one has an
    // adapter, they are copied as one buffer, unadapted members included
    // (merge_adapters_webgpu.ts `unfusableReason`).
    const fits = (t: string) => {
      const [inF, outF] = projectionShape(c, t);
      return outF * inF * wBytes <= binding;
    };
    const groups = [["q_proj", "k_proj", "v_proj"], ["gate_proj", "up_proj"]];
    for (let l = 0; l < L; l++) {
      const r = atLayer(a.ranks, l, 1);
      const E = atLayer(a.experts, l, 1);
      const merged = new Set<string>();
      for (const t of a.targets) {
        const [inF, outF] = projectionShape(c, t);
        adapterBytes += E * (f32(r * inF) + f32(outF * r)) + (E > 1 ? f32(E * inF) : 0);
        if (E === 1 && fits(t)) merged.add(t);
      }
      for (const group of groups) {
        if (E > 1 || !group.some((t) => merged.has(t)) || !group.every(fits)) continue;
        let rowStart = 0;
        let aligned = true;
        for (const t of group) {
          const [inF, outF] = projectionShape(c, t);
          aligned &&= (wBytes * rowStart * inF) % alignBytes === 0;
          rowStart += outF;
        }
        if (aligned) { for (const t of group) merged.add(t); }
      }
      for (const t of merged) {
        const [inF, outF] = projectionShape(c, t);
        mergedCopy += mat(outF, inF);
      }
    }
    if (wBytes === 2 && mergedCopy > 0) mergedCopy += 8;
  }
  if (!(input.mergeAdapters ?? false)) mergedCopy = 0;
  // Gradients of the trainable parameters (f32), and AdamW's m and v on the device.
  const trainable = a === null
    ? embed * (4 / wBytes) + (c.tieWordEmbeddings ? 0 : mat(V, H) * (4 / wBytes)) +
      L * (layerMats * (4 / wBytes) + layerNorms) + f32(H)
    : adapterBytes;
  const optimizer = trainable * ((input.deviceOptimizer ?? true) ? 3 : 1);

  // Generation: the rollout calls (genBatchPrompts × G rows) and the held-out calls, each cut
  // as generateGroups cuts them to fit one binding.
  const rank = scratchRank(a, L);
  const stop = input.stopTokens ?? 1;
  const widest = Math.max(H, qd, I);
  const genSizes = (prompts: number, perPrompt: number, P: number, cap: number): GenSizes => {
    const perCall = Math.max(
      1,
      Math.min(
        prompts,
        cap,
        Math.floor(binding / (perPrompt * generateRowBytes(c, P, input.maxNewTokens))),
      ),
    );
    const B = perCall * perPrompt;
    const chunkRows = Math.max(1, Math.min(B, Math.floor(binding / (P * widest * 4))));
    return {
      rows: B,
      tokens: Math.max(chunkRows * P, B),
      capacity: Math.ceil((P + input.maxNewTokens) / 64) * 64,
      outWords: input.maxNewTokens * B * 3,
      infoWords: 2 + B + stop,
      rank,
    };
  };
  const rollout = input.genBatchPrompts > 0
    ? genSizes(input.genBatchPrompts, input.groupSize, input.promptTokens, Infinity)
    : null;
  const evalP = input.evalPromptTokens ?? input.promptTokens;
  const evalSizes = input.evalPrompts > 0
    ? genSizes(input.evalPrompts, input.evalSamples, evalP, input.evalBatchPrompts || Infinity)
    : null;
  const genOf = (s: GenSizes | null) =>
    s === null ? { kv: 0, rest: 0 } : generationBytes(c, s, kvBytes);
  let gen = genOf(rollout);
  if (evalSizes !== null) {
    if (release || rollout === null) {
      const e = genOf(evalSizes);
      if (e.kv + e.rest > gen.kv + gen.rest) gen = e;
    } else {
      // Kept all run, the workspace grows to every size's largest.
      const grown = { ...rollout };
      for (const k of Object.keys(grown) as (keyof GenSizes)[]) {
        grown[k] = Math.max(rollout[k], evalSizes[k]);
      }
      gen = genOf(grown);
    }
  }

  // The forward (tokenLogprobs) and training workspaces of one full micro-batch.
  const n = input.microBatchSize * (input.promptTokens + input.maxNewTokens);
  const hr = headRows(V, n, binding, alignBytes);
  const forward = 4 * f32(n) + layerActivations(c, n) + 3 * f32(n) +
    (rank > 0 ? f32(n * rank) : 0) + f32(hr * V) + (input.intermediateLayer ? f32(n * H) : 0);
  const r = Math.max(rank, 1);
  const normRows = n * Math.max(c.numAttentionHeads, 1);
  const partials = Math.max(
    Math.ceil(n / RMS_NORM_BACKWARD_BLOCK_ROWS) * H,
    Math.ceil(normRows / RMS_NORM_BACKWARD_BLOCK_ROWS) * c.headDim,
  );
  const training =
    // ids, mask, positions, targets; hs[0..L]; last hidden; logprobs, lse, entropy; logits block
    4 * f32(n) + (L + 1) * f32(n * H) + f32(n * H) + 3 * f32(n) + f32(hr * V) +
    // dLogprobs, dLastHidden, hMid
    f32(n) + 2 * f32(n * H) +
    // acts: x1, x2, q_raw, q, att, k_raw, k, v, gate, up, act, lora_u
    2 * f32(n * H) + 3 * f32(n * qd) + 3 * f32(n * kvd) + 3 * f32(n * I) + f32(n * r) +
    // grads: lora_du, dh, dx, d_act, d_gate, d_up, d_att, dq, dk, dv, att_stats, rstd, partials
    f32(n * r) + 2 * f32(n * H) + 3 * f32(n * I) + 2 * f32(n * qd) + 2 * f32(n * kvd) +
    f32(n * c.numAttentionHeads * 2) + f32(normRows) + f32(partials);

  // The kernels' scratch: only a hardware adapter's backward products split K. The merge's
  // products (`dx` of B·A, k = rank) would ask it before the training step's; they split only
  // from rank 1024 (SPLIT_K_MIN_K) on.
  const requests: number[] = [];
  if (!(input.isFallbackAdapter ?? false)) {
    const fill = input.fillWorkgroups ?? DEFAULT_FILL_WORKGROUPS.hardware;
    if (a !== null && mergedCopy > 0 && wBytes === 4) {
      for (let l = 0; l < L; l++) {
        const r = atLayer(a.ranks, l, 1);
        if (atLayer(a.experts, l, 1) > 1) continue;
        for (const t of a.targets) {
          const [inF, outF] = projectionShape(c, t);
          const plan = matmulSplitK(outF, inF, r, { fill, splitK: true });
          if (plan !== null) requests.push(plan.scratchBytes);
        }
      }
    }
    requests.push(...trainingScratchRequests({
      model: c,
      adapters: a,
      tokens: n,
      headRows: hr,
      wBytes,
      binding,
      fill,
    }));
  }
  const scratch = scratchBytes(requests);

  const resident = weights + adapterBytes + optimizer;
  const generation = gen.kv + gen.rest + mergedCopy;
  const peak = resident + scratch +
    (release ? Math.max(generation, forward, training) : generation + forward + training);
  return {
    weights,
    adapters: adapterBytes,
    optimizer,
    mergedCopy,
    kvCache: gen.kv,
    generation: gen.rest,
    forward,
    training,
    scratch,
    scratchRequests: requests,
    resident,
    peak,
    generateRows: { rollout: rollout?.rows ?? 0, eval: evalSizes?.rows ?? 0 },
    microBatchTokens: n,
  };
}
