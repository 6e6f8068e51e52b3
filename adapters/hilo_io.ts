/**
 * HILO adapters on disk (no PEFT type exists; halo's own, documented in the README): a directory
 * with `adapter_config.json` and `adapter_model.safetensors`.
 *
 * - Config: `"peft_type": "HILO"`, `"base_model_name_or_path"`, `"target_modules"`,
 *   `"activation"` (`"top-k"` / `"top-p"`), `"top_p"`, `"lora_dropout"`, `"balance_coef"` and
 *   `"layers"`, one entry `{ "experts": E_l, "rank": r_l, "alpha": α_l, "top_k": k_l }` per decoder
 *   layer. Any other key is an error.
 * - Tensors (float32): `base_model.model.model.layers.{l}.{self_attn|mlp}.{proj}.experts.{e}.lora_A.weight`
 *   `[r_l, in]`, `….experts.{e}.lora_B.weight` `[out, r_l]` and `….router.weight` `[E_l, in]`
 *   (absent when E_l = 1). Any other tensor is an error.
 *
 * @module
 */
import { writeFileAtomic } from "../internal/atomic_write.ts";
import { show } from "../internal/show.ts";
import {
  openSafetensors,
  readTensorF32,
  type TensorToWrite,
  writeSafetensors,
} from "../internal/safetensors.ts";
import type { HiloLayerSpec, Lora, LoraModule } from "../model/adapter_types.ts";
import { type HiloConfig, hiloModules, toLoraConfig } from "./hilo.ts";
import type { LoraModelShape } from "./lora_config.ts";
import { PEFT_PREFIX } from "./peft_io.ts";
import { readJsonFile } from "../internal/read_json.ts";

const CONFIG_KEYS = [
  "peft_type",
  "base_model_name_or_path",
  "target_modules",
  "activation",
  "top_p",
  "lora_dropout",
  "balance_coef",
  "layers",
] as const;
const LAYER_KEYS = ["experts", "rank", "alpha", "top_k"] as const;

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The saved name of one expert matrix (always with `experts.{e}`, even when E = 1), without
 * PEFT's prefix.
 *
 * @param module The module name, e.g. `"model.layers.0.self_attn.q_proj"`.
 * @param options Expert index and matrix.
 * @returns The tensor name.
 *
 * @example Expert 2's B of a q projection
 * ```ts
 * import { hiloExpertTensorName } from "./hilo_io.ts";
 * console.log(hiloExpertTensorName("model.layers.0.self_attn.q_proj", { expert: 2, matrix: "B" }));
 * // "model.layers.0.self_attn.q_proj.experts.2.lora_B.weight"
 * ```
 */
export function hiloExpertTensorName(
  module: string,
  options: { expert: number; matrix: "A" | "B" },
): string {
  return `${module}.experts.${options.expert}.lora_${options.matrix}.weight`;
}

/**
 * Parses and checks a HILO `adapter_config.json` object.
 *
 * @param json The parsed JSON.
 * @param source The file, quoted in errors.
 * @returns The config.
 * @throws {TypeError} If it is not an object, `peft_type` is not `"HILO"`, a key is unknown, or
 * a value has the wrong type; the message names the key.
 * @throws {RangeError} If a value is out of range (top-k above the layer's experts, …).
 *
 * @example A one-layer config
 * ```ts
 * import { parseHiloConfig } from "./hilo_io.ts";
 * const cfg = parseHiloConfig({
 *   peft_type: "HILO", base_model_name_or_path: null, target_modules: ["q_proj"],
 *   activation: "top-k", top_p: 0.8, lora_dropout: 0, balance_coef: 0,
 *   layers: [{ experts: 4, rank: 2, alpha: 4, top_k: 2 }],
 * }, "inline");
 * console.log(cfg.layers[0].topK); // 2
 * ```
 */
