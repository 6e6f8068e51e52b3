/**
 * Loading a HuggingFace Qwen3 checkpoint directory onto a backend.
 *
 * @module
 */
import { createGpu, type Gpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { readQwen3Config } from "./config.ts";
import type { KvDtype } from "./kv_cache.ts";
import type { Qwen3Model } from "./model.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";
import { loadQwen3Weights, openQwen3Weights, type Qwen3Weights } from "./weights.ts";

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions {
  /**
   * `"webgpu"` (default) runs the WGSL kernels and fails when no adapter exists; `"cpu"` runs the
   * float64 reference ops (slow, with a warning); `"auto"` uses WebGPU when an adapter exists and
   * falls back to the CPU with a warning.
   */
  backend?: "webgpu" | "cpu" | "auto";
  /** A device to share between models; default a new one from `createGpu()`. */
  gpu?: Gpu | GpuContext;
  /** Print warnings (CPU fallback, software adapter); default true. */
  warn?: boolean;
  /**
   * Largest row block of a weight matrix on the GPU, in bytes (default: the device's storage
   * binding limit). Larger matrices are split; tests use a small value to exercise the split.
   */
  maxChunkBytes?: number;
  /**
   * An adapter directory to apply: PEFT LoRA (`"peft_type": "LORA"`) or HILO (`"HILO"`), read by
   * `adapters/load_adapter.ts`; default none.
   */
  adapter?: string;
  /**
   * WebGPU only: store the weight matrices as `"f16"` (half the memory, f32 arithmetic; frozen:
   * for adapter training and inference) or `"f32"` (default). See `WebGpuQwen3Options`.
   */
  weightDtype?: "f32" | "f16";
  /**
   * WebGPU only: store generation's KV cache as `"f16"` (half the memory, f32 attention; any
   * adapter) or `"f32"` (default); the CPU backend ignores it, as `weightDtype`. See
   * `WebGpuQwen3Options`.
   */
  kvDtype?: KvDtype;
  /**
   * WebGPU only: store each layer's q|k|v and gate|up base weights as one buffer each (one
   * decode matvec per group); default true. See `WebGpuQwen3Options.fuseProjections`.
   */
  fuseProjections?: boolean;
  /**
   * WebGPU only: decoder layers per `queue.submit` in the forward, training steps and prefill
   * (OS GPU watchdogs); default 1 on a hardware adapter, 0 (no split) on a software one. See
   * `WebGpuQwen3Options.submitEveryLayers`.
   */
  submitEveryLayers?: number;
}

/**
 * Loads `config.json` and the safetensors weights (single file or sharded; F32, F16 or BF16,
 * upcast to float32, or with `weightDtype: "f16"` on WebGPU read straight into f16) from a
 * HuggingFace checkpoint directory. A WebGPU model keeps no host copy of the weights.
 *
 * @param dir The checkpoint directory.
 * @param options Backend choice, device and an optional adapter directory.
 * @returns The model, ready for `forward` and `tokenLogprobs`.
 * @throws {Error} With the file and tensor or key named, for a bad config or checkpoint; when
 * `backend` is `"webgpu"` and no adapter exists, with what to install; for a bad adapter
 * directory, naming the file and the key or tensor.
 *
 * @example Load the bundled tiny model on the CPU and score a sequence
 * ```ts
 * import { loadModel } from "./load_model.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const { logprobs } = await model.tokenLogprobs({ inputIds: [[1, 2, 3, 4]] });
 * console.log(logprobs.length); // 3
 * model.dispose();
 * ```
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<Qwen3Model> {
  const backend = options.backend ?? "webgpu";
  const warn = options.warn ?? true;
  if (!["webgpu", "cpu", "auto"].includes(backend)) {
    throw new TypeError(
      `Cannot load model "${dir}": backend must be "webgpu", "cpu" or "auto": current value is ` +
        `"${backend}"`,
    );
  }
  const config = await readQwen3Config(dir);
  let ctx: GpuContext | undefined;
  if (backend !== "cpu") {
    try {
      const gpu = options.gpu ?? await createGpu();
      ctx = gpu instanceof GpuContext ? gpu : new GpuContext(gpu);
    } catch (e) {
      if (backend === "webgpu") throw e;
      if (warn) console.warn(`${(e as Error).message}; falling back to the slow CPU backend`);
    }
  }
  // The adapter readers live in adapters/, above model/; they are imported only when asked for
  // (a dynamic import, so model/ keeps no static edge up to adapters/).
  const lora = options.adapter === undefined
    ? null
    : await (await import("../adapters/load_adapter.ts")).loadAdapter(options.adapter, config);
  // On the GPU each tensor is read from disk as it is uploaded (no host copy of the model is
  // kept), f16 weights straight into f16; the CPU model keeps float32 arrays.
  using open = ctx
    ? await openQwen3Weights(dir, config, {
      matrixDtype: options.weightDtype === "f16" ? "f16" : "f32",
    })
    : null; // closed when this function returns or throws
  const weights = open?.weights ?? await loadQwen3Weights(dir, config);
  let model: CpuQwen3 | WebGpuQwen3;
  if (!ctx) {
    if (warn && backend === "cpu") {
      console.warn("Running on the CPU backend (float64 reference ops): correct but slow");
    }
    model = new CpuQwen3(config, weights as Qwen3Weights);
  } else {
    if (warn && ctx.gpu.isFallbackAdapter) {
      console.warn(
        `WebGPU adapter "${ctx.gpu.description}" is a software rasteriser: expect 1-2 GFLOP/s`,
      );
    }
    model = new WebGpuQwen3(ctx, config, weights, {
      maxChunkBytes: options.maxChunkBytes,
      weightDtype: options.weightDtype,
      kvDtype: options.kvDtype,
      fuseProjections: options.fuseProjections,
      submitEveryLayers: options.submitEveryLayers,
    });
    await ctx.settleUploads(); // the staging copies of the uploads can go now
  }
  if (lora !== null) model.setAdapters(lora);
  return model;
}
