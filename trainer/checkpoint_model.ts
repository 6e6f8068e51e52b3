/**
 * Opens what a user calls "a model" at the command line: a HuggingFace model directory
 * (`config.json`, such as a full fine-tuning run's `final/`), an adapter directory
 * (`adapter_config.json`, such as a LoRA or HILO run's `final/`, on the base model its
 * `base_model_name_or_path` names) or a checkpoint `<run>/step_NNNNNN/` (its weights, the whole
 * model or the adapters, on the base model its `meta.json` names). One loader for `anchors`,
 * `eval` and `demo`.
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
import { checkBaseModel, loadCheckpoint, type LoadedCheckpoint } from "./checkpoint.ts";
import { assignParams, loraParams, modelParams } from "./params.ts";
import type { ParamTree } from "./types.ts";
import { PEFT_PREFIX } from "../adapters/peft_io.ts";
import { runAdapters } from "./run_adapters.ts";
import { withSavedConfigDefaults } from "./saved_config.ts";
import { validateConfig } from "./validate_config.ts";

/** Options of {@linkcode loadModelOrCheckpoint}. */
export interface LoadModelOrCheckpointOptions {
  /** `"cpu"`, `"webgpu"` or `"auto"` (WebGPU when an adapter exists, else the CPU). */
  backend: "cpu" | "webgpu" | "auto";
  /** Print the CPU-fallback and software-adapter warnings; default false. */
  warn?: boolean;
  /** The start of every error message; default `Cannot load model "<dir>"`. */
  what?: string;
  /**
   * The command's flag for an adapter on a model (eval's `--adapter`), named in the error about
   * an adapter directory whose base model is not found; default none.
   */
  adapterFlag?: string;
}

/** What {@linkcode loadModelOrCheckpoint} opened. */
export interface OpenedModel {
  /** The model; dispose it at the end. */
  model: Qwen3Model;
  /** Where its tokenizer is: the directory itself, or a checkpoint's base model directory. */
  tokenizerDir: string;
  /** The checkpoint's step, or `null` for a model or adapter directory. */
  step: number | null;
  /** Whether adapters (from an adapter directory or checkpoint) are set on `model`. */
  adapter: boolean;
}

/**
 * Loads a model directory; an adapter directory on its base model; or a checkpoint (of full
 * fine-tuning, or of a LoRA/HILO run: its adapters built from the run's `adapters` section) on
 * its base model.
 *
 * @param dir A model directory (`config.json`), an adapter directory (`adapter_config.json`) or a
 *   checkpoint (`step_NNNNNN/` with `meta.json`).
 * @param options The backend, warnings, the error prefix and the command's adapter flag.
 * @returns The model, its tokenizer directory, the checkpoint's step and whether adapters are set.
 * @throws {Deno.errors.NotFound} When `dir` does not exist (named).
 * @throws {RangeError} When `dir` is none of these, its base is not a model directory (a
 *   `builtin:` base, or an adapter's base not found from here), or a tensor does not fit the base
 *   model.
 */
