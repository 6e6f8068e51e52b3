/**
 * Acquiring a WebGPU adapter and device with the limits the model needs.
 *
 * @module
 */
import { collectGpuError } from "./errors.ts";

/** Limits halo asks for explicitly; each defaults to the adapter's best value. */
export type GpuLimitName =
  | "maxStorageBufferBindingSize"
  | "maxBufferSize"
  | "maxStorageBuffersPerShaderStage"
  | "maxComputeWorkgroupStorageSize"
  | "maxComputeInvocationsPerWorkgroup"
  | "maxComputeWorkgroupSizeX"
  | "maxComputeWorkgroupsPerDimension";

/** Options of {@linkcode createGpu}. */
export interface CreateGpuOptions {
  /** Adapter preference; default `"high-performance"`. */
  powerPreference?: GPUPowerPreference;
  /**
   * Minimum limits the caller needs. A value the adapter cannot give is an error that names the
   * limit. Limits not listed are raised to the adapter's maximum for the names in
   * {@linkcode GpuLimitName} (at most `Number.MAX_SAFE_INTEGER`, the largest value a device
   * request takes; `maxStorageBufferBindingSize` at most 2³² − 4, as kernels index with u32).
   */
  requiredLimits?: Partial<Record<GpuLimitName, number>>;
  /** Navigator-like object to take `gpu` from (tests); default `globalThis.navigator`. */
  gpu?: GPU;
}

/** A WebGPU device with the facts halo's kernels need about it. */
export interface Gpu {
  /** The logical device every buffer and pipeline belongs to. */
  readonly device: GPUDevice;
  /** A one-line description of the adapter, e.g. `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  readonly description: string;
  /** Whether the adapter is a software fallback (llvmpipe, lavapipe, WARP). */
  readonly isFallbackAdapter: boolean;
  /** Largest size in bytes of one storage buffer binding (at most 2³² − 4: kernels index with u32). */
  readonly maxBindingSize: number;
  /** Largest size in bytes of one buffer. */
  readonly maxBufferSize: number;
  /** Adapter features enabled on the device (e.g. `"shader-f16"`, `"timestamp-query"`). */
  readonly features: ReadonlySet<string>;
  /**
   * Validation errors (and out-of-memory errors outside `GpuContext`'s error scopes) raised by
   * the device so far, oldest first (the first 100, then a count: `collectGpuError`);
   * `readback` throws when one is pending, so a broken dispatch never yields a silent wrong
   * answer.
   */
  readonly errors: string[];
  /**
   * Why the device was lost (`device.lost` resolved: a driver reset, a watchdog, `destroy()`),
   * or `null` while it works. Set by {@linkcode createGpu}; `GpuContext` and `readback` then
   * throw `GpuDeviceLostError`. Optional for stand-in devices of tests.
   */
  readonly lost?: GPUDeviceLostInfo | null;
}

const WANTED_LIMITS: readonly GpuLimitName[] = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupsPerDimension",
];

/**
 * The largest storage binding halo asks for and records: 2³² − 4 bytes (u32::MAX rounded down to
 * a multiple of 4). Every kernel indexes a binding with u32 (byte offsets and element indices such
 * as `row * V`), and some backends (wgpu's Metal from version 30, gfx-rs/wgpu#10305) advertise
 * bindings past 4 GiB, beyond which naga's bounds checks silently read zeros. Capping it keeps
 * every buffer halo sizes from `Gpu.maxBindingSize` (matrix chunks, LM-head blocks, generation
 * chunks) addressable. `maxBufferSize` keeps the adapter's value: it bounds whole buffers, not
 * what one binding addresses.
 */
const MAX_BINDING_SIZE = 2 ** 32 - 4;

const INSTALL_HINT =
  "install a WebGPU driver: on Linux without a GPU, Mesa's software rasteriser (llvmpipe, or Vulkan " +
  '"lavapipe" via `apt-get install mesa-vulkan-drivers`); or use the CPU backend ' +
  '(`backend: "cpu"`)';

/**
 * Requests a WebGPU adapter (high-performance preferred) and a device with explicit limits.
 *
 * @param options Adapter preference and minimum limits.
 * @returns The device with its description and limits; its `lost` field is set when the device
 * is lost.
 * @throws {Error} If no adapter exists or it cannot give a required limit; the message says what
 * is missing and what to install.
 *
 * @example Create a device and print the adapter
 * ```ts ignore
 * import { createGpu } from "./device.ts";
 * const gpu = await createGpu();
 * console.log(gpu.description);
 * gpu.device.destroy();
 * ```
 */
export async function createGpu(options: CreateGpuOptions = {}): Promise<Gpu> {
  const gpuApi = options.gpu ?? (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpuApi) {
    throw new Error(
      `Cannot create a WebGPU device: this runtime has no navigator.gpu; ${INSTALL_HINT}`,
    );
  }
  const adapter = await gpuApi.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new Error(`Cannot create a WebGPU device: no adapter was found; ${INSTALL_HINT}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    const available = adapter.limits[name] as number;
    const needed = options.requiredLimits?.[name];
    if (needed !== undefined && needed > available) {
      throw new RangeError(
        `Cannot create a WebGPU device: limit "${name}" must be at least ${needed}: adapter ` +
          `"${describe(adapter.info)}" gives ${available}; ${INSTALL_HINT}, or use a smaller model`,
      );
    }
    if (
      name === "maxStorageBufferBindingSize" && needed !== undefined && needed > MAX_BINDING_SIZE
    ) {
      throw new RangeError(
        `Cannot create a WebGPU device: limit "${name}" must be at least ${needed}, but halo's ` +
          `kernels index a binding with u32, so it takes at most ${MAX_BINDING_SIZE} bytes`,
      );
    }
    // WebGPU's limits are u64 on some backends (an adapter may report u64::MAX); Deno accepts
    // only [0, 2^53 − 1] in requiredLimits, so ask for at most that.
    requiredLimits[name] = Math.min(
      available,
      name === "maxStorageBufferBindingSize" ? MAX_BINDING_SIZE : Number.MAX_SAFE_INTEGER,
    );
  }
  const features = [...adapter.features].filter((f) =>
    f === "shader-f16" || f === "timestamp-query"
  ) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: features });
  const errors: string[] = [];
  device.addEventListener?.("uncapturederror", (event) => {
    collectGpuError(errors, (event as GPUUncapturedErrorEvent).error.message);
  });
  const gpu = {
    device,
    description: describe(adapter.info),
    isFallbackAdapter: adapter.info.isFallbackAdapter ?? false,
    maxBindingSize: Math.min(device.limits.maxStorageBufferBindingSize, MAX_BINDING_SIZE),
    maxBufferSize: device.limits.maxBufferSize,
    features: new Set(features),
    errors,
    lost: null as GPUDeviceLostInfo | null,
  };
  // Deno resolves `lost` a few milliseconds after the loss (readback waits for it on a failure).
  device.lost?.then((info) => {
    gpu.lost = info;
  });
  return gpu;
}

function describe(info: GPUAdapterInfo): string {
  const parts = [info.description, info.vendor && `vendor ${info.vendor}`, info.architecture]
    .filter((p) => p);
  return parts.join(", ") || "unknown adapter";
}
