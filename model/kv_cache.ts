/**
 * A preallocated key/value cache on the GPU: per layer `[rows, capacity, kvHeads · headDim]` keys
 * and values written in place by `kv_write`, and one `[rows, capacity]` key mask shared by the
 * layers (1 where a slot holds a real token).
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { Qwen3Config } from "./config.ts";

/** Options of the {@linkcode KvCache} constructor. */
export interface KvCacheOptions {
  /** Sequences (batch rows). */
  rows: number;
  /** Slots per sequence (prompt plus generated tokens). */
  capacity: number;
}

/** One layer's cache buffers. */
export interface KvCacheLayer {
  /** Keys `[rows, capacity, width]`, after QK-norm and RoPE. */
  k: GPUBuffer;
  /** Values `[rows, capacity, width]`. */
  v: GPUBuffer;
}

/**
 * The key/value cache of a batch of sequences, allocated once and reused while it fits.
 *
 * @example A cache for 4 sequences of up to 128 tokens
 * ```ts ignore
 * import { KvCache } from "./kv_cache.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const config: import("./config.ts").Qwen3Config;
 * const cache = new KvCache(ctx, config, { rows: 4, capacity: 128 });
 * console.log(cache.fits(2, 100)); // true
 * cache.dispose();
 * ```
 */
export class KvCache {
  /** Sequences the cache holds. */
  readonly rows: number;
  /** Slots per sequence (the slot stride). */
  readonly capacity: number;
  /** Floats per token and layer: key/value heads × head dim. */
  readonly width: number;
  /** Per-layer keys and values. */
  readonly layers: readonly KvCacheLayer[];
  /** Key mask `[rows, capacity]` (u32). */
  readonly mask: GPUBuffer;

  /**
   * Allocates the buffers (contents undefined until written).
   *
   * @param ctx The GPU context.
   * @param config The model config (layers, key/value heads, head dim).
   * @param options Rows and capacity.
   * @throws {RangeError} If rows or capacity is not a positive integer, or one layer's keys do not
   * fit one storage binding.
   */
  constructor(ctx: GpuContext, config: Qwen3Config, options: KvCacheOptions) {
    const { rows, capacity } = options;
    for (const [name, value] of [["rows", rows], ["capacity", capacity]] as const) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot allocate the KV cache: ${name} must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.rows = rows;
    this.capacity = capacity;
    this.width = config.numKeyValueHeads * config.headDim;
    const bytes = rows * capacity * this.width * 4;
    if (bytes > ctx.gpu.maxBindingSize) {
      throw new RangeError(
        `Cannot allocate the KV cache: ${rows} sequences × ${capacity} slots × ${this.width} floats ` +
          `need ${bytes} bytes per layer, more than one storage binding ` +
          `(${ctx.gpu.maxBindingSize}); generate fewer sequences at once or fewer tokens`,
      );
    }
    this.layers = Array.from({ length: config.numHiddenLayers }, (_, l) => ({
      k: ctx.createBuffer(bytes, `kv_cache.${l}.k`),
      v: ctx.createBuffer(bytes, `kv_cache.${l}.v`),
    }));
    this.mask = ctx.createBuffer(rows * capacity * 4, "kv_cache.mask");
  }

  /** Bytes held on the device. */
  get bytes(): number {
    return this.layers.length * 2 * this.rows * this.capacity * this.width * 4 +
      this.rows * this.capacity * 4;
  }

  /**
   * Whether `rows` sequences of `capacity` slots fit.
   *
   * @param rows Sequences needed.
   * @param capacity Slots needed per sequence.
   * @returns True when both fit.
   */
  fits(rows: number, capacity: number): boolean {
    return rows <= this.rows && capacity <= this.capacity;
  }

  /** Frees the buffers; the cache cannot be used afterwards. */
  dispose(): void {
    for (const l of this.layers) {
      l.k.destroy();
      l.v.destroy();
    }
    this.mask.destroy();
  }
}
