/**
 * LoRA adapters merged into copies of the base weights for generation: `W' = W + Σ_e scale_e ·
 * B_e·A_e` per projection, so that a decode step records each projection as one matmul (the base
 * weight's) instead of three (base, `x·Aᵀ`, `·Bᵀ`): 14 dispatches fewer per layer with adapters on
 * all seven projections.
 *
 * A projection merges when its adapter has no router (plain LoRA: every expert applies to every
 * token) and its base weight is in one buffer: f32, or f16 with an adapter of one expert (plain
 * LoRA). The others keep today's unmerged path: HILO's routed modules (the experts' weights depend
 * on the token), weights split into row blocks (too large for one binding), and f16 weights under
 * a module of several unrouted experts (the f16 merge adds one expert, so that the merged value
 * is rounded once).
 *
 * f16 base weights merge into an f16 copy, as many bytes as the base weights: `W'16 =
 * f16(f32(W16) + scale·B·A)` (kernels/lora_merge_f16: the sum and the add in f32, one rounding
 * to f16 at the end, round to nearest on the adapters seen). That is one rounding more than the
 * unmerged f16 path (which computes `W16·x + scale·B(A·x)` in f32), so merged f16 generation is
 * not bit-equal to it: on the fixture model (LoRA r8 on all projections) the model log-probs of
 * the same greedy tokens differ by up to 1.1e-3, the order of f16 weights against f32 ones
 * (1.2e-3; the f32 merge: 1.4e-6; model/merge_adapters_f16_webgpu_test.ts). A merged value
 * beyond the f16 range (a half that would be ±Inf) follows the rule of the f16 upload
 * (`internal/f16.ts`): an error, not an infinity. The kernel writes it clamped to ±65504 and
 * counts it in an 8-byte status buffer ({@linkcode MergedAdapterWeights.status}); generation reads
 * that with its first readback and throws ({@linkcode MergedAdapterWeights.checkStatus}) naming
 * the module.
 *
 * Fused groups: where a layer's q_proj, k_proj and v_proj all qualify (each merges or has no
 * adapter, each base weight in one buffer and all of one dtype, at least one merges, and each
 * block's byte offset a multiple of the device's storage-offset alignment: any hidden size that
 * is a multiple of 64 in f32, of 128 in f16, every Qwen3), their merged matrices are written as
 * one `[qDim + 2·kvDim, hidden]` buffer of that dtype, q rows then k then v (a projection without
 * an adapter gets a copy of its base weight there: its bytes more than merging alone), and
 * likewise gate_proj|up_proj as one `[2·inter, hidden]` buffer: a decode step then records one
 * matvec for q, k and v and one for gate and up (`encodeDecoderLayer` with the layer's
 * `qkvProj` / `gateUpProj`; the matvec reads f16 weights as it reads the base ones). Each
 * projection keeps a view into its block (`GpuMatrixChunk.offset`) for the other steps
 * (prefill). A group with a routed (HILO) module, an unmergeable or row-split weight, or no
 * merged member is not fused: its plain members merge into buffers of their own as before.
 *
 * {@linkcode MergedAdapterWeights} holds those buffers (as many bytes as the merged base weights,
 * plus the unadapted members of fused groups, plus the 8-byte status where any is f16) and
 * recomputes them from the current base weights and adapter values each time
 * {@linkcode MergedAdapterWeights.encode} is recorded: generation records it once per call, so an
 * adapter changed between calls (every RL step) or a base weight changed (full fine-tuning) is
 * always seen. {@linkcode MergedAdapterWeights.view} gives the model's weights with the merged
 * matrices in place of the base ones, and adapters that skip the merged projections, for
 * `encodeDecoderLayer`.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import {
  encodeLoraMergeF16,
  LORA_MERGE_F16_STATUS_WORDS,
} from "../kernels/lora_merge_f16/lora_merge_f16.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import type { GpuLayerWeights, GpuModelWeights } from "./decoder_layer_webgpu.ts";
import type { GpuLora, GpuLoraModule } from "./lora_webgpu.ts";
import {
  FUSED_FIELD,
  FUSED_GROUPS,
  type FusedGroup,
  PROJECTION_FIELD,
  type ProjectionName,
  PROJECTIONS,
} from "./tensor_table.ts";

/** One projection whose adapter merges into its base weight. */
export interface MergeTarget {
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: ProjectionName;
  /** The base weight `[out, in]` (f32 or f16, one buffer). */
  weight: GpuMatrix;
  /** The adapter module (no router). */
  module: GpuLoraModule;
}

