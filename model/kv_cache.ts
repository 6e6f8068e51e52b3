/**
 * A preallocated key/value cache on the GPU: per layer `[rows, capacity, kvHeads · headDim]` keys
 * and values written in place by `kv_write`, and one `[rows, capacity]` key mask shared by the
 * layers (1 where a slot holds a real token). Keys and values are stored as f32 or as f16 (packed
 * two per 32-bit word, half the memory; the kernels widen them to f32 as they read).
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { Qwen3Config } from "./config.ts";

/**
 * How a KV cache stores keys and values: `"f32"`, or `"f16"` (rounded to a neighbouring half
 * float, values past ±65504 saturated; attention still computes in f32).
 */
export type KvDtype = "f32" | "f16";

/**
 * Bytes one cached key or value takes.
 *
 * @param dtype The cache's storage; default `"f32"`.
 * @returns 4 for `"f32"`, 2 for `"f16"`.
 * @throws {TypeError} If `dtype` is neither.
 *
 * @example The KV cache of one layer of Qwen3-0.6B (8 KV heads of 128), 192 sequences × 1,280 slots
 * ```ts
 * import { kvBytesPerElement } from "./kv_cache.ts";
 * console.log(2 * 192 * 1280 * 8 * 128 * kvBytesPerElement("f16")); // 1006632960
 * ```
 */
export function kvBytesPerElement(dtype: KvDtype = "f32"): number {
  if (dtype === "f32") return 4;
  if (dtype === "f16") return 2;
  throw new TypeError(
    `Cannot size the KV cache: its dtype must be "f32" or "f16": current value is ` +
      `${JSON.stringify(dtype)}`,
  );
}

/** Options of the {@linkcode KvCache} constructor. */
export interface KvCacheOptions {
  /** Sequences (batch rows). */
  rows: number;
  /** Slots per sequence (prompt plus generated tokens). */
  capacity: number;
  /** Storage of keys and values; default `"f32"`. `"f16"` needs an even `kvHeads · headDim`. */
  dtype?: KvDtype;
}

/** One layer's cache buffers. */
export interface KvCacheLayer {
  /** Keys `[rows, capacity, width]` (of the cache's dtype), after QK-norm and RoPE. */
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
 * const cache = new KvCache(ctx, config, { rows: 4, capacity: 128, dtype: "f16" });
 * console.log(cache.fits(2, 100)); // true
 * cache.dispose();
 * ```
 */
export class KvCache {
  /** Sequences the cache holds. */
  readonly rows: number;
  /** Slots per sequence (the slot stride). */
  readonly capacity: number;
  /** Values per token and layer: key/value heads × head dim. */
  readonly width: number;
  /** Storage of keys and values. */
  readonly dtype: KvDtype;
  /** Bytes per key or value: 4 (f32) or 2 (f16). */
  readonly bytesPerElement: number;
  /** Per-layer keys and values. */
  readonly layers: readonly KvCacheLayer[];
  /** Key mask `[rows, capacity]` (u32). */
  readonly mask: GPUBuffer;

  /**
   * Allocates the buffers (contents undefined until written).
   *
   * @param ctx The GPU context.
   * @param config The model config (layers, key/value heads, head dim).
   * @param options Rows, capacity and dtype.
   * @throws {RangeError} If rows or capacity is not a positive integer, one layer's keys do not
   * fit one storage binding, or the dtype is `"f16"` and `kvHeads · headDim` is odd.
   * @throws {TypeError} If the dtype is neither `"f32"` nor `"f16"`.
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
    this.dtype = options.dtype ?? "f32";
    this.bytesPerElement = kvBytesPerElement(this.dtype);
    if (this.dtype === "f16" && this.width % 2 !== 0) {
      throw new RangeError(
        `Cannot allocate an f16 KV cache: key/value heads × head dim must be even (two f16 ` +
          `values a 32-bit word): current value is ${this.width}`,
      );
    }
    const bytes = rows * capacity * this.width * this.bytesPerElement;
    if (bytes > ctx.gpu.maxBindingSize) {
      throw new RangeError(
        `Cannot allocate the KV cache: ${rows} sequences × ${capacity} slots × ${this.width} ` +
          `${this.dtype} values ` +
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
    return this.layers.length * 2 * this.rows * this.capacity * this.width * this.bytesPerElement +
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
