/**
 * The one place that owns GPU objects: pipelines, uniform parameter blocks and bind groups are
 * created once and cached (web-rwkv's `Context`), so a forward pass recorded a second time
 * allocates nothing.
 *
 * Allocations and pipeline creations run inside WebGPU error scopes whose results are collected
 * without waiting; {@linkcode GpuContext.checkAllocations} (called by `readback` and
 * `settleUploads`) awaits them and throws {@linkcode GpuOutOfMemoryError} or
 * {@linkcode GpuPipelineError}, naming the buffer or kernel, before the generic validation errors
 * that an invalid buffer or pipeline causes downstream.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import {
  formatGpuErrors,
  type GpuAllocationFailure,
  GpuDeviceLostError,
  GpuOutOfMemoryError,
  GpuPipelineError,
  type GpuPipelineFailure,
} from "./errors.ts";

/** A buffer binding: a whole buffer, or a byte range of one. */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/** Options of {@linkcode GpuContext.pipeline}. */
export interface PipelineOptions {
  /** Entry point; default `"main"`. */
  entryPoint?: string;
  /** Values of WGSL `override` constants; part of the cache key. */
  constants?: Record<string, number>;
}

/**
 * Options of the {@linkcode GpuContext} constructor: bounds of the caches that grow with the
 * values a run passes (a uniform block per distinct parameter content, e.g. a per-step loss
 * normaliser, and a bind group per distinct set of buffers).
 *
 * @example Small caches (for a test)
 * ```ts
 * import type { GpuContextOptions } from "./context.ts";
 * const options: GpuContextOptions = { maxUniforms: 8, maxBindGroups: 32 };
 * ```
 */
export interface GpuContextOptions {
  /**
   * Uniform blocks kept before the uniform and bind-group caches are emptied (their objects are
   * dropped, not destroyed: a pass already recorded keeps its own references); default 16384.
   */
  maxUniforms?: number;
  /** Bind groups kept before that cache is emptied; default 65536. */
  maxBindGroups?: number;
  /**
   * Workgroups one product should launch to occupy the adapter: the decode matvec splits K, and
   * on a hardware adapter the matmul takes 64×64 rather than 128×128 tiles, until a product
   * reaches it (see `pickMatvecSplit`, `pickMatmulKernel`). Default {@linkcode DEFAULT_FILL_WORKGROUPS}: 8 on a
   * software adapter, 256 on a hardware one.
   */
  fillWorkgroups?: number;
  /**
   * Bytes written with {@linkcode GpuContext.writeBuffer} (uploads, uniform blocks) after which
   * the queue is submitted (`queue.submit([])`), so wgpu frees the staging copy of each write
   * instead of holding every upload of a model load at once; default
   * {@linkcode DEFAULT_UPLOAD_FLUSH_BYTES} (256 MiB). Tests lower it.
   */
  uploadFlushBytes?: number;
}

/**
 * Default of {@linkcode GpuContextOptions.uploadFlushBytes}: 256 MiB. wgpu copies each
 * `writeBuffer` into a fresh staging allocation that it frees only after the next submission
 * completes; without a submit a 14B model load would stage ~30-60 GB at once.
 */
export const DEFAULT_UPLOAD_FLUSH_BYTES: number = 256 * 2 ** 20;

/**
 * Default of {@linkcode GpuContextOptions.fillWorkgroups}: on a software adapter 8 (llvmpipe's
 * few threads; measured there, docs/perf.md); on a hardware one 256, two workgroups per
 * streaming multiprocessor of a 132-SM Hopper card rounded (not yet measured on a GPU; a small GPU
 * only queues the extra workgroups).
 */
export const DEFAULT_FILL_WORKGROUPS: { readonly software: number; readonly hardware: number } =
  Object.freeze({ software: 8, hardware: 256 });

