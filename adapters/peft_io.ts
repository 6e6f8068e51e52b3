/**
 * Reading and writing LoRA adapters in PEFT's format: a directory with `adapter_config.json` and
 * `adapter_model.safetensors`, whose tensors are named
 * `base_model.model.<module>.lora_A.weight` (`[r, in]`) and `…lora_B.weight` (`[out, r]`).
 *
 * @module
 */
import {
  openSafetensors,
  readTensorF32,
  type TensorToWrite,
  writeSafetensors,
} from "../internal/safetensors.ts";
import { type Lora, type LoraModule, loraTensorName } from "./lora.ts";
import {
  loraConfigToJson,
  type LoraModelShape,
  loraModuleHyperparameters,
  parseLoraConfig,
  resolveLoraModules,
} from "./lora_config.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";
import { readJsonFile } from "../internal/read_json.ts";

/** Prefix PEFT puts before module names in saved adapters (`PeftModel` → `LoraModel` → model). */
export const PEFT_PREFIX = "base_model.model.";

/** Options of {@linkcode savePeftAdapter}. */
export interface SavePeftAdapterOptions {
  /** Stored as `base_model_name_or_path`; default the config's value. */
  baseModelNameOrPath?: string;
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

function showShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Loads a PEFT LoRA adapter for a Qwen3 model. Every projection the config targets must have
 * both matrices with the shapes its rank (after `rank_pattern`) implies; the file may hold no
 * other tensor. F32, F16, BF16 and F64 tensors are read as float32.
 *
 * @param dir The adapter directory.
 * @param modelConfig The model the adapter is for.
 * @returns The adapter: one expert per module with `scale = alpha / r` (or rsLoRA's).
 * @throws {Deno.errors.NotFound} If a file is missing.
 * @throws {SyntaxError} If `adapter_config.json` is not valid JSON.
 * @throws {TypeError} If a config key has the wrong type.
 * @throws {RangeError} If the config names a module halo cannot adapt, or a tensor is missing,
 * has the wrong shape, or belongs to no targeted module; the message names the file and tensor.
 *
 * @example Load the fixture's adapter
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { loadPeftAdapter } from "./peft_io.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const lora = await loadPeftAdapter(`${dir}/adapter`, await readQwen3Config(dir));
 * console.log(lora.modules.length, lora.modules[0].experts[0].scale); // 14 2
 * ```
 */
export async function loadPeftAdapter(dir: string, modelConfig: LoraModelShape): Promise<Lora> {
  const configPath = joinPath(dir, "adapter_config.json");
  const weightsPath = joinPath(dir, "adapter_model.safetensors");
  const json = await readJsonFile(configPath, { context: "Cannot load adapter" });
  const config = parseLoraConfig(json, configPath);
  const resolved = resolveLoraModules(config, modelConfig, { source: configPath });
  try {
    await Deno.stat(weightsPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load adapter "${weightsPath}": file not found (halo reads only safetensors ` +
          `adapters, not adapter_model.bin)`,
      );
    }
    throw e;
  }
  const file = await openSafetensors(weightsPath);
  try {
    const where = `Cannot load adapter "${weightsPath}"`;
    const used = new Set<string>();
    const read = (name: string, shape: number[], what: string): Float32Array => {
      const info = file.tensors.get(name);
      if (!info) {
        throw new RangeError(`${where}: tensor "${name}" is missing (${what})`);
      }
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new RangeError(
          `${where}: tensor "${name}" must have shape ${showShape(shape)} (${what}): current ` +
            `shape is ${showShape(info.shape)}`,
        );
      }
      used.add(name);
      return readTensorF32(file, name);
    };
    const modules: LoraModule[] = resolved.map((m) => {
      const one = { name: m.name, experts: [0] };
      const aName = PEFT_PREFIX + loraTensorName(one, { matrix: "A" });
      const bName = PEFT_PREFIX + loraTensorName(one, { matrix: "B" });
      const a = read(aName, [m.r, m.inFeatures], `r = ${m.r}, in_features = ${m.inFeatures}`);
      const b = read(bName, [m.outFeatures, m.r], `out_features = ${m.outFeatures}, r = ${m.r}`);
      return {
        name: m.name,
        layer: m.layer,
        target: m.target,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        experts: [{ a, b, r: m.r, scale: m.scale }],
      };
    });
    for (const name of file.tensors.keys()) {
      if (!used.has(name)) {
        throw new RangeError(
          `${where}: tensor "${name}" belongs to no module that "${configPath}" targets ` +
            `(target_modules ${JSON.stringify(config.targetModules)})`,
        );
      }
    }
    return { config, modules };
  } finally {
    file.close();
  }
}