export function parseHiloConfig(json: unknown, source: string): HiloConfig {
  const where = `Cannot load HILO config "${source}"`;
  if (!isObject(json)) {
    throw new TypeError(`${where}: expected a JSON object: current value is ${show(json)}`);
  }
  for (const k of Object.keys(json)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) {
      throw new TypeError(
        `${where}: key "${k}" is unknown: expected only ${CONFIG_KEYS.join(", ")}`,
      );
    }
  }
  for (const k of CONFIG_KEYS) {
    if (!(k in json)) throw new TypeError(`${where}: key "${k}" is missing`);
  }
  if (json.peft_type !== "HILO") {
    throw new TypeError(
      `${where}: key "peft_type" must be "HILO": current value is ${show(json.peft_type)}`,
    );
  }
  const base = json.base_model_name_or_path;
  if (base !== null && typeof base !== "string") {
    throw new TypeError(
      `${where}: key "base_model_name_or_path" must be a string or null: current value is ` +
        `${show(base)}`,
    );
  }
  const tm = json.target_modules;
  if (
    typeof tm !== "string" && !(Array.isArray(tm) && tm.every((t) => typeof t === "string"))
  ) {
    throw new TypeError(
      `${where}: key "target_modules" must be a string or a list of strings: current value is ` +
        `${show(tm)}`,
    );
  }
  if (json.activation !== "top-k" && json.activation !== "top-p") {
    throw new TypeError(
      `${where}: key "activation" must be "top-k" or "top-p": current value is ` +
        `${show(json.activation)}`,
    );
  }
  const num = (key: string, ok: (v: number) => boolean, range: string): number => {
    const v = json[key];
    if (typeof v !== "number" || !ok(v)) {
      throw new RangeError(`${where}: key "${key}" must be ${range}: current value is ${show(v)}`);
    }
    return v;
  };
  const topP = num("top_p", (v) => v > 0 && v <= 1, "a number in (0, 1]");
  const loraDropout = num("lora_dropout", (v) => v >= 0 && v < 1, "a number in [0, 1)");
  const balanceCoef = num("balance_coef", (v) => Number.isFinite(v) && v >= 0, "a number ≥ 0");
  if (!Array.isArray(json.layers) || json.layers.length === 0) {
    throw new TypeError(
      `${where}: key "layers" must be a non-empty list of per-layer entries: current value is ` +
        `${show(json.layers)}`,
    );
  }
  const layers = json.layers.map((entry: unknown, l: number): HiloLayerSpec => {
    const at = `${where}: key "layers[${l}]"`;
    if (!isObject(entry)) {
      throw new TypeError(`${at} must be an object: current value is ${show(entry)}`);
    }
    for (const k of Object.keys(entry)) {
      if (!(LAYER_KEYS as readonly string[]).includes(k)) {
        throw new TypeError(`${at}: key "${k}" is unknown: expected ${LAYER_KEYS.join(", ")}`);
      }
    }
    const int = (k: string): number => {
      const v = entry[k];
      if (!Number.isSafeInteger(v) || (v as number) < 1) {
        throw new RangeError(`${at}.${k} must be a positive integer: current value is ${show(v)}`);
      }
      return v as number;
    };
    const experts = int("experts");
    const rank = int("rank");
    const topK = int("top_k");
    if (topK > experts) {
      throw new RangeError(
        `${at}.top_k must be at most the layer's experts (${experts}): current value is ${topK}`,
      );
    }
    const alpha = entry.alpha;
    if (typeof alpha !== "number" || !(Number.isFinite(alpha) && alpha > 0)) {
      throw new RangeError(
        `${at}.alpha must be a positive number: current value is ${show(alpha)}`,
      );
    }
    return { experts, rank, alpha, topK };
  });
  return {
    activation: json.activation,
    topP,
    balanceCoef,
    layers,
    targetModules: tm as string | string[],
    loraDropout,
    baseModelNameOrPath: base as string | null,
  };
}

/**
 * The `adapter_config.json` object of a HILO config.
 *
 * @param config The config.
 * @returns A JSON-ready object with the saved format's keys.
 *
 * @example Round trip
 * ```ts
 * import { hiloConfig } from "./hilo.ts";
 * import { hiloConfigToJson, parseHiloConfig } from "./hilo_io.ts";
 * const cfg = hiloConfig({ numHiddenLayers: 2 }, { experts: "2-4" });
 * console.log(parseHiloConfig(hiloConfigToJson(cfg), "inline").layers[1].experts); // 4
 * ```
 */
export function hiloConfigToJson(config: HiloConfig): Record<string, unknown> {
  return {
    peft_type: "HILO",
    base_model_name_or_path: config.baseModelNameOrPath,
    target_modules: typeof config.targetModules === "string"
      ? config.targetModules
      : [...config.targetModules],
    activation: config.activation,
    top_p: config.topP,
    lora_dropout: config.loraDropout,
    balance_coef: config.balanceCoef,
    layers: config.layers.map((l) => ({
      experts: l.experts,
      rank: l.rank,
      alpha: l.alpha,
      top_k: l.topK,
    })),
  };
}

