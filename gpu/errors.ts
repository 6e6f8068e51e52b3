/**
 * The errors halo raises for what the WebGPU device reports (out of memory, device lost, a
 * kernel the device rejects, validation errors) and the formatting of the device's collected
 * error messages.
 *
 * @module
 */

/**
 * Joins the device's collected error messages for one error: duplicates are merged into the
 * first with a count (`… (×12)`), at most `max` distinct messages are shown, and the rest is
 * summarised as `and N more (K distinct)`, so thousands of follow-up "… is invalid" errors of
 * one broken buffer do not bury the first. The count {@linkcode collectGpuError} leaves for the
 * messages it did not keep ends it as `and N more not kept`.
 *
 * @param messages The messages, oldest first (e.g. `gpu.errors`).
 * @param max Distinct messages to show; default 5.
 * @returns The messages joined by `"; "`, or `""` for none.
 *
 * @example Repeated errors collapse
 * ```ts
 * import { formatGpuErrors } from "./errors.ts";
 * console.log(formatGpuErrors(["a", "b", "a", "a"])); // "a (×3); b"
 * ```
 */
export function formatGpuErrors(messages: readonly string[], max = 5): string {
  // The count that collectGpuError left in place of the messages it did not keep.
  const notKept = Number(NOT_KEPT.exec(messages.at(-1) ?? "")?.[1] ?? 0);
  if (notKept > 0) messages = messages.slice(0, -1);
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  const distinct = [...counts];
  const shown = distinct.slice(0, max).map(([m, n]) => n > 1 ? `${m} (×${n})` : m);
  const rest = distinct.slice(max);
  if (rest.length > 0) {
    const more = rest.reduce((sum, [, n]) => sum + n, 0);
    shown.push(`and ${more} more (${rest.length} distinct)`);
  }
  if (notKept > 0) {
    shown.push(`and ${notKept} more not kept (only the first ${messages.length} are)`);
  }
  return shown.join("; ");
}

/** Messages {@linkcode collectGpuError} keeps before it only counts: 100. */
export const KEPT_GPU_ERRORS = 100;

const NOT_KEPT = /^… (\d+) more errors were not kept$/;

/**
 * Appends a device error message to a collected list (`gpu.errors`) while it holds fewer than
 * `keep`; after that only counts them, in one last entry `"… N more errors were not kept"` that
 * {@linkcode formatGpuErrors} reads as a count. A device that reports an error per dispatch
 * (thousands of follow-ups of one invalid buffer per step) so does not grow it without bound;
 * the first messages, which name the cause, are kept.
 *
 * @param errors The list (oldest first); emptied by whoever reports them (`readback`).
 * @param message The new message.
 * @param keep Messages to keep; default {@linkcode KEPT_GPU_ERRORS}.
 *
 * @example Keep two, count the rest
 * ```ts
 * import { collectGpuError, formatGpuErrors } from "./errors.ts";
 * const errors: string[] = [];
 * for (const m of ["a", "b", "c", "d"]) collectGpuError(errors, m, 2);
 * console.log(errors); // ["a", "b", "… 2 more errors were not kept"]
 * console.log(formatGpuErrors(errors)); // "a; b; and 2 more not kept (only the first 2 are)"
 * ```
 */
export function collectGpuError(errors: string[], message: string, keep = KEPT_GPU_ERRORS): void {
  if (errors.length < keep) {
    errors.push(message);
    return;
  }
  const last = NOT_KEPT.exec(errors.at(-1) ?? "");
  if (last) errors[errors.length - 1] = `… ${Number(last[1]) + 1} more errors were not kept`;
  else errors.push("… 1 more errors were not kept");
}

/** What {@linkcode GpuOutOfMemoryError} reports about the allocation that failed. */
export interface GpuAllocationFailure {
  /** The buffer's label. */
  label: string;
  /** Its size in bytes. */
  bytes: number;
  /** Bytes of halo's buffers allocated before it (`ctx.allocatedBytes` then). */
  allocatedBytes: number;
  /** The device's message (Deno: `"not enough memory left"`). */
  message: string;
  /** The adapter, as `gpu.description`. */
  adapter: string;
  /** What halo was doing when it found it, e.g. `reading back "logits"`; optional. */
  stage?: string;
}

/**
 * The GPU ran out of memory creating a buffer; names the buffer, its size and what was already
 * allocated, and says what to lower. Thrown by `GpuContext.checkAllocations` (which `readback` and
 * `settleUploads` call first), so it comes before the validation errors of the work that used the
 * invalid buffer.
 *
 * @example Usage
 * ```ts
 * import { GpuOutOfMemoryError } from "./errors.ts";
 * const error = new GpuOutOfMemoryError({
 *   label: "kv cache",
 *   bytes: 2 ** 30,
 *   allocatedBytes: 30e9,
 *   message: "not enough memory left",
 *   adapter: "NVIDIA H100",
 * });
 * console.log(error.message.startsWith('Out of GPU memory allocating "kv cache"')); // true
 * ```
 */
export class GpuOutOfMemoryError extends Error {
  /** The allocation that failed. */
  readonly failure: GpuAllocationFailure;

