/**
 * LoRA adapters as plain data, designed for mixtures of experts: every adapted projection holds a
 * list of experts, each a low-rank pair `(A [r, in], B [out, r])` with its own rank and scale, so
 * that HILO's per-layer expert counts and ranks need no other structure. The projection computes
 * `y = x·Wᵀ + Σ_e scale_e · (x·A_eᵀ)·B_eᵀ`; plain LoRA is one expert (gate weight 1). A router
 * (later, `lora_moe.ts`) will weight the experts per token.
 *
 * @module
 */

import { mulberry32 } from "../internal/random.ts";
import {
  LORA_TARGETS,
  type LoraConfig,
  type LoraModelShape,
  loraModuleName,
  type LoraTarget,
  projectionFeatures,
  type ResolvedLoraModule,
  resolveLoraModules,
} from "./lora_config.ts";

/** One low-rank expert of an adapted projection. */
export interface LoraExpert {
  /** Down projection `A`, `[r, in]` row-major (PEFT's `lora_A.weight`). */
  a: Float32Array;
  /** Up projection `B`, `[out, r]` row-major (PEFT's `lora_B.weight`). */
  b: Float32Array;
  /** Rank. */
  r: number;
  /** Factor of the expert's output: `alpha / r` (or `alpha / sqrt(r)` with rsLoRA). */
  scale: number;
}

/** The adapter of one projection. */
export interface LoraModule {
  /** HF/PEFT module name, e.g. `"model.layers.0.self_attn.q_proj"`. */
  name: string;
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: LoraTarget;
  /** Input width of the projection. */
  inFeatures: number;
  /** Output width of the projection. */
  outFeatures: number;
  /** The experts whose outputs are summed (one for plain LoRA). */
  experts: LoraExpert[];
}

/** A set of adapters over one model: the trainable parameters. */
export interface Lora {
  /** The hyperparameters it was made or loaded with. */
  config: LoraConfig;
  /** The adapted projections in forward order. */
  modules: LoraModule[];
}

/** Options of {@linkcode createLora}. */
export interface CreateLoraOptions {
  /** Seed of the initialisation (mulberry32 stream; no `Math.random`). */
  seed: number;
  /**
   * Ranks of the experts of each projection (HILO: per-layer expert counts and ranks); default one
   * expert of the rank the config resolves. Each expert's scale is `alpha / r_e` (or
   * `alpha / sqrt(r_e)` with rsLoRA), alpha from the config.
   */
  expertRanks?: (module: ResolvedLoraModule) => readonly number[];
}

/** Options of {@linkcode checkLoraFits}. */
export interface CheckLoraFitsOptions {
  /** What the adapter is called in errors (a file path); default `"LoRA adapter"`. */
  source?: string;
}

/** Options of {@linkcode loraTensorName}. */
export interface LoraTensorNameOptions {
  /** Which matrix. */
  matrix: "A" | "B";
  /** Expert index; default 0. */
  expert?: number;
}

function uniform(n: number, bound: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * bound;
  return out;
}

