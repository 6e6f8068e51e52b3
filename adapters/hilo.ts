/**
 * HILO adapters (arXiv 2502.03884, following the MoLA code its baselines share): on every adapted
 * projection of decoder layer l, E_l LoRA experts of rank r_l and, when E_l > 1, a router
 * `W_r [E_l, in]` whose softmax picks the top-k (or top-p) experts per token and weights them by
 * their renormalised probabilities:
 *
 * `y = W0·x + Σ_{e∈S} g_e · (α_l / r_l) · B_e·A_e·dropout(x)`, `g_e = p_e / Σ_{j∈S} p_j`,
 * `p = softmax(W_r·x)`.
 *
 * E_l = 1 has no router and is plain LoRA. This file builds the config from per-layer schedules
 * ({@linkcode hiloConfig}), creates initialised adapters ({@linkcode createHilo}) and counts their
 * trainable and active parameters ({@linkcode hiloParameterCounts}).
 *
 * @module
 */
import { mulberry32 } from "../internal/random.ts";
import type {
  HiloActivation,
  HiloLayerSpec,
  HiloSettings,
  Lora,
  LoraConfig,
  LoraModule,
} from "../model/adapter_types.ts";
import { type LayerSchedule, parseLayerSchedule } from "./hilo_schedule.ts";
import { loraConfig, type LoraModelShape, resolveLoraModules } from "./lora_config.ts";

/** A complete HILO configuration: what `adapter_config.json` of a HILO directory holds. */
export interface HiloConfig extends HiloSettings {
  /** `target_modules` with PEFT's matching rules (`"all-linear"`, suffixes, or a regex). */
  targetModules: readonly string[] | string;
  /** Dropout on the experts' input (never on the router's), training mode only. */
  loraDropout: number;
  /** `base_model_name_or_path`; null when unknown. */
  baseModelNameOrPath: string | null;
}

/** Options of {@linkcode hiloConfig}. */
export interface HiloConfigOptions {
  /** Experts per layer (see `parseLayerSchedule`); default `"uniform:4"`. */
  experts?: LayerSchedule;
  /** Rank per layer; default `"uniform:8"`. */
  rank?: LayerSchedule;
  /**
   * α per layer: a number (fixed for every layer, default 16) or `{ perRank: c }` for
   * `α_l = c·r_l` (every layer then has the scale `c`).
   */
  alpha?: number | { perRank: number };
  /** k of top-k per layer; default `min(2, E_l)`. */
  topK?: LayerSchedule;
  /** `"top-k"` (default) or `"top-p"`. */
  activation?: HiloActivation;
  /** Threshold of top-p activation; default 0.8. */
  topP?: number;
  /**
   * Load-balancing loss coefficient (`E · Σ_e f_e·P_e` per routed projection, summed; see
   * `kernels/moe_route/moe_balance_ref.ts`); default 0 (as MoLA's code).
   */
  balanceCoef?: number;
  /** Projections to adapt; default `"all-linear"`. */
  targetModules?: readonly string[] | string;
  /** Dropout on the experts' input; default 0. */
  loraDropout?: number;
  /** Base model name stored in the saved config; default null. */
  baseModelNameOrPath?: string | null;
  /**
   * The config key each option came from, named in errors in place of the option (e.g.
   * `{ rank: "adapters.hilo.rank" }`); default none.
   */
  keys?: HiloOptionKeys;
}

/**
 * The config keys of {@linkcode hiloConfig}'s options, named in its errors.
 *
 * @example The keys of a run config's `adapters.hilo` section
 * ```ts
 * import type { HiloOptionKeys } from "./hilo.ts";
 *
 * const keys: HiloOptionKeys = { experts: "adapters.hilo.experts", topK: "adapters.hilo.topK" };
 * ```
 */
export type HiloOptionKeys = Partial<
  Record<
    "experts" | "rank" | "alpha" | "topK" | "activation" | "topP" | "balanceCoef" | "loraDropout",
    string
  >
>;

