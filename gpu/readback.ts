/**
 * The only place that maps GPU buffers: the requested ranges are copied into staging buffers of
 * at most 256 MiB each, all mapped together (one round trip), since each `mapAsync` wait costs at
 * least 10 ms in Deno. It is where the device's errors surface: a device already lost, then a
 * buffer that ran out of memory or a kernel the device rejected (`GpuContext.checkAllocations`),
 * then a loss or the validation errors collected since the last readback.
 *
 * @module
 */
import type { GpuContext } from "./context.ts";
import { formatGpuErrors, GpuDeviceLostError, GpuOutOfMemoryError } from "./errors.ts";

/** A byte range of a buffer to read back. */
export interface ReadbackRange {
  /** Source buffer (must have COPY_SRC usage). */
  buffer: GPUBuffer;
  /** Byte offset, a multiple of 4. */
  offset: number;
  /** Byte size, a multiple of 4. */
  size: number;
}

/**
 * Copies the ranges into staging buffers after the work already submitted (or recorded in
 * `encoder`), submits, maps them all at once and returns each range's bytes as a copy. The
 * staging buffers hold at most {@linkcode ReadbackOptions.maxStagingBytes} each (a larger range
 * is split across them and put together again), so reading back more than the device's
 * `maxBufferSize` works.
 *
 * @param ctx The GPU context.
 * @param ranges The ranges, in order.
 * @param encoder A command encoder with recorded work to submit together with the copies.
 * @param options The staging buffer size; what the work was, for errors.
 * @returns One `ArrayBuffer` per range.
 * @throws {RangeError} If a range is not 4-byte aligned or exceeds its buffer.
 * @throws {GpuOutOfMemoryError} If a buffer made through `ctx` could not be allocated (checked
 * right after the submit, before the device's collected errors, so it is the error shown rather
 * than the validation errors that follow from it: those are waited for and moved into its
 * `cause`, so that the next readback, once the failed buffer is freed, does not report them), or
 * a staging buffer could not.
 * @throws {GpuPipelineError} If the device rejected a kernel compiled through `ctx.pipeline`
 * (its WGSL or a limit); checked with the allocations, so it names the kernel rather than the
 * "Invalid ComputePipeline" errors of the dispatches that used it.
 * @throws {GpuDeviceLostError} If the device was lost (the readback failed on a lost device, or
 * it was lost before).
 * @throws {Error} If the device reported a validation error since the last readback, or the
 * submit or map failed (with the device's collected errors).
 *
 * @example Read back a buffer
 * ```ts ignore
 * import { createGpu } from "./device.ts";
 * import { GpuContext } from "./context.ts";
 * import { readback } from "./readback.ts";
 * const ctx = new GpuContext(await createGpu());
 * const buf = ctx.upload(new Float32Array([1, 2]), "x");
 * const [bytes] = await readback(ctx, [{ buffer: buf, offset: 0, size: 8 }]);
 * console.log(new Float32Array(bytes)); // Float32Array [1, 2]
 * ```
 */
