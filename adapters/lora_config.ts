/**
 * LoRA hyperparameters with PEFT's semantics: which projections carry an adapter
 * (`target_modules`, `exclude_modules`, `layers_to_transform`), their rank and alpha (`r`,
 * `lora_alpha`, per-module `rank_pattern` / `alpha_pattern`, `use_rslora`) and dropout.
 *
 * The same validation serves a PEFT `adapter_config.json` ({@linkcode parseLoraConfig}, snake_case
 * keys) and options written in TypeScript ({@linkcode loraConfig}, camelCase keys); errors name the
 * key as the source spells it.
 *
 * @module
 */
import type { LoraConfig } from "../model/adapter_types.ts";
import { projectionShape } from "../model/adapter_types.ts";
import {
  projectionModuleName,
  type ProjectionName,
  PROJECTIONS,
  type TensorTableConfig,
} from "../model/tensor_table.ts";
import { show } from "../internal/show.ts";

/**
 * The model dimensions that LoRA needs to resolve and shape its adapters (any `Qwen3Config` is
 * one).
 */
export type LoraModelShape = TensorTableConfig;

/** The projections of a Qwen3 decoder layer that can carry a LoRA adapter (PEFT module names). */
export type LoraTarget = ProjectionName;

/**
 * Every {@linkcode LoraTarget}, in the order the forward pass runs them (the tensor table's
 * `PROJECTIONS`).
 *
 * @example Usage
 * ```ts
 * import { LORA_TARGETS } from "./lora_config.ts";
 * console.log(LORA_TARGETS[0]); // "q_proj"
 * ```
 */
export const LORA_TARGETS: readonly LoraTarget[] = PROJECTIONS;

export type { LoraConfig } from "../model/adapter_types.ts";

/** Options of {@linkcode loraConfig}: any field of {@linkcode LoraConfig}; the rest default. */
export type LoraConfigOptions = Partial<LoraConfig>;

/** One projection that carries an adapter, with its resolved rank and alpha. */
export interface ResolvedLoraModule {
  /** Module name as in HF/PEFT, e.g. `"model.layers.0.self_attn.q_proj"`. */
  name: string;
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: LoraTarget;
  /** Input width of the projection (columns of A). */
  inFeatures: number;
  /** Output width of the projection (rows of B). */
  outFeatures: number;
  /** Rank after `rank_pattern`. */
  r: number;
  /** Alpha after `alpha_pattern`. */
  alpha: number;
  /** `alpha / r`, or `alpha / sqrt(r)` with rsLoRA. */
  scale: number;
}

/** Options of {@linkcode resolveLoraModules}. */
export interface ResolveLoraModulesOptions {
  /** Where the config came from, quoted in errors; default `"LoRA config"`. */
  source?: string;
}

/** Keys that name PEFT features halo does not implement: they must be absent, null or false. */
const UNSUPPORTED_KEYS: readonly string[] = [
  "use_dora",
  "lora_bias",
  "modules_to_save",
  "layer_replication",
  "target_parameters",
  "trainable_token_indices",
  "use_qalora",
  "alora_invocation_tokens",
  "megatron_config",
  "use_bdlora",
];

/** Key names in a PEFT JSON file (snake_case) and in TypeScript options (camelCase). */
const KEYS = {
  r: ["r", "r"],
  loraAlpha: ["lora_alpha", "loraAlpha"],
  targetModules: ["target_modules", "targetModules"],
  excludeModules: ["exclude_modules", "excludeModules"],
  layersToTransform: ["layers_to_transform", "layersToTransform"],
  layersPattern: ["layers_pattern", "layersPattern"],
  rankPattern: ["rank_pattern", "rankPattern"],
  alphaPattern: ["alpha_pattern", "alphaPattern"],
  useRslora: ["use_rslora", "useRslora"],
  loraDropout: ["lora_dropout", "loraDropout"],
  initLoraWeights: ["init_lora_weights", "initLoraWeights"],
  baseModelNameOrPath: ["base_model_name_or_path", "baseModelNameOrPath"],
} as const satisfies Record<keyof LoraConfig, readonly [string, string]>;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || value === false ||
    (Array.isArray(value) && value.length === 0) ||
    (isObject(value) && Object.keys(value).length === 0);
}

