/**
 * LoRA adapters as plain data, designed for mixtures of experts: every adapted projection holds a
 * list of experts, each a low-rank pair `(A [r, in], B [out, r])` with its own rank and scale, so
 * that HILO's per-layer expert counts and ranks need no other structure. The projection computes
 * `y = x·Wᵀ + Σ_e scale_e · (x·A_eᵀ)·B_eᵀ`; plain LoRA is one expert (gate weight 1). HILO's
 * router (`hilo.ts`) weights the experts per token.
 *
 * @module
 */

import { mulberry32 } from "../internal/random.ts";
import type { Lora, LoraExpert, LoraModule } from "../model/adapter_types.ts";
import {
  type LoraConfig,
  type LoraModelShape,
  type ResolvedLoraModule,
  resolveLoraModules,
} from "./lora_config.ts";

// The adapter data types, their tensor names and the fit check live in model/ (the backends apply
// adapters without importing adapters/); re-exported here under their names.
export { checkLoraFits, loraTensorName } from "../model/adapter_types.ts";
export type {
  CheckLoraFitsOptions,
  Lora,
  LoraExpert,
  LoraModule,
  LoraTensorNameOptions,
} from "../model/adapter_types.ts";

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