/**
 * Builds and checks a HILO config for a model from per-layer schedules.
 *
 * @param modelConfig The model (its layer count).
 * @param options Schedules and routing options.
 * @returns The config, with one `layers` entry per decoder layer.
 * @throws {RangeError} If a schedule is malformed, a top-k exceeds its layer's expert count, or a
 * number is out of range; the message names the option.
 *
 * @example Experts "8-6-4-2" and ranks "2-4-6-8" on a 4-layer model
 * ```ts
 * import { hiloConfig } from "./hilo.ts";
 * const cfg = hiloConfig({ numHiddenLayers: 4 }, { experts: "8-6-4-2", rank: "2-4-6-8" });
 * console.log(cfg.layers[3]); // { experts: 2, rank: 8, alpha: 16, topK: 2 }
 * ```
 */
export function hiloConfig(
  modelConfig: { numHiddenLayers: number },
  options: HiloConfigOptions = {},
): HiloConfig {
  const L = modelConfig.numHiddenLayers;
  const where = "Cannot build a HILO config";
  const keys = options.keys ?? {};
  const name = (option: keyof HiloOptionKeys): string =>
    keys[option] === undefined ? `option "${option}"` : `key "${keys[option]}"`;
  const schedule = (option: "experts" | "rank" | "topK", value: LayerSchedule): number[] =>
    parseLayerSchedule(value, L, { name: option, key: keys[option] });
  const experts = schedule("experts", options.experts ?? "uniform:4");
  const rank = schedule("rank", options.rank ?? "uniform:8");
  const topK = options.topK === undefined
    ? experts.map((e) => Math.min(2, e))
    : schedule("topK", options.topK);
  const alphaOption = options.alpha ?? 16;
  const alphaOf = (r: number): number =>
    typeof alphaOption === "number" ? alphaOption : alphaOption.perRank * r;
  const layers: HiloLayerSpec[] = experts.map((E, l) => {
    if (topK[l] > E) {
      throw new RangeError(
        `${where}: ${name("topK")} of layer ${l} must be at most its expert count ${E} ` +
          `(${name("experts")}): current value is ${topK[l]}`,
      );
    }
    const alpha = alphaOf(rank[l]);
    if (!(Number.isFinite(alpha) && alpha > 0)) {
      throw new RangeError(
        `${where}: ${name("alpha")} must give a positive finite α: current value is ` +
          `${JSON.stringify(alphaOption)}`,
      );
    }
    return { experts: E, rank: rank[l], alpha, topK: topK[l] };
  });
  const activation = options.activation ?? "top-k";
  if (activation !== "top-k" && activation !== "top-p") {
    throw new RangeError(
      `${where}: ${name("activation")} must be "top-k" or "top-p": current value is ` +
        `${JSON.stringify(activation)}`,
    );
  }
  const topP = options.topP ?? 0.8;
  if (!(topP > 0 && topP <= 1)) {
    throw new RangeError(`${where}: ${name("topP")} must be in (0, 1]: current value is ${topP}`);
  }
  const balanceCoef = options.balanceCoef ?? 0;
  if (!(Number.isFinite(balanceCoef) && balanceCoef >= 0)) {
    const what = `${where}: ${name("balanceCoef")}`;
    throw new RangeError(`${what} must be a finite number ≥ 0: current value is ${balanceCoef}`);
  }
  const loraDropout = options.loraDropout ?? 0;
  if (!(loraDropout >= 0 && loraDropout < 1)) {
    throw new RangeError(
      `${where}: ${name("loraDropout")} must be in [0, 1): current value is ${loraDropout}`,
    );
  }
  return {
    activation,
    topP,
    balanceCoef,
    layers,
    targetModules: options.targetModules ?? "all-linear",
    loraDropout,
    baseModelNameOrPath: options.baseModelNameOrPath ?? null,
  };
}

/** Options of {@linkcode createHilo}. */
export interface CreateHiloOptions {
  /** Seed of the initialisation (one mulberry32 stream). */
  seed: number;
}