/**
 * The {@linkcode DEFAULT_FILL_WORKGROUPS} of an adapter: what a `GpuContext` made without the
 * `fillWorkgroups` option takes (a memory plan made before the context exists asks here).
 *
 * @param gpu The device record (only whether it is a software adapter is read).
 * @returns Workgroups one product should launch.
 *
 * @example Usage
 * ```ts
 * import { defaultFillWorkgroups } from "./context.ts";
 * console.log(defaultFillWorkgroups({ isFallbackAdapter: true })); // 8
 * ```
 */
export function defaultFillWorkgroups(gpu: { readonly isFallbackAdapter: boolean }): number {
  return DEFAULT_FILL_WORKGROUPS[gpu.isFallbackAdapter ? "software" : "hardware"];
}

/** An allocation that ran out of memory, kept by a {@linkcode GpuContext} until it ends. */
interface OutOfMemoryRecord {
  failure: Omit<GpuAllocationFailure, "adapter" | "stage">;
  /** The buffer, for a storage buffer (its failure ends once reported and released). */
  buffer?: GPUBuffer;
  /** Whether a `checkAllocations` has thrown it (or a later failure) yet. */
  reported: boolean;
}

/** Usage flags of a storage buffer that can be written, copied and read back. */
export const STORAGE_USAGE: number = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

/**
 * Caches of pipelines, parameter blocks and bind groups over one {@linkcode Gpu}.
 *
 * @example Run a one-line kernel
 * ```ts ignore
 * import { createGpu } from "./device.ts";
 * import { GpuContext } from "./context.ts";
 * import { readback } from "./readback.ts";
 * const ctx = new GpuContext(await createGpu());
 * const out = ctx.createBuffer(16, "out");
 * const code = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
 * @compute @workgroup_size(4) fn main(@builtin(global_invocation_id) g: vec3u) { o[g.x] = 1.0; }`;
 * const enc = ctx.device.createCommandEncoder();
 * const pass = enc.beginComputePass();
 * ctx.dispatch(pass, ctx.pipeline("ones", code), [out], [1, 1, 1]);
 * pass.end();
 * ctx.device.queue.submit([enc.finish()]);
 * console.log(await readback(ctx, [{ buffer: out, offset: 0, size: 16 }]));
 * ```
 */
export class GpuContext {
  /** The device and its limits. */
  readonly gpu: Gpu;
  /** Workgroups one product should launch; see {@linkcode GpuContextOptions.fillWorkgroups}. */
  readonly fillWorkgroups: number;
  #pipelines = new Map<string, GPUComputePipeline>();
  #codeIds = new Map<string, number>();
  #uniforms = new Map<string, GPUBuffer>();
  #bindGroups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 0;
  #sizes = new WeakMap<GPUBuffer, number>();
  #allocated = 0;
  #peak = 0;
  #scratch = new Map<string, GPUBuffer>();
  #retiredScratch: GPUBuffer[] = [];
  #maxUniforms: number;
  #maxBindGroups: number;
  #flushBytes: number;
  #unflushed = 0;
  #unsettled = 0;
  #pendingScopes = new Set<Promise<void>>();
  /**
   * The allocations that ran out of memory, oldest first: each with its buffer (storage buffers
   * only) and whether a check has reported it yet.
   */
  #outOfMemory: OutOfMemoryRecord[] = [];
  #pipelineFailure: Omit<GpuPipelineFailure, "adapter" | "stage"> | null = null;
  /**
   * GPU→CPU round trips made through `readback()` with this context so far (each costs ≥ 10 ms
   * in Deno 2.9.6): for tests and benchmarks that count them.
   */
  readbacks = 0;