export async function loadModelOrCheckpoint(
  dir: string,
  options: LoadModelOrCheckpointOptions,
): Promise<OpenedModel> {
  const what = options.what ?? `Cannot load model "${dir}"`;
  const warn = options.warn ?? false;
  if (await exists(join(dir, "config.json"))) {
    const model = await loadModel(dir, { backend: options.backend, warn });
    return { model, tokenizerDir: dir, step: null, adapter: false };
  }
  if (!(await exists(dir))) {
    throw new Deno.errors.NotFound(`${what}: directory "${dir}" not found`);
  }
  if (await exists(join(dir, "adapter_config.json"))) {
    return await openAdapterDir(dir, what, options);
  }
  if (!(await exists(join(dir, "meta.json")))) {
    throw new RangeError(
      `${what}: "${dir}" must be a model directory (config.json), an adapter directory ` +
        `(adapter_config.json) or a checkpoint (step_NNNNNN/ with meta.json): it has none`,
    );
  }
  const checkpoint = await loadCheckpoint(dir);
  const base = (checkpoint.meta.config as { model?: { path?: string } })?.model?.path;
  const kind = checkpoint.meta.weights;
  if (typeof base !== "string" || base.startsWith("builtin:")) {
    throw new RangeError(
      `${what}: "${dir}" must be a checkpoint on a model directory: it holds "${kind}" ` +
        `weights on "${base}", which is not one` +
        (kind === "model" ? " (use the run's final/ export instead)" : ""),
    );
  }
  try {
    const warning = await checkBaseModel(checkpoint, base);
    if (warning !== null && warn) console.warn(`Warning: ${warning}`);
  } catch (error) {
    throw new RangeError(`${what}: ${(error as Error).message}`);
  }
  if (kind === "adapter") return await openAdapterCheckpoint(checkpoint, base, what, options);
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
    adapter: false,
  };
}

/** An adapter export (`adapter_config.json`) on the base model it names. */
async function openAdapterDir(
  dir: string,
  what: string,
  options: LoadModelOrCheckpointOptions,
): Promise<OpenedModel> {
  let base: unknown;
  try {
    base = JSON.parse(await Deno.readTextFile(join(dir, "adapter_config.json")))
      .base_model_name_or_path;
  } catch (error) {
    throw new RangeError(
      `${what}: cannot read "${join(dir, "adapter_config.json")}": ${(error as Error).message}`,
    );
  }
  if (typeof base !== "string" || !(await exists(join(base, "config.json")))) {
    const flag = options.adapterFlag;
    throw new RangeError(
      `${what}: "${dir}" is an adapter directory (adapter_config.json) whose base model ` +
        `(base_model_name_or_path ${JSON.stringify(base ?? null)}) is not a model directory ` +
        `from here` +
        (flag === undefined
          ? ""
          : `: give the base model and the adapter apart, --model <base> ${flag} "${dir}"`),
    );
  }
  const model = await loadModel(base, {
    backend: options.backend,
    warn: options.warn ?? false,
    adapter: dir,
  });
  return { model, tokenizerDir: base, step: null, adapter: true };
}

/** A LoRA/HILO run's checkpoint: its run's adapters, with its weights, on its base model. */
async function openAdapterCheckpoint(
  checkpoint: LoadedCheckpoint,
  base: string,
  what: string,
  options: LoadModelOrCheckpointOptions,
): Promise<OpenedModel> {
  const source = join(checkpoint.dir, "meta.json");
  const model = await loadModel(base, { backend: options.backend, warn: options.warn ?? false });
  try {
    const config = validateConfig(withSavedConfigDefaults(checkpoint.meta.config), { source });
    const lora = runAdapters(config, model.config);
    if (lora === null) {
      throw new RangeError(
        `"${source}" holds adapter weights, but its key "adapters.kind" is "none"`,
      );
    }
    const loaded: ParamTree = {};
    for (const [name, tensor] of Object.entries(checkpoint.tensors)) {
      if (!name.startsWith(PEFT_PREFIX) || !(tensor.data instanceof Float32Array)) {
        throw new TypeError(`tensor "${name}" is not a float adapter parameter`);
      }
      loaded[name.slice(PEFT_PREFIX.length)] = tensor.data;
    }
    assignParams(loraParams(lora).tree, loaded);
    (model as CpuQwen3 | WebGpuQwen3).setAdapters(lora);
  } catch (error) {
    model.dispose();
    const Type = error instanceof TypeError ? TypeError : RangeError;
    throw new Type(
      `${what}: the adapters of checkpoint "${checkpoint.dir}" do not fit the base model ` +
        `"${base}": ${(error as Error).message}`,
    );
  }
  return { model, tokenizerDir: base, step: checkpoint.meta.step, adapter: true };
}