/**
 * The adapted projections of a HILO config: PEFT's target matching, with each layer's experts,
 * rank and α. Exposed for loading and saving.
 *
 * @param config The HILO config.
 * @param modelConfig The model.
 * @returns Per adapted projection its name, layer, target, widths and layer spec.
 * @throws {RangeError} If `layers` does not have one entry per decoder layer, or the targets
 * select nothing.
 *
 * @example The fixture's 14 projections
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { hiloConfig, hiloModules } from "./hilo.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * console.log(hiloModules(hiloConfig(model), model).length); // 14
 * ```
 */
export function hiloModules(
  config: HiloConfig,
  modelConfig: LoraModelShape,
): (Omit<LoraModule, "experts" | "router"> & { spec: HiloLayerSpec })[] {
  if (config.layers.length !== modelConfig.numHiddenLayers) {
    throw new RangeError(
      `Cannot apply a HILO config: "layers" must have one entry per decoder layer ` +
        `(${modelConfig.numHiddenLayers}): current length is ${config.layers.length}`,
    );
  }
  return resolveLoraModules(toLoraConfig(config), modelConfig, { source: "HILO config" }).map(
    (m) => ({
      name: m.name,
      layer: m.layer,
      target: m.target,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      spec: config.layers[m.layer],
    }),
  );
}

/**
 * The PEFT-style config that `Lora.config` carries for HILO adapters: the targets, dropout and base
 * model name (its `r` and `loraAlpha` are layer 0's and only informative; each module's experts
 * hold their own rank and scale).
 *
 * @param config The HILO config.
 * @returns A LoRA config.
 *
 * @example Dropout carries over
 * ```ts
 * import { hiloConfig, toLoraConfig } from "./hilo.ts";
 * console.log(toLoraConfig(hiloConfig({ numHiddenLayers: 2 }, { loraDropout: 0.1 })).loraDropout);
 * // 0.1
 * ```
 */
export function toLoraConfig(config: HiloConfig): LoraConfig {
  return loraConfig({
    r: config.layers[0]?.rank ?? 8,
    loraAlpha: config.layers[0]?.alpha ?? 8,
    targetModules: config.targetModules,
    loraDropout: config.loraDropout,
    baseModelNameOrPath: config.baseModelNameOrPath,
  });
}

/**
 * Creates HILO adapters initialised as MoLA does: A Kaiming-uniform with a = √5 (uniform in
 * `±1/√in`), B zero (the adapted model starts equal to the base model), the router
 * Kaiming-uniform (`±1/√in`). Numbers come from one mulberry32 stream, module by module in
 * forward order, each module's experts' A matrices first, then its router.
 *
 * @param config The HILO config.
 * @param modelConfig The model.
 * @param options The seed.
 * @returns The adapters (`lora.hilo` holds the routing settings).
 * @throws {RangeError} If the seed is not an integer or the config does not fit the model.
 *
 * @example Random HILO adapters on the fixture model
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { createHilo, hiloConfig } from "./hilo.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const lora = createHilo(hiloConfig(model, { experts: "2-4", rank: "4-2" }), model, { seed: 0 });
 * console.log(lora.modules[7].experts.length, lora.modules[7].router?.weight.length); // 4 256
 * ```
 */
export function createHilo(
  config: HiloConfig,
  modelConfig: LoraModelShape,
  options: CreateHiloOptions,
): Lora {
  if (!Number.isSafeInteger(options.seed)) {
    throw new RangeError(
      `Cannot create HILO adapters: option "seed" must be an integer: current value is ` +
        `${options.seed}`,
    );
  }
  const rand = mulberry32(options.seed);
  const uniform = (n: number, bound: number): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * bound;
    return out;
  };
  const modules: LoraModule[] = hiloModules(config, modelConfig).map(({ spec, ...m }) => {
    const bound = 1 / Math.sqrt(m.inFeatures);
    const experts = Array.from({ length: spec.experts }, () => ({
      a: uniform(spec.rank * m.inFeatures, bound),
      b: new Float32Array(m.outFeatures * spec.rank),
      r: spec.rank,
      scale: spec.alpha / spec.rank,
    }));
    const module: LoraModule = { ...m, experts };
    if (spec.experts > 1) {
      module.router = {
        weight: uniform(spec.experts * m.inFeatures, bound),
        activation: config.activation,
        topK: spec.topK,
        topP: config.topP,
      };
    }
    return module;
  });
  return { config: toLoraConfig(config), modules, hilo: hiloSettings(config) };
}