  /**
   * Creates the error.
   *
   * @param failure The allocation that failed.
   * @param options The error that revealed it, as `cause`; optional.
   */
  constructor(failure: GpuAllocationFailure, options?: ErrorOptions) {
    super(
      `Out of GPU memory allocating "${failure.label}" (${formatBytes(failure.bytes)}) with ` +
        `${formatBytes(failure.allocatedBytes)} already allocated by halo on ` +
        `${failure.adapter}${failure.stage ? ` (found while ${failure.stage})` : ""}: the device ` +
        `said "${failure.message}". Lower the memory the run needs: a smaller batch or micro-batch ` +
        `(rl.genBatchPrompts, rl.microBatchSize, the batch size), f16 weights ` +
        `(model.weightDtype "f16"), or give this GPU's memory in rl.gpuMemoryBudget or the ` +
        `environment variable HALO_GPU_MEMORY (GB) so the run plans its calls to fit`,
      options,
    );
    this.name = "GpuOutOfMemoryError";
    this.failure = failure;
  }
}

/**
 * A byte count for messages: `"1.50 GiB (1610612736 bytes)"`, or just the bytes under 1 KiB.
 *
 * @param bytes The count.
 * @returns The text.
 */
function formatBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = "";
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return unit ? `${value.toFixed(2)} ${unit} (${bytes} bytes)` : `${bytes} bytes`;
}

/**
 * The GPU device was lost (a driver reset, a watchdog timeout, `device.destroy()`): says so with
 * the device's reason and message, that the last checkpoint is intact (checkpoints are written to
 * a temporary folder and renamed) and to rerun with `--resume`. `readback` throws it when a
 * readback fails on a lost device; `GpuContext.createBuffer`, `dispatch` and `readback` throw it
 * at once after that.
 *
 * A loss noticed while Deno waits for the GPU (inside `mapAsync` or `onSubmittedWorkDone`) can
 * instead abort the process with a Deno panic, which no JavaScript can catch; a supervising loop
 * (`until deno task train --resume …; do sleep 5; done`) covers both.
 *
 * @example Usage
 * ```ts
 * import { GpuDeviceLostError } from "./errors.ts";
 * const error = new GpuDeviceLostError({ reason: "unknown", message: "device hung" }, "readback");
 * console.log(error.message.includes("--resume")); // true
 * ```
 */
export class GpuDeviceLostError extends Error {
  /** The device's reason (`"destroyed"` or `"unknown"`). */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param info The device's `GPUDeviceLostInfo` (reason and message).
   * @param during What halo was doing, e.g. `"reading back \"logits\""`; optional.
   * @param options The error that revealed the loss, as `cause`; optional.
   */
  constructor(
    info: { readonly reason: string; readonly message: string },
    during?: string,
    options?: ErrorOptions,
  ) {
    super(
      `The GPU device was lost (${info.reason}: ${info.message})` +
        `${during ? ` while ${during}` : ""}; nothing computed on it since the last readback ` +
        `can be used. A training run's checkpoints are written atomically, so its last one is ` +
        `intact: rerun \`deno task train\` with --resume; \`deno task eval\` continues from the ` +
        `samples it wrote when the same command is rerun`,
      options,
    );
    this.name = "GpuDeviceLostError";
    this.reason = info.reason;
  }
}

/** What {@linkcode GpuPipelineError} reports about the kernel that did not compile. */
export interface GpuPipelineFailure {
  /** The kernel's label (`GpuContext.pipeline`'s `label`). */
  label: string;
  /** Its variant: entry point and override constants (e.g. `main TILE=64`). */
  variant: string;
  /** The device's message (for WGSL errors, with the source line and a caret). */
  message: string;
  /** The WGSL line the message points at (`wgsl:<line>:<column>`), if it points at one. */
  line?: { number: number; text: string };
  /** The adapter, as `gpu.description`. */
  adapter: string;
  /** What halo was doing when it found it, e.g. `reading back "logits"`; optional. */
  stage?: string;
}

/**
 * The device rejected a kernel: its WGSL (a construct or extension the driver does not take) or a
 * limit (a workgroup larger than the device allows). Names the kernel, the adapter, the device's
 * message and the WGSL line it points at. Thrown by `GpuContext.checkAllocations` (which `readback`
 * and `settleUploads` call), so it is the error shown rather than the "Invalid ComputePipeline"
 * validation errors of every dispatch that used the failed pipeline.
 *
 * @example Usage
 * ```ts
 * import { GpuPipelineError } from "./errors.ts";
 * const error = new GpuPipelineError({
 *   label: "matmul",
 *   variant: "main",
 *   message: "workgroup size [4096, 1, 1] exceeds the limit 1024",
 *   adapter: "NVIDIA H100",
 * });
 * console.log(error.message.startsWith('Cannot compile kernel "matmul" on NVIDIA H100')); // true
 * ```
 */
export class GpuPipelineError extends Error {
  /** The kernel that failed. */
  readonly failure: GpuPipelineFailure;

  /**
   * Creates the error.
   *
   * @param failure The kernel that failed.
   * @param options The error that revealed it, as `cause`; optional.
   */
  constructor(failure: GpuPipelineFailure, options?: ErrorOptions) {
    const line = failure.line ? ` (WGSL line ${failure.line.number}: ${failure.line.text})` : "";
    super(
      `Cannot compile kernel "${failure.label}" (${failure.variant}) on ${failure.adapter}` +
        `${failure.stage ? ` (found while ${failure.stage})` : ""}${line}: ` +
        `${failure.message.trim()}`,
      options,
    );
    this.name = "GpuPipelineError";
    this.failure = failure;
  }
}
