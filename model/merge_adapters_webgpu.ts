/**
 * LoRA adapters merged into copies of the base weights for generation: `W' = W + Σ_e scale_e ·
 * B_e·A_e` per projection, so that a decode step records each projection as one matmul (the base
 * weight's) instead of three (base, `x·Aᵀ`, `·Bᵀ`): 14 dispatches fewer per layer with adapters on
 * all seven projections.
 *
 * A projection merges when its adapter has no router (plain LoRA: every expert applies to every
 * token) and its base weight is f32 in one buffer. The others keep today's unmerged path: HILO's
 * routed modules (the experts' weights depend on the token), f16 base weights (the merged copy
 * would have to be f32, twice their bytes, or be rounded) and weights split into row blocks (too
 * large for one binding).
 *
 * {@linkcode MergedAdapterWeights} holds one f32 `[out, in]` buffer per merged projection (as many
 * bytes as those base weights) and recomputes them from the current base weights and adapter
 * values each time {@linkcode MergedAdapterWeights.encode} is recorded: generation records it once
 * per call, so an adapter changed between calls (every RL step) or a base weight changed (full
 * fine-tuning) is always seen. {@linkcode MergedAdapterWeights.view} gives the model's weights
 * with the merged matrices in place of the base ones, and adapters that skip the merged
 * projections, for `encodeDecoderLayer`.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import type { GpuLayerWeights, GpuModelWeights } from "./decoder_layer_webgpu.ts";
import type { GpuLora, GpuLoraModule } from "./lora_webgpu.ts";
import { PROJECTION_FIELD, type ProjectionName, PROJECTIONS } from "./tensor_table.ts";

/** One projection whose adapter merges into its base weight. */
export interface MergeTarget {
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: ProjectionName;
  /** The base weight `[out, in]` (f32, one buffer). */
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
  if ((weight.dtype ?? "f32") !== "f32") return `${weight.dtype} base weight`;
  if (weight.chunks.length !== 1) return `base weight split into ${weight.chunks.length} blocks`;
  return null;
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

const key = (layer: number, target: ProjectionName) => `${layer}.${target}`;

/**
 * Merged copies of the base weights of the projections whose adapters merge: buffers allocated
 * once (as many bytes as those base weights), values recomputed by every
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
  #buffers = new Map<string, GPUBuffer>();

  /**
   * Allocates one f32 buffer per mergeable projection of `model` (nothing is computed yet).
   *
   * @param ctx The GPU context.
   * @param model The model's weights and adapters.
   */
  constructor(ctx: GpuContext, model: GpuModelWeights) {
    this.ctx = ctx;
    for (const t of mergeTargets(model)) {
      const { rows, cols } = t.weight;
      this.#buffers.set(
        key(t.layer, t.target),
        ctx.createBuffer(4 * rows * cols, `merged.layer${t.layer}.${t.target}`),
      );
    }
  }

  /** Number of merged projections. */
  get size(): number {
    return this.#buffers.size;
  }

  /** Bytes of the merged weights. */
  get bytes(): number {
    let n = 0;
    for (const b of this.#buffers.values()) n += b.size;
    return n;
  }

  /**
   * Whether these buffers are those `model`'s mergeable projections need now (same projections,
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
    const targets = mergeTargets(model);
    return targets.length === this.#buffers.size && targets.every((t) => {
      const b = this.#buffers.get(key(t.layer, t.target));
      return b !== undefined && b.size === 4 * t.weight.rows * t.weight.cols;
    });
  }

  /**
   * Records the merge into `enc`: each merged buffer gets a copy of its base weight, then one
   * compute pass adds `scale_e · B_e·A_e` per expert (`encodeMatmulBackward`'s `dx = alpha·dy·w`
   * with `dy = B_e [out, r]`, `w = A_e [r, in]`, accumulated).
   *
   * @param enc The command encoder (outside any pass).
   * @param model The model the buffers were allocated for.
   * @throws {Error} If the buffers do not fit `model`'s mergeable projections (see
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
        `Cannot merge the adapters: the buffers were allocated for ${this.#buffers.size} ` +
          `projections, other than the ${mergeTargets(model).length} mergeable ones of the model ` +
          `now (adapters replaced?); allocate a new MergedAdapterWeights`,
      );
    }
    const targets = mergeTargets(model);
    for (const t of targets) {
      const dst = this.#buffers.get(key(t.layer, t.target))!;
      enc.copyBufferToBuffer(t.weight.chunks[0].buffer, 0, dst, 0, dst.size);
    }
    if (targets.length === 0) return;
    const pass = enc.beginComputePass({ label: "merge adapters" });
    for (const t of targets) {
      const dx = this.#buffers.get(key(t.layer, t.target))!;
      const { outFeatures: out, inFeatures: inF } = t.module;
      for (const e of t.module.experts) {
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
    pass.end();
  }

  /**
   * `model`'s weights with the merged matrices in place of their base weights, and adapters
   * that skip the merged projections (null when every adapted projection merged).
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
   * console.log(view.adapters); // null for plain LoRA on f32 weights
   * ```
   */
  view(model: GpuModelWeights): GpuModelWeights {
    const merged = this.#buffers;
    const layers = model.layers.map((lw, layer): GpuLayerWeights => {
      const out = { ...lw };
      for (const target of PROJECTIONS) {
        const buffer = merged.get(key(layer, target));
        if (!buffer) continue;
        const field = PROJECTION_FIELD[target];
        const w = lw[field] as GpuMatrix;
        const m: GpuMatrix = {
          name: `${w.name} (merged)`,
          rows: w.rows,
          cols: w.cols,
          chunks: [{ buffer, rowStart: 0, rows: w.rows }],
          dtype: "f32",
        };
        (out as Record<typeof field, GpuMatrix | GPUBuffer>)[field] = m;
      }
      return out;
    });
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
  }
}