/**
 * Why a projection's adapter does not merge into its base weight, or null when it does.
 *
 * @param module The projection's adapter module.
 * @param weight The projection's base weight.
 * @returns The reason, or null.
 *
 * @example A plain LoRA module on an f32 weight merges
 * ```ts ignore
 * import { unmergeableReason } from "./merge_adapters_webgpu.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * const module = model.adapters!.module(0, "q_proj")!;
 * console.log(unmergeableReason(module, model.layers[0].qProj)); // null
 * ```
 */
export function unmergeableReason(module: GpuLoraModule, weight: GpuMatrix): string | null {
  if (module.router) return "routed (HILO) adapter";
  if (weight.chunks.length !== 1) return `base weight split into ${weight.chunks.length} blocks`;
  if (weight.dtype === "f16" && module.experts.length !== 1) {
    return `f16 base weight with ${module.experts.length} experts (the f16 merge takes one)`;
  }
  return null;
}

/** Bytes of one element of `weight`. */
const elementBytes = (weight: GpuMatrix) => weight.dtype === "f16" ? 2 : 4;

/** Bytes of a buffer of `rows × cols` elements of `dtype` (whole 4-byte words, at least one). */
function bufferBytes(dtype: "f32" | "f16", rows: number, cols: number): number {
  return Math.max(4, Math.ceil(((dtype === "f16" ? 2 : 4) * rows * cols) / 4) * 4);
}

/**
 * The projections of `model` whose adapters merge (see {@linkcode unmergeableReason}), in layer
 * then projection order; none without adapters.
 *
 * @param model The model's weights and adapters.
 * @returns The merge targets.
 *
 * @example Count the mergeable projections
 * ```ts ignore
 * import { mergeTargets } from "./merge_adapters_webgpu.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * console.log(mergeTargets(model).length); // 7 · layers for plain LoRA on all-linear f32
 * ```
 */
export function mergeTargets(model: GpuModelWeights): MergeTarget[] {
  const lora = model.adapters;
  if (!lora) return [];
  const out: MergeTarget[] = [];
  model.layers.forEach((lw, layer) => {
    for (const target of PROJECTIONS) {
      const module = lora.module(layer, target);
      if (!module) continue;
      const weight = lw[PROJECTION_FIELD[target]] as GpuMatrix;
      if (unmergeableReason(module, weight) === null) out.push({ layer, target, weight, module });
    }
  });
  return out;
}

/**
 * Why a layer's q|k|v or gate|up group does not fuse into one merged buffer, or null when it does
 * (see the module's documentation).
 *
 * @param model The model's weights and adapters.
 * @param layer Decoder layer index.
 * @param group Which group.
 * @param alignment The device's `minStorageBufferOffsetAlignment` (bytes).
 * @returns The reason, or null.
 *
 * @example Plain LoRA on every projection of an f32 Qwen3 fuses
 * ```ts ignore
 * import { unfusableReason } from "./merge_adapters_webgpu.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * console.log(unfusableReason(model, 0, "qkv", 256)); // null
 * ```
 */
export function unfusableReason(
  model: GpuModelWeights,
  layer: number,
  group: FusedGroup,
  alignment: number,
): string | null {
  const lora = model.adapters;
  const lw = model.layers[layer];
  const targets = FUSED_GROUPS[group];
  let merges = false;
  let rowStart = 0;
  const first = lw[PROJECTION_FIELD[targets[0]]] as GpuMatrix;
  const { cols } = first;
  const dtype = first.dtype ?? "f32";
  for (const target of targets) {
    const weight = lw[PROJECTION_FIELD[target]] as GpuMatrix;
    const module = lora?.module(layer, target);
    const why = module
      ? unmergeableReason(module, weight)
      : weight.chunks.length !== 1
      ? `base weight split into ${weight.chunks.length} blocks`
      : null;
    if (why) return `${target}: ${why}`;
    if (weight.cols !== cols) return `${target} has ${weight.cols} columns, not ${cols}`;
    if ((weight.dtype ?? "f32") !== dtype) {
      return `${target} has ${weight.dtype ?? "f32"} weights, not ${dtype} as ${targets[0]}`;
    }
    const at = elementBytes(weight) * rowStart * cols;
    if (at % alignment !== 0) {
      return `${target}'s block would start at byte ${at}, not a multiple of the storage ` +
        `offset alignment ${alignment}`;
    }
    merges ||= module !== undefined;
    rowStart += weight.rows;
  }
  return merges ? null : `no adapter on ${targets.join(", ")}`;
}