/** The routing settings of a config (a copy). */
function hiloSettings(config: HiloConfig): HiloSettings {
  return {
    activation: config.activation,
    topP: config.topP,
    balanceCoef: config.balanceCoef,
    layers: config.layers.map((l) => ({ ...l })),
  };
}

/** Result of {@linkcode hiloParameterCounts}. */
export interface HiloParameterCounts {
  /** Every trainable value: experts' A and B, routers. */
  trainable: number;
  /**
   * Values a token uses: every router, and per routed projection the k experts it selects (with
   * top-p activation, all E experts: the upper bound, as the count varies by token).
   */
  activePerToken: number;
}

/**
 * Trainable and active-per-token parameter counts of adapters, summed over modules:
 * trainable `E·r·(in + out) + [E > 1]·E·in`, active `k·r·(in + out) + [E > 1]·E·in` (k = E for
 * top-p, and for a module without a router).
 *
 * @param lora The adapters.
 * @returns The two counts.
 *
 * @example Two rank-4 experts plus router on one 64 → 64 projection, top-1
 * ```ts
 * import { hiloParameterCounts } from "./hilo.ts";
 * const e = { a: new Float32Array(256), b: new Float32Array(256), r: 4, scale: 1 };
 * const lora = { modules: [{ inFeatures: 64, outFeatures: 64, experts: [e, e],
 *   router: { weight: new Float32Array(128), activation: "top-k", topK: 1, topP: 1 } }] };
 * console.log(hiloParameterCounts(lora as never)); // { trainable: 1152, activePerToken: 640 }
 * ```
 */
export function hiloParameterCounts(lora: Lora): HiloParameterCounts {
  let trainable = 0;
  let activePerToken = 0;
  for (const m of lora.modules) {
    const sizes = m.experts.map((e) => e.a.length + e.b.length);
    const all = sizes.reduce((a, b) => a + b, 0);
    trainable += all;
    if (!m.router) {
      activePerToken += all;
      continue;
    }
    trainable += m.router.weight.length;
    activePerToken += m.router.weight.length;
    if (m.router.activation === "top-p") {
      activePerToken += all;
    } else {
      // Experts of one module share a rank in HILO; with mixed ranks count the k largest.
      activePerToken += sizes.sort((a, b) => b - a).slice(0, m.router.topK).reduce(
        (a, b) => a + b,
        0,
      );
    }
  }
  return { trainable, activePerToken };
}

/**
 * A start-up summary of HILO adapters: the per-layer allocation and the trainable and
 * active-per-token parameter counts of {@linkcode hiloParameterCounts}.
 *
 * @param lora The adapters (with `hilo` set; plain LoRA gives the counts only).
 * @returns Lines to print.
 *
 * @example Describe new adapters
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { createHilo, describeHilo, hiloConfig } from "./hilo.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const lora = createHilo(hiloConfig(model, { experts: "2-4", rank: "4-8" }), model, { seed: 0 });
 * console.log(describeHilo(lora).join("\n"));
 * ```
 */
export function describeHilo(lora: Lora): string[] {
  const { trainable, activePerToken } = hiloParameterCounts(lora);
  const lines: string[] = [];
  if (lora.hilo) {
    const h = lora.hilo;
    lines.push(
      `HILO: ${h.activation}${h.activation === "top-p" ? ` ${h.topP}` : ""}, balance ` +
        `coefficient ${h.balanceCoef}, ${lora.modules.length} adapted projections`,
    );
    h.layers.forEach((l, i) => {
      lines.push(
        `  layer ${i}: ${l.experts} experts of rank ${l.rank}, alpha ${l.alpha}, top-${l.topK}`,
      );
    });
  }
  lines.push(`trainable parameters ${trainable}, active per token ${activePerToken}`);
  return lines;
}