/**
 * The HILO config of adapters made by `createHilo` or loaded by {@linkcode loadHiloAdapter}.
 *
 * @param lora The adapters.
 * @returns Their config.
 * @throws {TypeError} If the adapters have no HILO settings (PEFT LoRA).
 *
 * @example The config of new adapters
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { createHilo, hiloConfig } from "./hilo.ts";
 * import { hiloConfigOf } from "./hilo_io.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const lora = createHilo(hiloConfig(model, { rank: 2 }), model, { seed: 0 });
 * console.log(hiloConfigOf(lora).layers[0].rank); // 2
 * ```
 */
export function hiloConfigOf(lora: Lora): HiloConfig {
  if (!lora.hilo) {
    throw new TypeError(
      "Cannot save HILO adapters: these adapters have no HILO settings (save PEFT LoRA with " +
        "savePeftAdapter)",
    );
  }
  return {
    ...lora.hilo,
    layers: lora.hilo.layers.map((l) => ({ ...l })),
    targetModules: lora.config.targetModules,
    loraDropout: lora.config.loraDropout,
    baseModelNameOrPath: lora.config.baseModelNameOrPath,
  };
}

/**
 * Loads a HILO adapter directory for a Qwen3 model. Every targeted projection must have each of
 * its layer's experts' A and B with the shapes the layer's rank implies, and a router `[E, in]`
 * when E > 1; the file may hold no other tensor. F32, F16, BF16 and F64 are read as float32.
 *
 * @param dir The adapter directory.
 * @param modelConfig The model the adapter is for.
 * @returns The adapters (`hilo` set; scale `α_l / r_l`).
 * @throws {Deno.errors.NotFound} If a file is missing.
 * @throws {SyntaxError} If `adapter_config.json` is not valid JSON.
 * @throws {TypeError} If a config key is unknown, missing or of the wrong type.
 * @throws {RangeError} If `layers` does not match the model's layer count, or a tensor is
 * missing, misshaped or unknown; the message names the file and tensor.
 *
 * @example Save random adapters and load them back
 * ```ts ignore
 * import { loadHiloAdapter } from "./hilo_io.ts";
 * declare const config: import("../model/config.ts").Qwen3Config;
 * const lora = await loadHiloAdapter("out/hilo", config);
 * ```
 */
