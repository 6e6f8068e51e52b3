/**
 * A stand-in GPU for tests of the upload paths: no device behind it, its queue records the calls.
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/**
 * One call recorded by {@linkcode recordingGpu}'s queue.
 *
 * @example A write of 16 bytes
 * ```ts
 * import type { QueueCall } from "./recording_gpu.ts";
 * const call: QueueCall = { op: "write", label: "w", offset: 0, bytes: new Uint8Array(16) };
 * ```
 */
export type QueueCall =
  | { op: "write"; label: string; offset: number; bytes: Uint8Array }
  | { op: "submit"; buffers: number }
  | { op: "wait" };

/**
 * A stand-in `Gpu` with no device behind it, whose queue records every `writeBuffer` (a copy of
 * the bytes), `submit` and `onSubmittedWorkDone`: for the checks of upload paths that need no GPU
 * (buffers are plain objects; nothing can be dispatched). `features` includes "shader-f16". Its
 * error scopes report nothing, except a `GPUOutOfMemoryError` (message `"not enough memory left"`, Deno's text) for a buffer
 * whose label is in `outOfMemoryLabels`.
 *
 * @param maxBindingSize The binding limit it reports; default 1 MiB.
 * @param outOfMemoryLabels Labels of the buffers whose creation "runs out of memory".
 * @returns The stand-in and the list its queue appends to.
 *
 * @example Count the submits of an upload
 * ```ts
 * import { GpuContext } from "./context.ts";
 * import { recordingGpu } from "./recording_gpu.ts";
 * const { gpu, calls } = recordingGpu();
 * const ctx = new GpuContext(gpu, { uploadFlushBytes: 8 });
 * ctx.upload(new Float32Array(4), "w");
 * console.log(calls.map((c) => c.op)); // ["write", "submit"]
 * ```
 */
export function recordingGpu(
  maxBindingSize = 1 << 20,
  outOfMemoryLabels: readonly string[] = [],
): { gpu: Gpu; calls: QueueCall[] } {
  const calls: QueueCall[] = [];
  const queue = {
    writeBuffer(buffer: GPUBuffer, offset: number, data: ArrayBufferView) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
      calls.push({ op: "write", label: buffer.label, offset, bytes });
    },
    submit(buffers: unknown[]) {
      calls.push({ op: "submit", buffers: buffers.length });
    },
    onSubmittedWorkDone() {
      calls.push({ op: "wait" });
      return Promise.resolve();
    },
  };
  // One entry per pushed error scope: its filter and the first error it caught.
  const scopes: { filter: GPUErrorFilter; error: unknown }[] = [];
  const device = {
    queue,
    limits: { maxComputeWorkgroupsPerDimension: 65535 },
    createBuffer: ({ label, size }: { label: string; size: number }) => {
      if (outOfMemoryLabels.includes(label)) {
        const scope = scopes.findLast((s) => s.filter === "out-of-memory");
        scope && (scope.error ??= new GPUOutOfMemoryError("not enough memory left"));
      }
      return { label, size, destroy() {} };
    },
    pushErrorScope(filter: GPUErrorFilter) {
      scopes.push({ filter, error: null });
    },
    popErrorScope() {
      const scope = scopes.pop();
      if (!scope) return Promise.reject(new Error("popErrorScope: the error scope stack is empty"));
      return Promise.resolve(scope.error);
    },
  };
  const gpu = {
    device: device as unknown as GPUDevice,
    description: "recording stand-in",
    isFallbackAdapter: true,
    maxBindingSize,
    maxBufferSize: 2 ** 40,
    features: new Set(["shader-f16"]),
    errors: [],
  };
  return { gpu, calls };
}