/**
 * Saves adapters in PEFT's format, each file atomically (temporary file in the same directory,
 * then rename): `adapter_model.safetensors` (float32, `__metadata__ {format: "pt"}`) first, then
 * `adapter_config.json`. Creates the directory if needed. Loading the result with
 * {@linkcode loadPeftAdapter} gives bit-identical matrices.
 *
 * @param dir The adapter directory.
 * @param lora The adapters; every module must have one expert whose rank and scale are what the
 * config gives that module (PEFT's format has no experts).
 * @param options The base model's name.
 * @returns A promise that resolves once both files are in place.
 * @throws {RangeError} If a module has several experts, is not targeted by the config, or its
 * rank, scale or matrix sizes disagree with the config.
 *
 * @example Save new adapters
 * ```ts ignore
 * import { readQwen3Config } from "../model/config.ts";
 * import { loraConfig } from "./lora_config.ts";
 * import { createLora } from "./lora.ts";
 * import { savePeftAdapter } from "./peft_io.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * await savePeftAdapter("out/adapter", createLora(loraConfig({ r: 8 }), model, { seed: 0 }));
 * ```
 */
export async function savePeftAdapter(
  dir: string,
  lora: Lora,
  options: SavePeftAdapterOptions = {},
): Promise<void> {
  const configPath = joinPath(dir, "adapter_config.json");
  const weightsPath = joinPath(dir, "adapter_model.safetensors");
  const where = `Cannot save adapter "${weightsPath}"`;
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of lora.modules) {
    if (m.experts.length !== 1) {
      throw new RangeError(
        `${where}: module "${m.name}" has ${m.experts.length} experts, but PEFT's format holds ` +
          `one LoRA per module`,
      );
    }
    const hp = loraModuleHyperparameters(lora.config, m.name);
    const e = m.experts[0];
    if (hp === null) {
      throw new RangeError(
        `${where}: module "${m.name}" is not targeted by the config (target_modules ` +
          `${JSON.stringify(lora.config.targetModules)}), so PEFT would not load it`,
      );
    }
    if (hp.r !== e.r || Math.abs(hp.scale - e.scale) > 1e-12 * Math.abs(hp.scale)) {
      throw new RangeError(
        `${where}: module "${m.name}" must have the rank ${hp.r} and scale ${hp.scale} the config ` +
          `gives it: current values are ${e.r} and ${e.scale}`,
      );
    }
    if (e.a.length !== e.r * m.inFeatures || e.b.length !== m.outFeatures * e.r) {
      throw new RangeError(
        `${where}: module "${m.name}" must have A [${e.r}, ${m.inFeatures}] and B ` +
          `[${m.outFeatures}, ${e.r}]: current lengths are ${e.a.length} and ${e.b.length}`,
      );
    }
    tensors[PEFT_PREFIX + loraTensorName(m, { matrix: "A" })] = {
      dtype: "F32",
      shape: [e.r, m.inFeatures],
      data: e.a,
    };
    tensors[PEFT_PREFIX + loraTensorName(m, { matrix: "B" })] = {
      dtype: "F32",
      shape: [m.outFeatures, e.r],
      data: e.b,
    };
  }
  const json = loraConfigToJson(lora.config);
  if (options.baseModelNameOrPath !== undefined) {
    json.base_model_name_or_path = options.baseModelNameOrPath;
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(weightsPath, tensors, { metadata: { format: "pt" } });
  await writeFileAtomic(configPath, JSON.stringify(json, null, 2) + "\n");
}