export async function loadHiloAdapter(dir: string, modelConfig: LoraModelShape): Promise<Lora> {
  const configPath = joinPath(dir, "adapter_config.json");
  const weightsPath = joinPath(dir, "adapter_model.safetensors");
  const json = await readJson(configPath);
  const config = parseHiloConfig(json, configPath);
  if (config.layers.length !== modelConfig.numHiddenLayers) {
    throw new RangeError(
      `Cannot load HILO config "${configPath}": key "layers" must have one entry per decoder ` +
        `layer (${modelConfig.numHiddenLayers}): current length is ${config.layers.length}`,
    );
  }
  const resolved = hiloModules(config, modelConfig);
  try {
    await Deno.stat(weightsPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load adapter "${weightsPath}": file not found`);
    }
    throw e;
  }
  const file = await openSafetensors(weightsPath);
  try {
    const where = `Cannot load adapter "${weightsPath}"`;
    const used = new Set<string>();
    const read = (name: string, shape: number[], what: string): Float32Array => {
      const info = file.tensors.get(name);
      if (!info) throw new RangeError(`${where}: tensor "${name}" is missing (${what})`);
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new RangeError(
          `${where}: tensor "${name}" must have shape [${shape.join(", ")}] (${what}): current ` +
            `shape is [${info.shape.join(", ")}]`,
        );
      }
      used.add(name);
      return readTensorF32(file, name);
    };
    const modules: LoraModule[] = resolved.map(({ spec, ...m }) => {
      const experts = Array.from({ length: spec.experts }, (_, e) => {
        const at = (matrix: "A" | "B") =>
          PEFT_PREFIX + hiloExpertTensorName(m.name, { expert: e, matrix });
        return {
          a: read(at("A"), [spec.rank, m.inFeatures], `layer ${m.layer} rank ${spec.rank}`),
          b: read(at("B"), [m.outFeatures, spec.rank], `layer ${m.layer} rank ${spec.rank}`),
          r: spec.rank,
          scale: spec.alpha / spec.rank,
        };
      });
      const module: LoraModule = { ...m, experts };
      if (spec.experts > 1) {
        module.router = {
          weight: read(
            `${PEFT_PREFIX}${m.name}.router.weight`,
            [spec.experts, m.inFeatures],
            `layer ${m.layer} has ${spec.experts} experts`,
          ),
          activation: config.activation,
          topK: spec.topK,
          topP: config.topP,
        };
      }
      return module;
    });
    for (const name of file.tensors.keys()) {
      if (!used.has(name)) {
        throw new RangeError(
          `${where}: tensor "${name}" is unknown: it belongs to no expert or router that ` +
            `"${configPath}" describes`,
        );
      }
    }
    return {
      config: toLoraConfig(config),
      modules,
      hilo: {
        activation: config.activation,
        topP: config.topP,
        balanceCoef: config.balanceCoef,
        layers: config.layers,
      },
    };
  } finally {
    file.close();
  }
}

function readJson(path: string): Promise<unknown> {
  return readJsonFile(path, { context: "Cannot load adapter" });
}

/** Options of {@linkcode saveHiloAdapter}. */
export interface SaveHiloAdapterOptions {
  /** Stored as `base_model_name_or_path`; default the adapters' value. */
  baseModelNameOrPath?: string;
}

/**
 * Saves HILO adapters, each file atomically (temporary file, then rename): the safetensors first,
 * then `adapter_config.json`, so a directory with a config is complete. Loading the result with
 * {@linkcode loadHiloAdapter} gives bit-identical tensors.
 *
 * @param dir The adapter directory (created if needed).
 * @param lora HILO adapters (from `createHilo`, `loadHiloAdapter` or a GPU read-back).
 * @param options The base model's name.
 * @returns A promise that resolves once both files are in place.
 * @throws {TypeError} If the adapters have no HILO settings.
 * @throws {RangeError} If a module's experts, ranks, scales or router disagree with its layer's
 * entry; the message names the module.
 *
 * @example Save new adapters
 * ```ts ignore
 * import { readQwen3Config } from "../model/config.ts";
 * import { createHilo, hiloConfig } from "./hilo.ts";
 * import { saveHiloAdapter } from "./hilo_io.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * await saveHiloAdapter("out/hilo", createHilo(hiloConfig(model), model, { seed: 0 }));
 * ```
 */
export async function saveHiloAdapter(
  dir: string,
  lora: Lora,
  options: SaveHiloAdapterOptions = {},
): Promise<void> {
  const config = hiloConfigOf(lora);
  if (options.baseModelNameOrPath !== undefined) {
    config.baseModelNameOrPath = options.baseModelNameOrPath;
  }
  const weightsPath = joinPath(dir, "adapter_model.safetensors");
  const where = `Cannot save adapter "${weightsPath}"`;
  const tensors: Record<string, TensorToWrite> = {};
  for (const m of lora.modules) {
    const spec = config.layers[m.layer];
    if (spec === undefined) {
      throw new RangeError(
        `${where}: module "${m.name}" is in layer ${m.layer}, which has no entry`,
      );
    }
    if (m.experts.length !== spec.experts || (spec.experts > 1) !== (m.router !== undefined)) {
      throw new RangeError(
        `${where}: module "${m.name}" must have ${spec.experts} experts and ` +
          `${spec.experts > 1 ? "a" : "no"} router (layer ${m.layer}'s entry): current value is ` +
          `${m.experts.length} experts, ${m.router ? "a" : "no"} router`,
      );
    }
    if (m.router && (m.router.topK !== spec.topK || m.router.activation !== config.activation)) {
      throw new RangeError(
        `${where}: module "${m.name}" router must use ${config.activation} with k = ` +
          `${spec.topK}: current value is ${m.router.activation} with k = ${m.router.topK}`,
      );
    }
    m.experts.forEach((e, i) => {
      const scale = spec.alpha / spec.rank;
      if (e.r !== spec.rank || Math.abs(e.scale - scale) > 1e-12 * scale) {
        throw new RangeError(
          `${where}: module "${m.name}" expert ${i} must have rank ${spec.rank} and scale ` +
            `${scale}: current values are ${e.r} and ${e.scale}`,
        );
      }
      tensors[PEFT_PREFIX + hiloExpertTensorName(m.name, { expert: i, matrix: "A" })] = {
        dtype: "F32",
        shape: [e.r, m.inFeatures],
        data: e.a,
      };
      tensors[PEFT_PREFIX + hiloExpertTensorName(m.name, { expert: i, matrix: "B" })] = {
        dtype: "F32",
        shape: [m.outFeatures, e.r],
        data: e.b,
      };
    });
    if (m.router) {
      tensors[`${PEFT_PREFIX}${m.name}.router.weight`] = {
        dtype: "F32",
        shape: [m.experts.length, m.inFeatures],
        data: m.router.weight,
      };
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await writeSafetensors(weightsPath, tensors, { metadata: { format: "pt" } });
  await writeFileAtomic(
    joinPath(dir, "adapter_config.json"),
    JSON.stringify(hiloConfigToJson(config), null, 2) + "\n",
  );
}