export async function readback(
  ctx: GpuContext,
  ranges: readonly ReadbackRange[],
  encoder?: GPUCommandEncoder,
  options: ReadbackOptions = {},
): Promise<ArrayBuffer[]> {
  const what = `reading back ${describeRanges(ranges)}` +
    (options.what ? ` (${options.what})` : "");
  if (ctx.gpu.lost) throw new GpuDeviceLostError(ctx.gpu.lost, what);
  const { pieces, sizes } = planStaging(ranges, stagingCap(ctx, options));
  const device = ctx.device;
  const staging: GPUBuffer[] = [];
  const scopes: Promise<GPUError | null>[] = [];
  try {
    for (const [k, size] of sizes.entries()) {
      const label = sizes.length === 1 ? "readback" : `readback ${k + 1}/${sizes.length}`;
      const scoped = typeof device.pushErrorScope === "function";
      if (scoped) device.pushErrorScope("out-of-memory");
      staging.push(device.createBuffer({ label, size, usage: MAP_READ | COPY_DST }));
      if (scoped) scopes.push(device.popErrorScope().catch(() => null));
    }
    const enc = encoder ?? device.createCommandEncoder();
    for (const p of pieces) {
      enc.copyBufferToBuffer(ranges[p.range].buffer, p.source, staging[p.staging], p.at, p.size);
    }
    try {
      device.queue.submit([enc.finish()]);
      ctx.readbacks++;
    } catch (error) {
      throw await failure(ctx, what, error, staging, scopes);
    }
    // An allocation that ran out of memory, or a kernel the device rejected, is named before the
    // errors it caused are read (ctx.checkAllocations covers both). Checked
    // after the submit, not before: nothing may wait between a caller's recording and its submit
    // (a caller may replace, and destroy, buffers the recorded work binds while this waits).
    // An out-of-memory error takes the validation errors it caused into its cause.
    await ctx.checkAllocations(what);
    let maps: PromiseSettledResult<unknown>[];
    try {
      // Map every buffer, then wait once: still one round trip.
      maps = await Promise.allSettled(staging.map((b) => b.mapAsync(0x0001 /* READ */)));
    } catch (error) {
      throw await failure(ctx, what, error, staging, scopes);
    }
    const rejected = maps.find((m) => m.status === "rejected");
    if (rejected) throw await failure(ctx, what, rejected.reason, staging, scopes);
    if (ctx.gpu.lost) throw new GpuDeviceLostError(ctx.gpu.lost, what);
    if (ctx.gpu.errors.length > 0) {
      const messages = formatGpuErrors(ctx.gpu.errors.splice(0));
      throw new Error(
        `WebGPU reported errors while running the recorded work, found ${what}: ${messages}`,
      );
    }
    const mapped = staging.map((b) => b.getMappedRange());
    const out: ArrayBuffer[] = ranges.map((r) => new ArrayBuffer(r.size));
    const split = new Set<number>(); // ranges in more than one piece
    for (const p of pieces) {
      if (p.size !== ranges[p.range].size) split.add(p.range);
      else out[p.range] = mapped[p.staging].slice(p.at, p.at + p.size);
    }
    for (const p of pieces) {
      if (!split.has(p.range)) continue;
      new Uint8Array(out[p.range], p.source - ranges[p.range].offset, p.size)
        .set(new Uint8Array(mapped[p.staging], p.at, p.size));
    }
    return out;
  } finally {
    // Destroying a mapped buffer unmaps it.
    for (const b of staging) b.destroy();
  }
}

/** Options of {@linkcode readback}. */
export interface ReadbackOptions {
  /**
   * Largest staging buffer in bytes (rounded down to a multiple of 4, at least 4; never more than
   * the device's `maxBufferSize`): ranges are packed into staging buffers of at most this size
   * and a larger range is split across them; default {@linkcode DEFAULT_MAX_STAGING_BYTES}. Tests
   * lower it.
   */
  maxStagingBytes?: number;
  /**
   * What the work was, for error messages (e.g. `"generate step 12, chunk 3"`); the messages
   * name the ranges' buffers either way.
   */
  what?: string;
}

/**
 * Default of {@linkcode ReadbackOptions.maxStagingBytes}: 256 MiB. A full fine-tuning
 * checkpoint reads every parameter back (2.4 GB at Qwen3-0.6B in f32), more than one buffer may
 * hold (lavapipe: 2 GiB); mappable memory is often scarcer than device memory too.
 */
export const DEFAULT_MAX_STAGING_BYTES: number = 256 * 2 ** 20;

const MAP_READ = 0x01;
const COPY_DST = 0x08;

/** One copy into a staging buffer: a whole range, or part of one. */
interface Piece {
  /** Index of the range. */
  range: number;
  /** Byte offset in the range's buffer. */
  source: number;
  /** Index of the staging buffer. */
  staging: number;
  /** Byte offset in it. */
  at: number;
  /** Bytes. */
  size: number;
}