/** Validates one config object whose keys are spelled in `style` (0 = JSON, 1 = TypeScript). */
function validate(obj: Record<string, unknown>, source: string, style: 0 | 1): LoraConfig {
  const where = `Cannot load LoRA config "${source}"`;
  const key = (k: keyof LoraConfig) => KEYS[k][style];
  const get = (k: keyof LoraConfig) => obj[key(k)];
  const fail = (Err: typeof TypeError, k: string, what: string, value: unknown): never => {
    throw new Err(`${where}: key "${k}" must be ${what}: current value is ${show(value)}`);
  };
  const positiveInt = (k: string, v: unknown): number => {
    if (typeof v !== "number") fail(TypeError, k, "a positive integer", v);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) {
      fail(RangeError, k, "a positive integer", v);
    }
    return v as number;
  };
  const positiveNumber = (k: string, v: unknown): number => {
    if (typeof v !== "number") fail(TypeError, k, "a positive number", v);
    if (!Number.isFinite(v) || (v as number) <= 0) fail(RangeError, k, "a positive number", v);
    return v as number;
  };
  const regex = (k: string, pattern: string, anchored: string): RegExp => {
    try {
      return new RegExp(anchored);
    } catch (e) {
      throw new SyntaxError(
        `${where}: key "${k}" must be a valid regular expression: current value is ` +
          `${show(pattern)} (${(e as Error).message})`,
      );
    }
  };
  const stringList = (k: string, v: unknown, allowString: boolean): string[] | string => {
    if (allowString && typeof v === "string") {
      if (v === "") fail(RangeError, k, "a non-empty string or list of strings", v);
      if (v !== "all-linear") regex(k, v, `^(?:${v})$`);
      return v;
    }
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s !== "")) {
      fail(
        TypeError,
        k,
        allowString ? "a non-empty string or a list of non-empty strings" : "a list of strings",
        v,
      );
    }
    return [...(v as string[])];
  };
  const pattern = (k: string, v: unknown, valueCheck: (k: string, x: unknown) => number) => {
    if (v === undefined || v === null) return {};
    if (!isObject(v)) fail(TypeError, k, "an object of module pattern to number", v);
    const out: Record<string, number> = {};
    for (const [p, x] of Object.entries(v as Record<string, unknown>)) {
      regex(`${k}.${p}`, p, `^(?:.*\\.)?(?:${p})$`);
      out[p] = valueCheck(`${k}.${p}`, x);
    }
    return out;
  };

  if (style === 0) {
    const peftType = obj.peft_type;
    if (peftType !== undefined && peftType !== null && peftType !== "LORA") {
      throw new RangeError(
        `${where}: key "peft_type" must be "LORA": current value is ${show(peftType)}`,
      );
    }
    for (const k of UNSUPPORTED_KEYS) {
      if (!isEmpty(obj[k])) {
        throw new RangeError(
          `${where}: key "${k}" names a PEFT feature halo does not implement; it must be null, ` +
            `false or absent: current value is ${show(obj[k])}`,
        );
      }
    }
    const bias = obj.bias;
    if (bias !== undefined && bias !== null && bias !== "none") {
      throw new RangeError(`${where}: key "bias" must be "none": current value is ${show(bias)}`);
    }
  }

  const r = get("r") === undefined ? 8 : positiveInt(key("r"), get("r"));
  const loraAlpha = get("loraAlpha") === undefined
    ? 8
    : positiveNumber(key("loraAlpha"), get("loraAlpha"));
  const tm = get("targetModules");
  const targetModules = tm === undefined || tm === null
    ? ["q_proj", "v_proj"]
    : stringList(key("targetModules"), tm, true);
  if (Array.isArray(targetModules) && targetModules.length === 0) {
    fail(RangeError, key("targetModules"), "a non-empty list", tm);
  }
  const em = get("excludeModules");
  const excludeModules = em === undefined || em === null
    ? null
    : stringList(key("excludeModules"), em, true);
  const lt = get("layersToTransform");
  let layersToTransform: number[] | null = null;
  if (lt !== undefined && lt !== null) {
    const list = typeof lt === "number" ? [lt] : lt;
    if (
      !Array.isArray(list) || !list.every((i) => Number.isSafeInteger(i) && (i as number) >= 0)
    ) {
      fail(TypeError, key("layersToTransform"), "a layer index or a list of layer indices", lt);
    }
    layersToTransform = [...(list as number[])];
  }
  const lp = get("layersPattern");
  let layersPattern: string[] | null = null;
  if (lp !== undefined && lp !== null && !(Array.isArray(lp) && lp.length === 0)) {
    layersPattern = typeof lp === "string"
      ? [lp]
      : stringList(key("layersPattern"), lp, false) as string[];
    for (const p of layersPattern) regex(key("layersPattern"), p, `.*\\.(?:${p})\\.(\\d+)\\.`);
  }
  const rankPattern = pattern(key("rankPattern"), get("rankPattern"), positiveInt);
  const alphaPattern = pattern(key("alphaPattern"), get("alphaPattern"), positiveNumber);
  const rs = get("useRslora");
  if (rs !== undefined && typeof rs !== "boolean") {
    fail(TypeError, key("useRslora"), "a boolean", rs);
  }
  const dropout = get("loraDropout") ?? 0;
  if (typeof dropout !== "number") {
    fail(TypeError, key("loraDropout"), "a number in [0, 1)", dropout);
  }
  if (!((dropout as number) >= 0 && (dropout as number) < 1)) {
    fail(RangeError, key("loraDropout"), "a number in [0, 1)", dropout);
  }
  const init = get("initLoraWeights") ?? true;
  if (init !== true && init !== false && init !== "gaussian") {
    throw new RangeError(
      `${where}: key "${
        key("initLoraWeights")
      }" must be true, false or "gaussian" (halo does not ` +
        `implement PiSSA, OLoRA, LoftQ, EVA or CorDA initialisation): current value is ${
          show(init)
        }`,
    );
  }
  const base = get("baseModelNameOrPath") ?? null;
  if (base !== null && typeof base !== "string") {
    fail(TypeError, key("baseModelNameOrPath"), "a string or null", base);
  }
  return {
    r,
    loraAlpha,
    targetModules,
    excludeModules,
    layersToTransform,
    layersPattern,
    rankPattern,
    alphaPattern,
    useRslora: rs === true,
    loraDropout: dropout as number,
    initLoraWeights: init,
    baseModelNameOrPath: base as string | null,
  };
}

