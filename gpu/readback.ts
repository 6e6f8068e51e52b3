/**
 * The only place that maps GPU buffers: every requested range is copied into one staging buffer
 * and mapped once, since each `mapAsync` costs at least 10 ms in Deno.
 *
 * @module
 */
import type { GpuContext } from "./context.ts";
import { formatGpuErrors, GpuDeviceLostError } from "./errors.ts";

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
 * Copies the ranges into one staging buffer after the work already submitted (or recorded in
 * `encoder`), submits, maps once and returns each range's bytes as a copy.
 *
 * @param ctx The GPU context.
 * @param ranges The ranges, in order.
 * @param encoder A command encoder with recorded work to submit together with the copies.
 * @returns One `ArrayBuffer` per range.
 * @throws {GpuOutOfMemoryError} If a buffer made through `ctx` could not be allocated (checked
 * first, so it is the error shown rather than the validation errors that follow from it).
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
): Promise<ArrayBuffer[]> {
  const what = `reading back ${describeRanges(ranges)}`;
  if (ctx.gpu.lost) throw new GpuDeviceLostError(ctx.gpu.lost, what);
  await ctx.checkAllocations("readback");
  const device = ctx.device;
  let total = 0;
  const offsets: number[] = [];
  for (const r of ranges) {
    if (r.offset % 4 !== 0 || r.size % 4 !== 0) {
      throw new RangeError(
        `Cannot read back "${r.buffer.label}": offset and size must be multiples of 4: current ` +
          `values are ${r.offset} and ${r.size}`,
      );
    }
    offsets.push(total);
    total += r.size;
  }
  const staging = device.createBuffer({
    label: "readback",
    size: Math.max(4, total),
    usage: 0x01 /* MAP_READ */ | 0x08, /* COPY_DST */
  });
  try {
    const enc = encoder ?? device.createCommandEncoder();
    ranges.forEach((r, i) => {
      if (r.size > 0) enc.copyBufferToBuffer(r.buffer, r.offset, staging, offsets[i], r.size);
    });
    try {
      device.queue.submit([enc.finish()]);
      ctx.readbacks++;
      await staging.mapAsync(0x0001 /* GPUMapMode.READ */);
    } catch (error) {
      throw await failure(ctx, what, error);
    }
    if (ctx.gpu.lost) {
      staging.unmap();
      throw new GpuDeviceLostError(ctx.gpu.lost, what);
    }
    if (ctx.gpu.errors.length > 0) {
      const messages = formatGpuErrors(ctx.gpu.errors.splice(0));
      staging.unmap();
      throw new Error(`WebGPU reported errors while running the recorded work: ${messages}`);
    }
    const mapped = staging.getMappedRange();
    const out = ranges.map((r, i) => mapped.slice(offsets[i], offsets[i] + r.size));
    staging.unmap();
    return out;
  } finally {
    staging.destroy();
  }
}

/** How long a failed readback waits for `device.lost` and the device's error events. */
const SETTLE_MS = 100;

/**
 * The error to throw for a failed submit or map: Deno rejects with a bare "validation error
 * occurred", and reports the loss (`device.lost`) and the real cause (an `uncapturederror`)
 * milliseconds later, so wait for the loss, at most {@linkcode SETTLE_MS}, then name it or the
 * collected errors.
 */
async function failure(ctx: GpuContext, what: string, error: unknown): Promise<Error> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ctx.device.lost ?? new Promise(() => {}),
    new Promise((resolve) => timer = setTimeout(resolve, SETTLE_MS)),
  ]);
  clearTimeout(timer);
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (ctx.gpu.lost) return new GpuDeviceLostError(ctx.gpu.lost, what, { cause: error });
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