  /**
   * Wraps a device.
   *
   * @param gpu A device from `createGpu`.
   * @param options Cache bounds.
   * @throws {RangeError} If a bound is not an integer ≥ 1.
   */
  constructor(gpu: Gpu, options: GpuContextOptions = {}) {
    this.gpu = gpu;
    this.#maxUniforms = options.maxUniforms ?? 16384;
    this.#maxBindGroups = options.maxBindGroups ?? 65536;
    this.#flushBytes = options.uploadFlushBytes ?? DEFAULT_UPLOAD_FLUSH_BYTES;
    this.fillWorkgroups = options.fillWorkgroups ?? defaultFillWorkgroups(gpu);
    for (
      const key of ["maxUniforms", "maxBindGroups", "fillWorkgroups", "uploadFlushBytes"] as const
    ) {
      const v = options[key];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
        throw new RangeError(
          `Cannot create the GPU context: option "${key}" must be an integer ≥ 1: current value ` +
            `is ${v}`,
        );
      }
    }
  }

  /**
   * Entries in the caches now (pipelines are never dropped: there is one per kernel variant).
   *
   * @example Nothing cached yet
   * ```ts ignore
   * import { createGpu } from "./device.ts";
   * import { GpuContext } from "./context.ts";
   * const ctx = new GpuContext(await createGpu());
   * console.log(ctx.cacheSizes); // { pipelines: 0, uniforms: 0, bindGroups: 0 }
   * ```
   */
  get cacheSizes(): { pipelines: number; uniforms: number; bindGroups: number } {
    return {
      pipelines: this.#pipelines.size,
      uniforms: this.#uniforms.size,
      bindGroups: this.#bindGroups.size,
    };
  }

  /** The WebGPU device. */
  get device(): GPUDevice {
    return this.gpu.device;
  }

  /**
   * Creates a storage buffer (copyable both ways).
   *
   * @param size Size in bytes (rounded up to a multiple of 4, at least 4).
   * @param label Debug label, shown in WebGPU errors.
   * @returns The buffer.
   * @throws {RangeError} If `size` exceeds the device's `maxBufferSize`.
   * @throws {GpuDeviceLostError} If the device was lost.
   */
  createBuffer(size: number, label: string): GPUBuffer {
    this.#throwIfLost(`allocating "${label}"`);
    if (size > this.gpu.maxBufferSize) {
      throw new RangeError(
        `Cannot allocate GPU buffer "${label}": ${size} bytes exceeds the device's maxBufferSize ` +
          `${this.gpu.maxBufferSize}`,
      );
    }
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    const buffer = this.#allocate({ label, size: bytes, usage: STORAGE_USAGE }, true);
    this.#sizes.set(buffer, bytes);
    this.#allocated += bytes;
    this.#peak = Math.max(this.#peak, this.#allocated);
    // Count the bytes back whoever frees the buffer (release, destroyMatrix, a plain destroy()).
    const destroy = buffer.destroy;
    buffer.destroy = () => {
      this.#forget(buffer);
      destroy.call(buffer);
    };
    return buffer;
  }

  #throwIfLost(during: string): void {
    const lost = this.gpu.lost;
    if (lost) throw new GpuDeviceLostError(lost, during);
  }

  /**
   * `device.createBuffer` inside an out-of-memory error scope. The scope's result (a promise) is
   * not awaited here; {@linkcode GpuContext.checkAllocations} collects them. `storage`: a buffer
   * of {@linkcode GpuContext.createBuffer}, whose failure ends when it is released.
   */
  #allocate(descriptor: GPUBufferDescriptor, storage = false): GPUBuffer {
    const device = this.device;
    // Stand-in devices of tests may have no error scopes.
    if (typeof device.pushErrorScope !== "function") return device.createBuffer(descriptor);
    device.pushErrorScope("out-of-memory");
    const buffer = device.createBuffer(descriptor);
    const failure = {
      label: descriptor.label ?? "",
      bytes: descriptor.size,
      allocatedBytes: this.#allocated,
    };
    const pending: Promise<void> = device.popErrorScope().then(
      (error) => {
        if (error !== null) {
          this.#outOfMemory.push({
            failure: { ...failure, message: error.message },
            buffer: storage ? buffer : undefined,
            reported: false,
          });
        }
      },
      () => {}, // a lost device rejects the pop; readback reports the loss itself
    ).finally(() => this.#pendingScopes.delete(pending));
    this.#pendingScopes.add(pending);
    return buffer;
  }

  /**
   * Waits for the error scopes of the buffers created so far (storage buffers, uploads, scratch
   * and uniform blocks) and of the pipelines compiled so far, and throws if one failed. An
   * allocation that runs out of memory only yields an invalid buffer, and a kernel the driver
   * rejects (its WGSL, or a limit such as the workgroup size) only an invalid pipeline; every later
   * use of either adds a generic validation error. This names the buffer or kernel instead.
   * `readback` and {@linkcode GpuContext.settleUploads} call it, so the first error a run shows
   * is this one. Once an allocation or pipeline failed every later call throws (an out-of-memory
   * error first, if both happened), with one exception: a storage buffer that ran out of memory
   * stops counting once a check has reported it and it was released (`release`, `destroy()`), so
   * that a caller that frees the workspace it failed to allocate (the training step, the forward)
   * leaves the context usable for smaller work (a {@linkcode GpuContext.scratch} buffer that did
   * not fit is released by the check that reports it, and made again by the next request); an
   * unreleased one, a uniform block or a failed pipeline keeps every later call throwing.
   *
   * @param stage What the caller is doing, for the message (e.g. `"loading the model"`); optional.
   * @returns A promise that resolves when every allocation and pipeline so far succeeded.
   * @throws {GpuOutOfMemoryError} Naming the first buffer that did not fit, its size, the bytes
   * allocated before it and what to lower; thrown once the work submitted so far has run, with
   * the validation errors that followed from the failed buffer taken off `gpu.errors` into its
   * `cause`, so that the next readback does not report them as its own.
   * @throws {GpuPipelineError} Naming the first kernel the device rejected, the adapter, the
   * device's message and the WGSL line it points at.
   *
   * @example After allocating a workspace
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * const kv = ctx.createBuffer(2 ** 30, "kv cache");
   * await ctx.checkAllocations("allocating the generation workspace");
   * ```
   */
  async checkAllocations(stage?: string): Promise<void> {
    if (this.#pendingScopes.size > 0) await Promise.all(this.#pendingScopes);
    const where = stage === undefined ? {} : { stage };
    // A reported failure whose buffer was released since (its bytes no longer counted) ends.
    this.#outOfMemory = this.#outOfMemory.filter((r) =>
      !(r.reported && r.buffer !== undefined && !this.#sizes.has(r.buffer))
    );
    const first = this.#outOfMemory[0];
    if (first !== undefined) {
      for (const r of this.#outOfMemory) {
        r.reported = true;
        // A scratch buffer that did not fit is this context's own: forget and free it, so that
        // its failure ends here and the next request makes it again.
        if (r.buffer !== undefined) this.#dropScratch(r.buffer);
      }
      throw await this.#settled(
        new GpuOutOfMemoryError({
          ...first.failure,
          adapter: this.gpu.description,
          ...where,
        }),
      );
    }
    if (this.#pipelineFailure !== null) {
      throw new GpuPipelineError({
        ...this.#pipelineFailure,
        adapter: this.gpu.description,
        ...where,
      });
    }
  }

  /**
   * Destroys a buffer made by {@linkcode GpuContext.createBuffer} or
   * {@linkcode GpuContext.upload} and takes its bytes off {@linkcode GpuContext.allocatedBytes}
   * (calling `buffer.destroy()` directly does the same; releasing twice is harmless).
   *
   * @param buffer The buffer to free.
   *
   * @example Allocate and free
   * ```ts ignore
   * import { createGpu } from "./device.ts";
   * import { GpuContext } from "./context.ts";
   * const ctx = new GpuContext(await createGpu());
   * const b = ctx.createBuffer(1024, "scratch");
   * console.log(ctx.allocatedBytes); // 1024
   * ctx.release(b);
   * console.log(ctx.allocatedBytes, ctx.peakBytes); // 0 1024
   * ```
   */
  release(buffer: GPUBuffer): void {
    buffer.destroy();
  }

  /** Bytes of the storage buffers made through this context and not yet freed. */
  get allocatedBytes(): number {
    return this.#allocated;
  }

  /**
   * Largest value {@linkcode GpuContext.allocatedBytes} reached since the context was made or
   * {@linkcode GpuContext.resetPeak} was last called (uniform blocks and readback staging
   * buffers, both small or short-lived, are not counted).
   */
  get peakBytes(): number {
    return this.#peak;
  }

  /**
   * Starts a new peak measurement from the bytes allocated now.
   *
   * @example Peak memory of one step
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * ctx.resetPeak();
   * // ... run a step ...
   * console.log(`peak ${(ctx.peakBytes / 2 ** 20).toFixed(1)} MiB`);
   * ```
   */
  resetPeak(): void {
    this.#peak = this.#allocated;
  }

  #forget(buffer: GPUBuffer): void {
    const bytes = this.#sizes.get(buffer);
    if (bytes === undefined) return;
    this.#sizes.delete(buffer);
    this.#allocated -= bytes;
  }

  /**
   * A storage buffer of at least `bytes` for a kernel's temporaries, kept under `name` and reused
   * by later calls (dispatches of one pass run in order, so products may share it). It is counted
   * in {@linkcode GpuContext.allocatedBytes}; sizes are powers of two (at least 1 KiB), and a
   * buffer outgrown is kept, as a recorded pass not yet submitted may bind it, so a name holds at
   * most one buffer per power of two, all freed by {@linkcode GpuContext.releaseScratch}.
   *
   * @param name The kernel's name for it (e.g. `"matmul split-K"`).
   * @param bytes The bytes it needs.
   * @returns The buffer (bind it whole: its size may exceed `bytes`).
   *
   * @example A temporary reused, then freed
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * const a = ctx.scratch("partials", 3000);
   * console.log(a.size, ctx.scratch("partials", 4096) === a); // 4096 true
   * ctx.releaseScratch();
   * ```
   */
  scratch(name: string, bytes: number): GPUBuffer {
    const have = this.#scratch.get(name);
    if (have !== undefined && have.size >= bytes) return have;
    const buffer = this.createBuffer(scratchSize(bytes, this.gpu.maxBufferSize), `scratch ${name}`);
    if (have !== undefined) this.#retiredScratch.push(have);
    this.#scratch.set(name, buffer);
    return buffer;
  }

  /**
   * Frees every buffer made by {@linkcode GpuContext.scratch} (a model's `dispose()` calls it; a
   * later call makes them again). Call it only when no recorded, unsubmitted pass binds them.
   */
  releaseScratch(): void {
    for (const b of [...this.#scratch.values(), ...this.#retiredScratch]) b.destroy();
    this.#scratch.clear();
    this.#retiredScratch = [];
  }

  /**
   * `error`, once the work submitted so far has run: the validation errors that follow from a
   * failed buffer (it and the bind groups holding it are invalid, so the work using it is
   * rejected), which Deno reports a task after the work, are taken off `gpu.errors` into its
   * `cause`. Else the next readback would report them as its own, even after the caller freed
   * the failed buffer (a failed scratch buffer is freed by the check itself) and the work ran
   * again in full; that holds whether a readback finds the failure after its submit or the next
   * pre-record check finds it (a caller that records and submits micro-batches without reading
   * back). The out-of-memory path only: a check that passes does not wait.
   */
  async #settled(error: GpuOutOfMemoryError): Promise<GpuOutOfMemoryError> {
    await this.device.queue.onSubmittedWorkDone().catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 0));
    const messages = formatGpuErrors(this.gpu.errors.splice(0));
    if (!messages) return error;
    return new GpuOutOfMemoryError(error.failure, {
      cause: new Error(`WebGPU then reported, for the work that used it: ${messages}`),
    });
  }

  /** Frees `buffer` if it is a scratch buffer (held under a name or outgrown), forgetting it. */
  #dropScratch(buffer: GPUBuffer): void {
    let held = false;
    for (const [name, b] of this.#scratch) {
      if (b === buffer) {
        this.#scratch.delete(name);
        held = true;
      }
    }
    const retired = this.#retiredScratch.indexOf(buffer);
    if (retired >= 0) {
      this.#retiredScratch.splice(retired, 1);
      held = true;
    }
    if (held) buffer.destroy();
  }

  /**
   * Creates a storage buffer holding `data`.
   *
   * @param data The contents (32-bit elements).
   * @param label Debug label.
   * @returns The buffer.
   */
  upload(data: Float32Array | Int32Array | Uint32Array, label: string): GPUBuffer {
    const buffer = this.createBuffer(data.byteLength, label);
    this.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /**
   * `queue.writeBuffer(buffer, offset, data)`, counted: once
   * {@linkcode GpuContextOptions.uploadFlushBytes} bytes were written since the last submit, it
   * submits the queue (`queue.submit([])`, which keeps the order of writes and later submits), so
   * the staging memory of many uploads is bounded. A 0-byte write is skipped (Deno 2.9.6 aborts
   * the process on one).
   *
   * @param buffer The destination (with `COPY_DST` usage).
   * @param offset Byte offset in `buffer` (a multiple of 4).
   * @param data The bytes (a typed array view; its byte length a multiple of 4).
   *
   * @example Upload many blocks with bounded staging memory
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * const b = ctx.createBuffer(1 << 20, "big");
   * for (let i = 0; i < 16; i++) ctx.writeBuffer(b, i << 16, new Float32Array(1 << 14));
   * await ctx.settleUploads();
   * ```
   */
  writeBuffer(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    if (data.byteLength === 0) return;
    this.#throwIfLost(`writing "${buffer.label}"`);
    this.device.queue.writeBuffer(buffer, offset, data as Float32Array<ArrayBuffer>);
    this.#unflushed += data.byteLength;
    this.#unsettled += data.byteLength;
    if (this.#unflushed >= this.#flushBytes) this.#flushUploads();
  }

  #flushUploads(): void {
    this.#unflushed = 0;
    this.device.queue.submit([]);
  }

  /**
   * Submits the writes not yet submitted and waits until the GPU has done them, so wgpu can free
   * their staging memory (call once at the end of a model load: each wait costs ≥ 10 ms in Deno).
   * Without writes since the last call it returns at once. It calls
   * {@linkcode GpuContext.checkAllocations} first, so a model that does not fit is reported here,
   * naming the buffer.
   *
   * @returns A promise that resolves when the queue is idle.
   * @throws {GpuOutOfMemoryError} If a buffer could not be allocated.
   *
   * @example After uploading a model
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * // ... new WebGpuQwen3(ctx, config, weights) ...
   * await ctx.settleUploads();
   * ```
   */
  async settleUploads(): Promise<void> {
    await this.checkAllocations("finishing the uploads (settleUploads)");
    if (this.#unsettled === 0) return;
    this.#unsettled = 0;
    this.#flushUploads();
    await this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Returns the compute pipeline for `code` with `options.constants`, compiling it once. The
   * creation runs inside "validation" and "internal" error scopes, not awaited here: a kernel the
   * device rejects is reported by the next {@linkcode GpuContext.checkAllocations} (so by the
   * next `readback`) as a {@linkcode GpuPipelineError} naming `label`.
   *
   * @param label Name of the op, used in the cache key and in errors.
   * @param code WGSL source.
   * @param options Entry point and override constants.
   * @returns The cached pipeline.
   *
   * @example Compile once, reuse
   * ```ts ignore
   * declare const ctx: import("./context.ts").GpuContext;
   * const code = `@compute @workgroup_size(64) fn main() {}`;
   * console.log(ctx.pipeline("noop", code) === ctx.pipeline("noop", code)); // true
   * ```
   */
  pipeline(label: string, code: string, options: PipelineOptions = {}): GPUComputePipeline {
    let codeId = this.#codeIds.get(code);
    if (codeId === undefined) {
      codeId = this.#codeIds.size;
      this.#codeIds.set(code, codeId);
    }
    const entryPoint = options.entryPoint ?? "main";
    const constants = options.constants ?? {};
    const constantsKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`);
    const key = `${label}#${codeId}:${entryPoint}:` + constantsKey.join(",");
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const device = this.device;
      // Stand-in devices of tests may have no error scopes.
      const scoped = typeof device.pushErrorScope === "function";
      if (scoped) {
        device.pushErrorScope("internal");
        device.pushErrorScope("validation");
      }
      const module = device.createShaderModule({ label, code });
      pipeline = device.createComputePipeline({
        label,
        layout: "auto",
        compute: { module, entryPoint, constants },
      });
      if (scoped) {
        const variant = [entryPoint, ...constantsKey].join(" ");
        this.#watchPipeline(device.popErrorScope(), device.popErrorScope(), label, variant, code);
      }
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * Keeps the first pipeline failure the scopes report, for
   * {@linkcode GpuContext.checkAllocations}.
   */
  #watchPipeline(
    validation: Promise<GPUError | null>,
    internal: Promise<GPUError | null>,
    label: string,
    variant: string,
    code: string,
  ): void {
    const pending: Promise<void> = Promise.all([validation, internal]).then(
      ([v, i]) => {
        const error = v ?? i;
        if (error === null || this.#pipelineFailure !== null) return;
        const at = /wgsl:(\d+):\d+/.exec(error.message);
        const number = at ? Number(at[1]) : 0;
        const text = code.split("\n")[number - 1]?.trim();
        this.#pipelineFailure = {
          label,
          variant,
          message: error.message,
          ...(text === undefined ? {} : { line: { number, text } }),
        };
      },
      () => {}, // a lost device rejects the pop; readback reports the loss itself
    ).finally(() => this.#pendingScopes.delete(pending));
    this.#pendingScopes.add(pending);
  }

  /**
   * Returns a uniform buffer holding `words` (raw 32-bit words; write floats with
   * {@linkcode f32Bits}), created once per distinct content. When
   * {@linkcode GpuContextOptions.maxUniforms} blocks are cached, the uniform and bind-group caches
   * are emptied first, so values that change every step do not grow them without bound.
   *
   * @param words The parameter block.
   * @returns The cached uniform buffer.
   */
  uniform(words: readonly number[]): GPUBuffer {
    const key = words.join(",");
    let buffer = this.#uniforms.get(key);
    if (!buffer) {
      if (this.#uniforms.size >= this.#maxUniforms) {
        // Bind groups hold the old blocks: drop both (recorded passes keep their references).
        this.#uniforms.clear();
        this.#bindGroups.clear();
      }
      const data = new Uint32Array(Math.max(4, Math.ceil(words.length / 4) * 4));
      data.set(words);
      buffer = this.#allocate({
        label: "params",
        size: data.byteLength,
        usage: 0x40 /* UNIFORM */ | 0x08, /* COPY_DST */
      });
      this.writeBuffer(buffer, 0, data);
      this.#uniforms.set(key, buffer);
    }
    return buffer;
  }

  /**
   * Records one dispatch: binds `bindings` in order to `@group(0) @binding(i)` and `params`
   * (when given) as the last binding, caching the bind group by buffer identities.
   *
   * @param pass The compute pass being recorded.
   * @param pipeline A pipeline from {@linkcode GpuContext.pipeline}.
   * @param bindings Storage buffers in binding order.
   * @param workgroups Workgroup counts `[x, y, z]`.
   * @param params Uniform words bound after the storage buffers.
   * @throws {GpuDeviceLostError} If the device was lost.
   */
  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    bindings: readonly Binding[],
    workgroups: readonly [number, number, number],
    params?: readonly number[],
  ): void {
    this.#throwIfLost(`recording "${pipeline.label}"`);
    const all: Binding[] = [...bindings];
    if (params) all.push(this.uniform(params));
    const max = this.device.limits.maxComputeWorkgroupsPerDimension;
    for (const n of workgroups) {
      if (n > max) {
        throw new RangeError(
          `Cannot dispatch "${pipeline.label}": ${n} workgroups exceeds the device limit ${max}`,
        );
      }
    }
    if (workgroups[0] === 0 || workgroups[1] === 0 || workgroups[2] === 0) return;
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.#bindGroup(pipeline, all));
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
  }

  #bindGroup(pipeline: GPUComputePipeline, bindings: readonly Binding[]): GPUBindGroup {
    const parts = [this.#id(pipeline as unknown as GPUBuffer)];
    for (const b of bindings) {
      if ("buffer" in b && !(b instanceof GPUBuffer)) {
        parts.push(this.#id(b.buffer), b.offset, b.size);
      } else parts.push(this.#id(b as GPUBuffer));
    }
    const key = parts.join(":");
    let group = this.#bindGroups.get(key);
    if (!group) {
      if (this.#bindGroups.size >= this.#maxBindGroups) this.#bindGroups.clear();
      group = this.device.createBindGroup({
        label: pipeline.label,
        layout: pipeline.getBindGroupLayout(0),
        entries: bindings.map((b, binding) => ({
          binding,
          resource: b instanceof GPUBuffer ? { buffer: b } : b,
        })),
      });
      this.#bindGroups.set(key, group);
    }
    return group;
  }

  #id(object: GPUBuffer): number {
    let id = this.#bufferIds.get(object);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(object, id);
    }
    return id;
  }

  /** Forgets cached bind groups (call after destroying buffers that may be reused by id). */
  clearBindGroups(): void {
    this.#bindGroups.clear();
  }
}

/** The size of the buffer {@linkcode GpuContext.scratch} makes for `bytes`: the next power of two ≥ 1 KiB, within `maxBufferSize`. */
function scratchSize(bytes: number, maxBufferSize: number): number {
  let size = 1024;
  while (size < bytes) size *= 2;
  return Math.max(bytes, Math.min(size, maxBufferSize));
}

/**
 * The bytes {@linkcode GpuContext.scratch} holds under one name after the given requests, in
 * order: a request larger than the buffer held makes a new one (the next power of two ≥ 1 KiB,
 * within `maxBufferSize`, rounded as `createBuffer` rounds) and the outgrown one is kept, so the
 * sum of the buffers made, which is less than twice the largest.
 *
 * @param requests The bytes each call asked, in the order of the calls.
 * @param maxBufferSize The device's `maxBufferSize`; default no limit.
 * @returns The bytes allocated under that name until `releaseScratch`.
 *
 * @example A name asked 3000, 900, then 5000 bytes: buffers of 4096 and 8192 bytes
 * ```ts
 * import { scratchBytes } from "./context.ts";
 * console.log(scratchBytes([3000, 900, 5000])); // 12288
 * ```
 */
export function scratchBytes(requests: readonly number[], maxBufferSize = Infinity): number {
  let held = 0;
  let total = 0;
  for (const bytes of requests) {
    if (held > 0 && held >= bytes) continue;
    held = Math.max(4, Math.ceil(scratchSize(bytes, maxBufferSize) / 4) * 4);
    total += held;
  }
  return total;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * The bit pattern of `x` as a float32, for writing floats into a uniform block.
 *
 * @param x A number.
 * @returns Its float32 bits as an unsigned integer.
 *
 * @example Bits of 1.0
 * ```ts
 * import { f32Bits } from "./context.ts";
 * console.log(f32Bits(1).toString(16)); // "3f800000"
 * ```
 */
export function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0];
}
