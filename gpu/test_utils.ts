// Shared helpers of the kernel tests: one GPU context for the whole run, seeded random data,
// poisoned outputs and the relative error ‖gpu − ref‖ / ‖ref‖.
import { createGpu, type Gpu } from "./device.ts";
import { GpuContext } from "./context.ts";
import { readback } from "./readback.ts";

let shared: Promise<GpuContext | null> | undefined;

/** The shared test context, or null when this machine has no WebGPU adapter. */
export function testContext(): Promise<GpuContext | null> {
  shared ??= createGpu().then((gpu) => new GpuContext(gpu)).catch((e) => {
    if (Deno.env.get("HALO_REQUIRE_GPU") === "1") throw e;
    console.warn(`GPU tests skipped: ${(e as Error).message}`);
    return null;
  });
  return shared;
}

/** True when GPU tests must be skipped (no adapter and HALO_REQUIRE_GPU is not "1"). */
export const noGpu: boolean = (await testContext()) === null;

/** Deterministic uniform numbers in [lo, hi) (mulberry32). */
export { randomArray } from "../internal/random.ts";

/** A buffer of `n` floats filled with NaN, so an element the kernel does not write fails. */
export function poisoned(ctx: GpuContext, n: number, label: string): GPUBuffer {
  return ctx.upload(new Float32Array(n).fill(NaN), label);
}

/** Submits the encoder and reads `n` floats of `buffer`. */
export async function readFloats(
  ctx: GpuContext,
  buffer: GPUBuffer,
  n: number,
  encoder?: GPUCommandEncoder,
): Promise<Float32Array> {
  const [bytes] = await readback(ctx, [{ buffer, offset: 0, size: n * 4 }], encoder);
  return new Float32Array(bytes);
}

/** Records `record` into one compute pass and returns the encoder (not yet submitted). */
export function recordPass(
  ctx: GpuContext,
  record: (pass: GPUComputePassEncoder) => void,
): GPUCommandEncoder {
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  record(pass);
  pass.end();
  return enc;
}

/** ‖a − b‖₂ / ‖b‖₂; NaN anywhere gives NaN (so a poisoned element fails any bound). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new RangeError(`Length mismatch: ${a.length} vs reference ${b.length}`);
  }
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1);
}

/** Throws unless relativeError(a, b) <= tol; the message reports the error. */
export function assertClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  tol: number,
  what: string,
): number {
  const err = relativeError(a, b);
  if (!(err <= tol)) {
    let worst = 0;
    for (let i = 0; i < a.length; i++) {
      if (!(Math.abs(a[i] - b[i]) <= Math.abs(a[worst] - b[worst]))) worst = i;
    }
    throw new Error(
      `${what}: relative error ${err.toExponential(3)} exceeds ${tol}; worst element ${worst}: ` +
        `${a[worst]} vs reference ${b[worst]}`,
    );
  }
  return err;
}

/**
 * A fresh real device whose buffers with a label in `labels` (a set the caller may change) run
 * out of memory as on a GPU: each is made invalid (over `maxBufferSize`, so every use of it is a
 * validation error) and its out-of-memory error scope reports a `GPUOutOfMemoryError`. Its
 * creation itself reports no validation error (as a real out-of-memory creation would not), so
 * work that never used it leaves `gpu.errors` empty. The caller destroys `gpu.device` when done.
 */
export async function outOfMemoryGpu(labels: ReadonlySet<string>): Promise<Gpu> {
  const real = await createGpu();
  let fail = false;
  const device = new Proxy(real.device, {
    get(target, prop) {
      if (prop === "createBuffer") {
        return (d: GPUBufferDescriptor) => {
          if (!labels.has(d.label ?? "")) return target.createBuffer(d);
          fail = true;
          // The oversized creation's own validation error is caught here (only its uses report).
          target.pushErrorScope("validation");
          const buffer = target.createBuffer({ ...d, size: target.limits.maxBufferSize + 4 });
          target.popErrorScope().catch(() => {});
          return buffer;
        };
      }
      if (prop === "popErrorScope") {
        return async () => {
          const failed = fail;
          fail = false;
          const error = await target.popErrorScope();
          return failed ? new GPUOutOfMemoryError("not enough memory left") : error;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  // `lost` is read from the real record, which createGpu sets when the device is lost.
  return {
    ...real,
    device,
    get lost() {
      return real.lost;
    },
  };
}