/**
 * Validates a parsed PEFT `adapter_config.json` and converts it to a {@linkcode LoraConfig}.
 * Missing keys take PEFT's defaults (`r` 8, `lora_alpha` 8, `target_modules` `["q_proj",
 * "v_proj"]` as PEFT's Qwen3 default, no dropout). Keys naming PEFT features halo does not
 * implement (DoRA, biases, `modules_to_save`, …) must be null/false/absent.
 *
 * @param json The value of `JSON.parse` on the file.
 * @param source The file path quoted in errors.
 * @returns The validated config.
 * @throws {TypeError} If a key has the wrong type.
 * @throws {RangeError} If a value is out of range or names an unsupported feature.
 * @throws {SyntaxError} If a pattern is not a valid regular expression.
 *
 * @example Parse a PEFT config
 * ```ts
 * import { parseLoraConfig } from "./lora_config.ts";
 * const cfg = parseLoraConfig({ r: 4, lora_alpha: 8, target_modules: ["q_proj"] }, "inline");
 * console.log(cfg.r, cfg.loraAlpha); // 4 8
 * ```
 */
export function parseLoraConfig(json: unknown, source: string): LoraConfig {
  if (!isObject(json)) {
    throw new TypeError(
      `Cannot load LoRA config "${source}": expected a JSON object: current value is ${show(json)}`,
    );
  }
  return validate(json, source, 0);
}

/**
 * Builds a {@linkcode LoraConfig} from TypeScript options, with PEFT's defaults for the rest and
 * the same validation as {@linkcode parseLoraConfig} (errors name the camelCase key).
 *
 * @param options The fields to set.
 * @returns The validated config.
 * @throws {TypeError} If a field has the wrong type.
 * @throws {RangeError} If a value is out of range.
 * @throws {SyntaxError} If a pattern is not a valid regular expression.
 *
 * @example Rank 8 on every attention projection, rank 16 on layer 0's q_proj
 * ```ts
 * import { loraConfig } from "./lora_config.ts";
 * const cfg = loraConfig({
 *   r: 8,
 *   loraAlpha: 16,
 *   targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"],
 *   rankPattern: { "layers.0.self_attn.q_proj": 16 },
 * });
 * console.log(cfg.rankPattern); // { "layers.0.self_attn.q_proj": 16 }
 * ```
 */
export function loraConfig(options: LoraConfigOptions = {}): LoraConfig {
  if (!isObject(options)) {
    throw new TypeError(
      `Cannot load LoRA config "options": expected an object: current value is ${show(options)}`,
    );
  }
  return validate(options as Record<string, unknown>, "options", 1);
}

