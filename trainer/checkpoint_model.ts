/**
 * Opens what a user calls "a model" at the command line: a HuggingFace model directory
 * (`config.json`, such as a run's `final/`) or a full-fine-tuning checkpoint `<run>/step_NNNNNN/`
 * (its weights on the base model its `meta.json` names). One loader for `anchors`, `eval` and
 * `demo`.
 *
 * @example Open a run's checkpoint or its final export the same way
 * ```ts ignore
 * import { loadModelOrCheckpoint } from "./checkpoint_model.ts";
 * const { model, tokenizerDir } = await loadModelOrCheckpoint("out/run/step_000004", {
 *   backend: "cpu",
 * });
 * console.log(model.config.numHiddenLayers, tokenizerDir); // the base model's directory
 * model.dispose();
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { exists } from "../internal/exists.ts";
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { readQwen3Config } from "../model/config.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { checkBaseModel, loadCheckpoint } from "./checkpoint.ts";
import { modelParams } from "./params.ts";

/** Options of {@linkcode loadModelOrCheckpoint}. */
export interface LoadModelOrCheckpointOptions {
  /** `"cpu"`, `"webgpu"` or `"auto"` (WebGPU when an adapter exists, else the CPU). */
  backend: "cpu" | "webgpu" | "auto";
  /** Print the CPU-fallback and software-adapter warnings; default false. */
  warn?: boolean;
  /** The start of every error message; default `Cannot load model "<dir>"`. */
  what?: string;
}

/** What {@linkcode loadModelOrCheckpoint} opened. */
export interface OpenedModel {
  /** The model; dispose it at the end. */
  model: Qwen3Model;
  /** Where its tokenizer is: the directory itself, or a checkpoint's base model directory. */
  tokenizerDir: string;
  /** The checkpoint's step, or `null` for a model directory. */
  step: number | null;
}

/**
 * Loads a model directory, or a full-fine-tuning checkpoint on its base model.
 *
 * @param dir A model directory (`config.json`) or a checkpoint (`step_NNNNNN/` with `meta.json`).
 * @param options The backend, warnings and the error prefix.
 * @returns The model, its tokenizer directory and the checkpoint's step.
 * @throws {Deno.errors.NotFound} When `dir` does not exist (named).
 * @throws {RangeError} When `dir` is neither a model nor a checkpoint, the checkpoint holds
 *   adapter weights or a `builtin:` base (no base directory: use the run's `final/`), or a tensor
 *   does not fit the base model.
 */
export async function loadModelOrCheckpoint(
  dir: string,
  options: LoadModelOrCheckpointOptions,
): Promise<OpenedModel> {
  const what = options.what ?? `Cannot load model "${dir}"`;
  const warn = options.warn ?? false;
  if (await exists(join(dir, "config.json"))) {
    const model = await loadModel(dir, { backend: options.backend, warn });
    return { model, tokenizerDir: dir, step: null };
  }
  if (!(await exists(dir))) {
    throw new Deno.errors.NotFound(`${what}: directory "${dir}" not found`);
  }
  if (!(await exists(join(dir, "meta.json")))) {
    throw new RangeError(
      `${what}: "${dir}" must be a model directory (config.json) or a checkpoint ` +
        `(step_NNNNNN/ with meta.json): it has neither`,
    );
  }
  const checkpoint = await loadCheckpoint(dir);
  const base = (checkpoint.meta.config as { model?: { path?: string } })?.model?.path;
  if (
    checkpoint.meta.weights !== "model" || typeof base !== "string" || base.startsWith("builtin:")
  ) {
    throw new RangeError(
      `${what}: "${dir}" must be a full-fine-tuning checkpoint of a model directory: it holds ` +
        `"${checkpoint.meta.weights}" weights on "${base}" (use the run's final/ export instead)`,
    );
  }
  try {
    const warning = await checkBaseModel(checkpoint, base);
    if (warning !== null && warn) console.warn(`Warning: ${warning}`);
  } catch (error) {
    throw new RangeError(`${what}: ${(error as Error).message}`);
  }
  const config = await readQwen3Config(base);
  const weights = await loadQwen3Weights(base, config);
  const params = modelParams(weights, config);
  for (const [name, tensor] of Object.entries(checkpoint.tensors)) {
    const target = params.tree[name];
    if (target === undefined || target.length !== tensor.data.length) {
      throw new RangeError(
        `${what}: tensor "${name}" of checkpoint "${dir}" does not fit the base model "${base}"`,
      );
    }
    target.set(tensor.data);
  }
  let model: Qwen3Model | null = null;
  if (options.backend !== "cpu") {
    try {
      model = new WebGpuQwen3(new GpuContext(await createGpu()), config, weights);
    } catch (error) {
      if (options.backend === "webgpu") throw error;
      if (warn) console.warn(`${(error as Error).message}; falling back to the CPU backend`);
    }
  }
  return {
    model: model ?? new CpuQwen3(config, weights),
    tokenizerDir: base,
    step: checkpoint.meta.step,
  };
}