function stagingCap(ctx: GpuContext, options: ReadbackOptions): number {
  const asked = options.maxStagingBytes;
  if (asked !== undefined && !(Number.isInteger(asked) && asked >= 4)) {
    throw new RangeError(
      `Cannot read back: option "maxStagingBytes" must be an integer ≥ 4: current value is ` +
        `${asked}`,
    );
  }
  const cap = Math.min(asked ?? DEFAULT_MAX_STAGING_BYTES, ctx.gpu.maxBufferSize);
  return Math.max(4, Math.floor(cap / 4) * 4);
}

/**
 * Packs the ranges in order into staging buffers of at most `cap` bytes, splitting a range at a
 * buffer's end. With nothing to copy it still plans one 4-byte buffer, so the readback waits for
 * the submitted work and checks the device's errors.
 */
function planStaging(
  ranges: readonly ReadbackRange[],
  cap: number,
): { pieces: Piece[]; sizes: number[] } {
  const pieces: Piece[] = [];
  const sizes: number[] = [];
  let used = cap;
  for (const [i, r] of ranges.entries()) {
    if (r.offset % 4 !== 0 || r.size % 4 !== 0) {
      throw new RangeError(
        `Cannot read back "${r.buffer.label}": offset and size must be multiples of 4: current ` +
          `values are ${r.offset} and ${r.size}`,
      );
    }
    if (typeof r.buffer.size === "number" && r.offset + r.size > r.buffer.size) {
      throw new RangeError(
        `Cannot read back "${r.buffer.label}": bytes ${r.offset}..${r.offset + r.size} exceed ` +
          `its size ${r.buffer.size}`,
      );
    }
    for (let done = 0; done < r.size;) {
      if (used === cap) {
        sizes.push(0);
        used = 0;
      }
      const n = Math.min(r.size - done, cap - used);
      pieces.push({
        range: i,
        source: r.offset + done,
        staging: sizes.length - 1,
        at: used,
        size: n,
      });
      used += n;
      sizes[sizes.length - 1] = used;
      done += n;
    }
  }
  if (sizes.length === 0) sizes.push(4);
  return { pieces, sizes };
}

/** How long a failed readback waits for `device.lost` and the device's error events. */
const SETTLE_MS = 100;

/**
 * The error to throw for a failed submit or map: Deno rejects with a bare "validation error
 * occurred", and reports the loss (`device.lost`) and the real cause (an `uncapturederror`)
 * milliseconds later, so wait for the loss, at most {@linkcode SETTLE_MS}, then name it or the
 * collected errors.
 */
async function failure(
  ctx: GpuContext,
  what: string,
  error: unknown,
  staging: readonly GPUBuffer[],
  scopes: readonly Promise<GPUError | null>[],
): Promise<Error> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ctx.device.lost ?? new Promise(() => {}),
    new Promise((resolve) => timer = setTimeout(resolve, SETTLE_MS)),
  ]);
  clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (ctx.gpu.lost) return new GpuDeviceLostError(ctx.gpu.lost, what, { cause: error });
  const popped = await Promise.all(scopes);
  const k = popped.findIndex((e) => e !== null);
  if (k >= 0) {
    return new GpuOutOfMemoryError({
      label: staging[k].label,
      bytes: staging[k].size,
      allocatedBytes: ctx.allocatedBytes,
      message: popped[k]!.message,
      adapter: ctx.gpu.description,
      stage: what,
    }, { cause: error });
  }
  const messages = formatGpuErrors(ctx.gpu.errors.splice(0));
  return new Error(
    `Cannot finish ${what}: ${error instanceof Error ? `${error.name}: ${error.message}` : error}` +
      (messages ? `; WebGPU reported: ${messages}` : "; WebGPU reported no other error"),
    { cause: error },
  );
}

/** `"a", "b" and 3 more` for a message. */
function describeRanges(ranges: readonly ReadbackRange[]): string {
  const labels = [...new Set(ranges.map((r) => `"${r.buffer.label}"`))];
  if (labels.length === 0) return "nothing";
  return labels.length <= 3
    ? labels.join(", ")
    : `${labels.slice(0, 3).join(", ")} and ${labels.length - 3} more`;
}