/**
 * The PEFT `adapter_config.json` object of a config (what `LoraConfig.save_pretrained` writes,
 * limited to the keys halo implements plus the fixed ones PEFT needs to load it).
 *
 * @param config The config.
 * @returns A JSON-ready object with PEFT's snake_case keys.
 *
 * @example Round trip through JSON
 * ```ts
 * import { loraConfig, loraConfigToJson, parseLoraConfig } from "./lora_config.ts";
 * const cfg = loraConfig({ r: 4 });
 * const again = parseLoraConfig(loraConfigToJson(cfg), "inline");
 * console.log(again.r); // 4
 * ```
 */
export function loraConfigToJson(config: LoraConfig): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: config.baseModelNameOrPath,
    r: config.r,
    lora_alpha: config.loraAlpha,
    target_modules: typeof config.targetModules === "string"
      ? config.targetModules
      : [...config.targetModules],
    exclude_modules: config.excludeModules === null || typeof config.excludeModules === "string"
      ? config.excludeModules
      : [...config.excludeModules],
    layers_to_transform: config.layersToTransform ? [...config.layersToTransform] : null,
    layers_pattern: config.layersPattern ? [...config.layersPattern] : null,
    rank_pattern: { ...config.rankPattern },
    alpha_pattern: { ...config.alphaPattern },
    use_rslora: config.useRslora,
    lora_dropout: config.loraDropout,
    init_lora_weights: config.initLoraWeights,
    bias: "none",
    fan_in_fan_out: false,
    use_dora: false,
    modules_to_save: null,
    inference_mode: false,
  };
}

/** PEFT's `check_target_module_exists` rule for one list-or-regex key. */
function matchesModules(spec: readonly string[] | string, name: string): boolean {
  if (typeof spec === "string") {
    return spec === "all-linear" || new RegExp(`^(?:${spec})$`).test(name);
  }
  return spec.some((t) => name === t || name.endsWith(`.${t}`));
}

/** PEFT's `get_pattern_key`: the first key whose regex matches a dot-started suffix of `name`. */
function patternValue(
  pattern: Readonly<Record<string, number>>,
  name: string,
): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(name)) return value;
  }
  return undefined;
}