function normal(n: number, std: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box–Muller; 1 − u keeps the logarithm finite.
    const u = 1 - rand();
    const v = rand();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[i] = std * rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = std * rad * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/**
 * Creates adapters for every projection a config targets, initialised as PEFT does:
 *
 * - `initLoraWeights: true` (default): A from `nn.init.kaiming_uniform_(a=√5)`, i.e. uniform in
 *   `±gain·√(3/fan_in)` with `gain = √(2/(1+a²)) = √(1/3)`, so the bound is `1/√in` (A's fan-in
 *   is its column count `in`); B zero, so the adapted model starts equal to the base model.
 * - `"gaussian"`: A normal with std `1/r`, B zero.
 * - `false`: A and B as `nn.Linear` initialises them (bounds `1/√in` and `1/√r`).
 *
 * The numbers come from one mulberry32 stream seeded with `options.seed`, drawn module by module
 * in forward order, expert by expert, A before B; the same seed gives the same adapters.
 *
 * @param config The LoRA config.
 * @param modelConfig The model the adapters are for.
 * @param options Seed and optional per-projection expert ranks.
 * @returns The adapters.
 * @throws {RangeError} If the config targets nothing or the expert ranks are not positive
 * integers.
 *
 * @example Rank-4 adapters on q and v of the fixture model
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { loraConfig } from "./lora_config.ts";
 * import { createLora, loraParameterCount } from "./lora.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const lora = createLora(loraConfig({ r: 4, targetModules: ["q_proj", "v_proj"] }), model, {
 *   seed: 0,
 * });
 * console.log(lora.modules.length, loraParameterCount(lora)); // 4 1792
 * ```
 */
export function createLora(
  config: LoraConfig,
  modelConfig: LoraModelShape,
  options: CreateLoraOptions,
): Lora {
  if (!Number.isSafeInteger(options.seed)) {
    throw new RangeError(
      `Cannot create LoRA adapters: option "seed" must be an integer: current value is ` +
        `${options.seed}`,
    );
  }
  const rand = mulberry32(options.seed);
  const modules: LoraModule[] = resolveLoraModules(config, modelConfig).map((m) => {
    const ranks = options.expertRanks ? options.expertRanks(m) : [m.r];
    if (!Array.isArray(ranks) || ranks.length === 0) {
      throw new RangeError(
        `Cannot create LoRA adapters: expertRanks("${m.name}") must be a non-empty list of ` +
          `ranks: current value is ${JSON.stringify(ranks)}`,
      );
    }
    const experts = ranks.map((r): LoraExpert => {
      if (!Number.isSafeInteger(r) || r <= 0) {
        throw new RangeError(
          `Cannot create LoRA adapters: expertRanks("${m.name}") must hold positive integers: ` +
            `current value is ${JSON.stringify(ranks)}`,
        );
      }
      let a: Float32Array;
      let b: Float32Array;
      if (config.initLoraWeights === "gaussian") {
        a = normal(r * m.inFeatures, 1 / r, rand);
        b = new Float32Array(m.outFeatures * r);
      } else {
        a = uniform(r * m.inFeatures, 1 / Math.sqrt(m.inFeatures), rand);
        b = config.initLoraWeights
          ? new Float32Array(m.outFeatures * r)
          : uniform(m.outFeatures * r, 1 / Math.sqrt(r), rand);
      }
      const scale = config.useRslora ? m.alpha / Math.sqrt(r) : m.alpha / r;
      return { a, b, r, scale };
    });
    return {
      name: m.name,
      layer: m.layer,
      target: m.target,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      experts,
    };
  });
  return { config, modules };
}

/**
 * Number of trainable parameters: `Σ r·(in + out)` over every expert of every module.
 *
 * @param lora The adapters.
 * @returns The parameter count.
 *
 * @example One rank-2 expert on a 3 → 5 projection
 * ```ts
 * import { loraParameterCount, type Lora } from "./lora.ts";
 * const lora = { modules: [{ experts: [{ a: new Float32Array(6), b: new Float32Array(10) }] }] };
 * console.log(loraParameterCount(lora as unknown as Lora)); // 16
 * ```
 */
export function loraParameterCount(lora: Lora): number {
  let n = 0;
  for (const m of lora.modules) {
    for (const e of m.experts) n += e.a.length + e.b.length;
  }
  return n;
}

/**
 * The name of one LoRA matrix, without PEFT's `base_model.model.` prefix: for a one-expert module
 * PEFT's own name (`model.layers.0.self_attn.q_proj.lora_A.weight`, as in the fixture's `grad.*`
 * tensors); for a module with several experts `…q_proj.experts.E.lora_A.weight`.
 *
 * @param module The module (its name and expert count).
 * @param options Which matrix and expert.
 * @returns The tensor name.
 *
 * @example PEFT's name of a q_proj A matrix
 * ```ts
 * import { loraTensorName } from "./lora.ts";
 * const m = { name: "model.layers.0.self_attn.q_proj", experts: [{}] };
 * console.log(loraTensorName(m, { matrix: "A" })); // "model.layers.0.self_attn.q_proj.lora_A.weight"
 * ```
 */
export function loraTensorName(
  module: { name: string; experts: readonly unknown[] },
  options: LoraTensorNameOptions,
): string {
  const e = options.expert ?? 0;
  return module.experts.length === 1
    ? `${module.name}.lora_${options.matrix}.weight`
    : `${module.name}.experts.${e}.lora_${options.matrix}.weight`;
}

/**
 * Checks that adapters fit a model: every module names a projection of an existing layer, its
 * widths are the projection's, each expert's rank is a positive integer, `A` holds `r·in` and `B`
 * `out·r` values, scales are finite, and no projection appears twice.
 *
 * @param lora The adapters.
 * @param modelConfig The model.
 * @param options The adapter's name in errors.
 * @throws {RangeError} Naming the module (and expert) that does not fit, the expected and the
 * current value.
 *
 * @example Adapters made for the model fit it
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { loraConfig } from "./lora_config.ts";
 * import { checkLoraFits, createLora } from "./lora.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * checkLoraFits(createLora(loraConfig(), model, { seed: 1 }), model); // no error
 * ```
 */
export function checkLoraFits(
  lora: Lora,
  modelConfig: LoraModelShape,
  options: CheckLoraFitsOptions = {},
): void {
  const where = `Cannot use LoRA adapter "${options.source ?? "LoRA adapter"}"`;
  const c = modelConfig;
  const seen = new Set<string>();
  for (const m of lora.modules) {
    if (
      !LORA_TARGETS.includes(m.target) || !Number.isSafeInteger(m.layer) || m.layer < 0 ||
      m.name !== loraModuleName(m.layer, m.target)
    ) {
      throw new RangeError(
        `${where}: module "${m.name}" (layer ${m.layer}, target "${m.target}") is not a ` +
          `projection halo can adapt: expected "model.layers.N.self_attn.{q,k,v,o}_proj" or ` +
          `"model.layers.N.mlp.{gate,up,down}_proj"`,
      );
    }
    if (m.layer >= c.numHiddenLayers) {
      throw new RangeError(
        `${where}: module "${m.name}" is in layer ${m.layer}, but the model has ` +
          `${c.numHiddenLayers} layers`,
      );
    }
    if (seen.has(m.name)) {
      throw new RangeError(`${where}: module "${m.name}" appears twice`);
    }
    seen.add(m.name);
    const [inF, outF] = projectionFeatures(c, m.target);
    if (m.inFeatures !== inF || m.outFeatures !== outF) {
      throw new RangeError(
        `${where}: module "${m.name}" must map ${inF} → ${outF} features: current value is ` +
          `${m.inFeatures} → ${m.outFeatures}`,
      );
    }
    if (m.experts.length === 0) {
      throw new RangeError(`${where}: module "${m.name}" has no experts`);
    }
    m.experts.forEach((e, i) => {
      const what = `${where}: module "${m.name}" expert ${i}`;
      if (!Number.isSafeInteger(e.r) || e.r <= 0) {
        throw new RangeError(`${what}: rank must be a positive integer: current value is ${e.r}`);
      }
      if (!(e.a instanceof Float32Array) || e.a.length !== e.r * inF) {
        throw new RangeError(
          `${what}: A must be a Float32Array of shape [${e.r}, ${inF}] (${e.r * inF} values): ` +
            `current length is ${e.a?.length}`,
        );
      }
      if (!(e.b instanceof Float32Array) || e.b.length !== outF * e.r) {
        throw new RangeError(
          `${what}: B must be a Float32Array of shape [${outF}, ${e.r}] (${outF * e.r} values): ` +
            `current length is ${e.b?.length}`,
        );
      }
      if (!Number.isFinite(e.scale)) {
        throw new RangeError(`${what}: scale must be finite: current value is ${e.scale}`);
      }
    });
  }
}