/** One projection in a merged buffer: its rows from `rowStart`, its adapter if it merges. */
interface Part {
  target: ProjectionName;
  weight: GpuMatrix;
  module?: GpuLoraModule;
  rowStart: number;
}

/** One merged buffer: a projection's, or a fused group's. */
interface Block {
  key: string;
  layer: number;
  group?: FusedGroup;
  /** The storage of the base weights and of the merged buffer. */
  dtype: "f32" | "f16";
  rows: number;
  cols: number;
  parts: Part[];
}

/** The buffers `model`'s merge needs (fused groups first in each layer when `fuse`). */
function mergePlan(model: GpuModelWeights, fuse: boolean, alignment: number): Block[] {
  const lora = model.adapters;
  if (!lora) return [];
  const targets = mergeTargets(model);
  const blocks: Block[] = [];
  model.layers.forEach((lw, layer) => {
    const grouped = new Set<ProjectionName>();
    if (fuse) {
      for (const group of ["qkv", "gate_up"] as const) {
        if (unfusableReason(model, layer, group, alignment) !== null) continue;
        const parts: Part[] = [];
        let rows = 0;
        for (const target of FUSED_GROUPS[group]) {
          const weight = lw[PROJECTION_FIELD[target]] as GpuMatrix;
          parts.push({ target, weight, module: lora.module(layer, target), rowStart: rows });
          rows += weight.rows;
          grouped.add(target);
        }
        blocks.push({
          key: `${layer}.${group}`,
          layer,
          group,
          dtype: parts[0].weight.dtype ?? "f32",
          rows,
          cols: parts[0].weight.cols,
          parts,
        });
      }
    }
    for (const t of targets) {
      if (t.layer !== layer || grouped.has(t.target)) continue;
      const { rows, cols } = t.weight;
      blocks.push({
        key: `${layer}.${t.target}`,
        layer,
        dtype: t.weight.dtype ?? "f32",
        rows,
        cols,
        parts: [{ target: t.target, weight: t.weight, module: t.module, rowStart: 0 }],
      });
    }
  });
  return blocks;
}

const key = (layer: number, target: ProjectionName) => `${layer}.${target}`;

/** Options of {@linkcode MergedAdapterWeights}. */
export interface MergedAdapterOptions {
  /** Write q|k|v and gate|up as one buffer each where they qualify; default true. */
  fuse?: boolean;
}

/**
 * Merged copies of the base weights of the projections whose adapters merge (q|k|v and gate|up
 * fused where they qualify): buffers allocated once, values recomputed by every
 * {@linkcode MergedAdapterWeights.encode}.
 *
 * @example Generate-like use: merge, then record layers over the view
 * ```ts ignore
 * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
 * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
 * const merged = new MergedAdapterWeights(model.ctx, model);
 * const enc = model.ctx.device.createCommandEncoder();
 * merged.encode(enc, model);
 * const weights = merged.view(model); // pass to encodeDecoderLayer
 * // … record the layers, submit; later:
 * merged.dispose();
 * ```
 */
export class MergedAdapterWeights {
  /** The GPU context owning the buffers. */
  readonly ctx: GpuContext;
  #fuse: boolean;
  #blocks: Block[];
  #buffers = new Map<string, GPUBuffer>();
  #status: GPUBuffer | null = null;
  /** The modules merged by the f16 kernel, by status tag (set by each encode). */
  #tags: string[] = [];