/** PEFT's layer-index extraction for `layers_to_transform`. */
function layerIndexOf(config: LoraConfig, name: string): number | null {
  const patterns = config.layersPattern ?? [`[^.]*`];
  for (const p of patterns) {
    const m = new RegExp(`^.*\\.(?:${p})\\.(\\d+)\\.`).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Rank, alpha and scale of one module under a config. */
export interface LoraModuleHyperparameters {
  /** Rank after `rank_pattern`. */
  r: number;
  /** Alpha after `alpha_pattern`. */
  alpha: number;
  /** `alpha / r`, or `alpha / sqrt(r)` with rsLoRA. */
  scale: number;
}

/**
 * Whether a config targets the module `name`, and with which rank and alpha, by PEFT's rules:
 * `exclude_modules` first, then `target_modules` (list: exact name or `.`-suffix; string:
 * full-name regex; `"all-linear"`), then `layers_to_transform`; rank and alpha from the first
 * matching `rank_pattern` / `alpha_pattern` key (`re.match(rf"(.*\.)?({key})$", name)`), else
 * `r` / `lora_alpha`.
 *
 * @param config The LoRA config.
 * @param name A module name such as `"model.layers.3.self_attn.q_proj"`.
 * @returns The module's hyperparameters, or null when the config does not target it.
 *
 * @example A rank pattern for one layer
 * ```ts
 * import { loraConfig, loraModuleHyperparameters } from "./lora_config.ts";
 * const cfg = loraConfig({ r: 4, loraAlpha: 8, rankPattern: { "layers.1.self_attn.q_proj": 8 } });
 * console.log(loraModuleHyperparameters(cfg, "model.layers.1.self_attn.q_proj")); // r 8, scale 1
 * console.log(loraModuleHyperparameters(cfg, "model.layers.1.self_attn.k_proj")); // null
 * ```
 */
export function loraModuleHyperparameters(
  config: LoraConfig,
  name: string,
): LoraModuleHyperparameters | null {
  if (config.excludeModules !== null && matchesModules(config.excludeModules, name)) return null;
  if (!matchesModules(config.targetModules, name)) return null;
  if (config.layersToTransform !== null) {
    const index = layerIndexOf(config, name);
    if (index === null || !config.layersToTransform.includes(index)) return null;
  }
  const r = patternValue(config.rankPattern, name) ?? config.r;
  const alpha = patternValue(config.alphaPattern, name) ?? config.loraAlpha;
  return { r, alpha, scale: config.useRslora ? alpha / Math.sqrt(r) : alpha / r };
}

/**
 * Input and output width of a projection of a Qwen3 layer.
 *
 * @param modelConfig The model.
 * @param target The projection.
 * @returns `[in, out]`.
 *
 * @example The key projection of a GQA model
 * ```ts
 * import { projectionFeatures } from "./lora_config.ts";
 * const model = { hiddenSize: 64, intermediateSize: 128, headDim: 16, numAttentionHeads: 4,
 *   numKeyValueHeads: 2 } as import("../model/config.ts").Qwen3Config;
 * console.log(projectionFeatures(model, "k_proj")); // [64, 32]
 * ```
 */
export function projectionFeatures(
  modelConfig: LoraModelShape,
  target: LoraTarget,
): [number, number] {
  const [out, inn] = projectionShape(modelConfig, target);
  return [inn, out];
}

/**
 * The HF/PEFT module name of a projection.
 *
 * @param layer Decoder layer index.
 * @param target The projection.
 * @returns E.g. `"model.layers.0.mlp.up_proj"`.
 *
 * @example Name of layer 2's o_proj
 * ```ts
 * import { loraModuleName } from "./lora_config.ts";
 * console.log(loraModuleName(2, "o_proj")); // "model.layers.2.self_attn.o_proj"
 * ```
 */
export const loraModuleName: (layer: number, target: LoraTarget) => string = projectionModuleName;

/**
 * The projections of a Qwen3 model that a config puts adapters on, in forward order (layer by
 * layer, q k v o gate up down), with PEFT's matching rules (see
 * {@linkcode loraModuleHyperparameters}).
 *
 * @param config The LoRA config.
 * @param modelConfig The model it adapts.
 * @param options Where the config came from, for errors.
 * @returns One entry per adapted projection.
 * @throws {RangeError} If a `target_modules` entry matches no projection halo can adapt (for
 * example `"lm_head"` or `"embed_tokens"`), or nothing is targeted.
 *
 * @example The fixture's seven projections per layer
 * ```ts
 * import { loraConfig, resolveLoraModules } from "./lora_config.ts";
 * const model = { numHiddenLayers: 2, hiddenSize: 64, intermediateSize: 128, headDim: 16,
 *   numAttentionHeads: 4, numKeyValueHeads: 2 } as import("../model/config.ts").Qwen3Config;
 * const mods = resolveLoraModules(loraConfig({ targetModules: "all-linear" }), model);
 * console.log(mods.length, mods[0].name); // 14 "model.layers.0.self_attn.q_proj"
 * ```
 */
export function resolveLoraModules(
  config: LoraConfig,
  modelConfig: LoraModelShape,
  options: ResolveLoraModulesOptions = {},
): ResolvedLoraModule[] {
  const source = options.source ?? "LoRA config";
  const c = modelConfig;
  const names: string[] = [];
  const out: ResolvedLoraModule[] = [];
  for (let layer = 0; layer < c.numHiddenLayers; layer++) {
    for (const target of LORA_TARGETS) {
      const name = loraModuleName(layer, target);
      names.push(name);
      const hp = loraModuleHyperparameters(config, name);
      if (hp === null) continue;
      const [inFeatures, outFeatures] = projectionFeatures(c, target);
      out.push({ name, layer, target, inFeatures, outFeatures, ...hp });
    }
  }
  const where = `Cannot apply LoRA config "${source}"`;
  if (Array.isArray(config.targetModules)) {
    for (const t of config.targetModules as readonly string[]) {
      if (!names.some((n) => n === t || n.endsWith(`.${t}`))) {
        throw new RangeError(
          `${where}: key "target_modules" entry ${show(t)} matches no projection halo can adapt ` +
            `(expected one of ${LORA_TARGETS.join(", ")}, or a module name such as ` +
            `"model.layers.0.self_attn.q_proj")`,
        );
      }
    }
  }
  if (out.length === 0) {
    throw new RangeError(
      `${where}: key "target_modules" selects no projection of the ${c.numHiddenLayers}-layer ` +
        `model: current value is ${show(config.targetModules)}`,
    );
  }
  return out;
}