  /**
   * Allocates the buffers the merge of `model`'s adapters needs (nothing is computed yet): f32
   * for f32 base weights, f16 for f16 ones, and the overflow status where any is f16.
   *
   * @param ctx The GPU context.
   * @param model The model's weights and adapters.
   * @param options Whether to fuse q|k|v and gate|up.
   */
  constructor(ctx: GpuContext, model: GpuModelWeights, options: MergedAdapterOptions = {}) {
    this.ctx = ctx;
    this.#fuse = options.fuse ?? true;
    this.#blocks = mergePlan(model, this.#fuse, this.#alignment);
    for (const b of this.#blocks) {
      const bytes = bufferBytes(b.dtype, b.rows, b.cols);
      this.#buffers.set(b.key, ctx.createBuffer(bytes, `merged.layer${b.key}`));
    }
    if (this.#blocks.some((b) => b.dtype === "f16")) {
      this.#status = ctx.createBuffer(4 * LORA_MERGE_F16_STATUS_WORDS, "merged.f16_status");
    }
  }

  get #alignment(): number {
    return this.ctx.device.limits.minStorageBufferOffsetAlignment;
  }

  /** Number of merged projections. */
  get size(): number {
    return this.#blocks.reduce((n, b) => n + b.parts.filter((p) => p.module).length, 0);
  }

  /** Bytes of the merged weights (the status buffer not included). */
  get bytes(): number {
    let n = 0;
    for (const b of this.#buffers.values()) n += b.size;
    return n;
  }

  /**
   * The fused groups, in layer order.
   *
   * @example List them
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * console.log(new MergedAdapterWeights(model.ctx, model).fused); // [{ layer: 0, group: "qkv" }, …]
   * ```
   */
  get fused(): { layer: number; group: FusedGroup }[] {
    return this.#blocks.filter((b) => b.group).map((b) => ({ layer: b.layer, group: b.group! }));
  }

  /**
   * Whether these buffers are those `model`'s merge needs now (same projections, same groups,
   * same shapes): false after adapters with other targets were set.
   *
   * @param model The model's weights and adapters.
   * @returns True when {@linkcode MergedAdapterWeights.encode} can merge into them.
   *
   * @example Reallocate when the adapters' targets changed
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * let merged = new MergedAdapterWeights(model.ctx, model);
   * if (!merged.fits(model)) { merged.dispose(); merged = new MergedAdapterWeights(model.ctx, model); }
   * ```
   */
  fits(model: GpuModelWeights): boolean {
    const plan = mergePlan(model, this.#fuse, this.#alignment);
    const sig = (b: Block) =>
      `${b.key}:${b.dtype}:${b.rows}x${b.cols}:` +
      b.parts.map((p) => `${p.target}@${p.rowStart}${p.module ? "+" : ""}`).join(",");
    return this.#buffers.size === plan.length &&
      plan.every((b, i) =>
        this.#blocks[i] !== undefined && sig(b) === sig(this.#blocks[i]) &&
        this.#buffers.get(b.key)?.size === bufferBytes(b.dtype, b.rows, b.cols)
      );
  }

  /**
   * The overflow status of the f16 merges (`[count, tag + 1]`, 8 bytes, zeroed by each
   * {@linkcode MergedAdapterWeights.encode}; see `kernels/lora_merge_f16`), or null when no base
   * weight is f16. Read it back after the merge and pass it to
   * {@linkcode MergedAdapterWeights.checkStatus}.
   *
   * @example Read it with generation's first readback
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * import { readback } from "../gpu/readback.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const merged = new MergedAdapterWeights(model.ctx, model);
   * const enc = model.ctx.device.createCommandEncoder();
   * merged.encode(enc, model);
   * const status = { buffer: merged.status!, offset: 0, size: 8 };
   * const [words] = await readback(model.ctx, [status], enc);
   * merged.checkStatus(new Uint32Array(words));
   * ```
   */
  get status(): GPUBuffer | null {
    return this.#status;
  }

  /**
   * Throws when the status read back after a merge reports merged f16 values beyond the f16
   * range (the rule of `internal/f16.ts`: a half that would be ±Inf is an error).
   *
   * @param words The {@linkcode MergedAdapterWeights.status} words, read back after
   * {@linkcode MergedAdapterWeights.encode}.
   * @throws {RangeError} Naming the count and a module whose merge overflowed.
   *
   * @example Check a status read back
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const merged: MergedAdapterWeights;
   * merged.checkStatus(new Uint32Array([0, 0])); // no overflow: returns
   * ```
   */
  checkStatus(words: Uint32Array): void {
    const [count, tag] = words;
    if (count === 0 && tag === 0) return;
    const name = this.#tags[tag - 1] ?? `(unknown module, tag ${tag})`;
    throw new RangeError(
      `Cannot merge the LoRA adapters into the f16 weights: ${count} merged value(s) are beyond ` +
        `the f16 range (largest finite half ±65504): they would become ±Inf, e.g. in ` +
        `"${name}" + its adapter; generate with mergeAdapters false (the unmerged path adds the ` +
        `adapter in f32) or load the model with weightDtype "f32"`,
    );
  }

  /**
   * Records the merge into `enc`: each merged f32 buffer gets a copy of its base weights (each
   * projection's rows at its block), then one compute pass adds `scale_e · B_e·A_e` per expert
   * (`encodeMatmulBackward`'s `dx = alpha·dy·w` with `dy = B_e [out, r]`, `w = A_e [r, in]`,
   * accumulated into the projection's block). An f16 block's adapted projections are written by
   * `encodeLoraMergeF16` straight from their base weights (`f16(f32(W16) + scale·B·A)`, the
   * status zeroed first), its unadapted ones copied.
   *
   * @param enc The command encoder (outside any pass).
   * @param model The model the buffers were allocated for.
   * @throws {Error} If the buffers do not fit `model`'s merge (see
   * {@linkcode MergedAdapterWeights.fits}).
   *
   * @example Merge the current adapter values
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const merged = new MergedAdapterWeights(model.ctx, model);
   * const enc = model.ctx.device.createCommandEncoder();
   * merged.encode(enc, model);
   * model.ctx.device.queue.submit([enc.finish()]);
   * ```
   */
  encode(enc: GPUCommandEncoder, model: GpuModelWeights): void {
    if (!this.fits(model)) {
      throw new Error(
        `Cannot merge the adapters: the buffers were allocated for ${this.size} projections ` +
          `in ${this.#buffers.size} buffers, other than the ${mergeTargets(model).length} ` +
          `mergeable ones of the model now (adapters replaced?); allocate a new ` +
          `MergedAdapterWeights`,
      );
    }
    // The model's current weights (the plan's are those of the allocation: the same shapes).
    const plan = mergePlan(model, this.#fuse, this.#alignment);
    for (const b of plan) {
      const dst = this.#buffers.get(b.key)!;
      const f16 = b.dtype === "f16";
      for (const p of b.parts) {
        if (f16 && p.module) continue; // written by the f16 merge from the base weights
        // Whole words (an f16 block's last part may hold an odd count: its base buffer and this
        // block end on the same padded word). A fused base weight's view (WebGpuQwen3
        // `fuseProjections`) starts at its offset.
        const bytes = Math.ceil(((f16 ? 2 : 4) * p.weight.rows * b.cols) / 4) * 4;
        const at = (f16 ? 2 : 4) * p.rowStart * b.cols;
        const { buffer: src, offset: from = 0 } = p.weight.chunks[0];
        enc.copyBufferToBuffer(src, from, dst, at, bytes);
      }
    }
    if (this.#status) enc.clearBuffer(this.#status);
    this.#tags = [];
    if (plan.length === 0) return;
    const pass = enc.beginComputePass({ label: "merge adapters" });
    for (const b of plan) {
      const buffer = this.#buffers.get(b.key)!;
      for (const p of b.parts) {
        if (!p.module) continue;
        const { outFeatures: out, inFeatures: inF } = p.module;
        if (b.dtype === "f16") {
          const [e] = p.module.experts;
          const size = 4 * Math.ceil((out * inF) / 2);
          // A fused base weight's view (WebGpuQwen3 `fuseProjections`) starts at its offset.
          const { buffer: base, offset: from } = p.weight.chunks[0];
          encodeLoraMergeF16(this.ctx, pass, {
            w: from ? { buffer: base, offset: from, size } : base,
            a: e.a,
            b: e.b,
            out: { buffer, offset: 2 * p.rowStart * b.cols, size },
            status: this.#status!,
            n: out,
            k: inF,
            r: e.r,
            alpha: e.scale,
            tag: this.#tags.push(p.module.name) - 1,
          });
          continue;
        }
        const dx = { buffer, offset: 4 * p.rowStart * b.cols, size: 4 * out * inF };
        for (const e of p.module.experts) {
          encodeMatmulBackward(this.ctx, pass, {
            dy: e.b,
            w: e.a,
            dx,
            m: out,
            n: e.r,
            k: inF,
            alpha: e.scale,
            accumulateDx: true,
          });
        }
      }
    }
    pass.end();
  }

  /**
   * `model`'s weights with the merged matrices in place of their base weights (views into the
   * fused buffers for a fused group's projections, and the layer's `qkvProj` / `gateUpProj` set
   * to the whole group), and adapters that skip the merged projections (null when every adapted
   * projection merged).
   *
   * @param model The model the buffers were allocated for.
   * @returns The view, for `encodeDecoderLayer` (read only; its buffers are the model's and
   * these).
   *
   * @example Layers over merged weights
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * const view = new MergedAdapterWeights(model.ctx, model).view(model);
   * console.log(view.adapters); // null for plain LoRA (one expert a module on f16 weights)
   * console.log(view.layers[0].qkvProj?.rows); // qDim + 2·kvDim
   * ```
   */
  view(model: GpuModelWeights): GpuModelWeights {
    const merged = new Set<string>();
    const layers = model.layers.map((lw): GpuLayerWeights => ({ ...lw }));
    for (const b of this.#blocks) {
      const buffer = this.#buffers.get(b.key)!;
      const out = layers[b.layer] as unknown as Record<string, GpuMatrix>;
      for (const p of b.parts) {
        if (p.module) merged.add(key(b.layer, p.target));
        const field = PROJECTION_FIELD[p.target];
        const w = model.layers[b.layer][field] as GpuMatrix;
        const offset = (b.dtype === "f16" ? 2 : 4) * p.rowStart * b.cols;
        out[field] = {
          name: `${w.name} (merged${b.group ? `, in ${b.group}` : ""})`,
          rows: w.rows,
          cols: w.cols,
          chunks: [{ buffer, rowStart: 0, rows: w.rows, ...(offset ? { offset } : {}) }],
          dtype: b.dtype,
        };
      }
      // A member merged on its own: the base's fused group weight (if any) no longer holds it.
      for (const g of ["qkv", "gate_up"] as const) {
        if (!b.group && FUSED_GROUPS[g].includes(b.parts[0].target)) delete out[FUSED_FIELD[g]];
      }
      if (b.group) {
        out[FUSED_FIELD[b.group]] = {
          name: `model.layers.${b.layer}.${b.group} (merged)`,
          rows: b.rows,
          cols: b.cols,
          chunks: [{ buffer, rowStart: 0, rows: b.rows }],
          dtype: b.dtype,
        };
      }
    }
    const lora = model.adapters;
    let adapters: GpuLora | null = null;
    if (lora && lora.modules.some((m) => !merged.has(key(m.layer, m.target)))) {
      const module = (layer: number, target: ProjectionName) =>
        merged.has(key(layer, target)) ? undefined : lora.module(layer, target);
      // Everything else reads the adapters themselves (their private state included).
      adapters = new Proxy(lora, {
        get(t, p) {
          if (p === "module") return module;
          const v = Reflect.get(t, p, t);
          return typeof v === "function" ? v.bind(t) : v;
        },
      });
    }
    return {
      ctx: model.ctx,
      config: model.config,
      embedTokens: model.embedTokens,
      lmHead: model.lmHead,
      norm: model.norm,
      layers,
      ropeTable: model.ropeTable,
      adapters,
    };
  }

  /**
   * Frees the merged buffers.
   *
   * @example Free
   * ```ts ignore
   * import { MergedAdapterWeights } from "./merge_adapters_webgpu.ts";
   * declare const merged: MergedAdapterWeights;
   * merged.dispose();
   * ```
   */
  dispose(): void {
    for (const b of this.#buffers.values()) this.ctx.release(b);
    this.#buffers.clear();
    this.#blocks = [];
    if (this.#status) this.ctx.release(this.#status);
    this.#status = null;
  }
}
