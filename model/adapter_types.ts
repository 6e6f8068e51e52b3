/**
 * The data a model needs to run LoRA adapters (the per-projection list of low-rank experts: A, B,
 * rank, scale; the dropout in the config), their tensor names and the check that they fit a
 * model. These live in `model/` so that the backends apply adapters without importing
 * `adapters/`; `adapters/lora.ts` re-exports them under the same names and builds, loads and saves
 * them.
 *
 * @example A one-expert adapter on layer 0's q_proj
 * ```ts
 * import { loraTensorName, type LoraModule } from "./adapter_types.ts";
 * const m: LoraModule = {
 *   name: "model.layers.0.self_attn.q_proj", layer: 0, target: "q_proj", inFeatures: 4,
 *   outFeatures: 4, experts: [{ a: new Float32Array(8), b: new Float32Array(8), r: 2, scale: 1 }],
 * };
 * console.log(loraTensorName(m, { matrix: "B" })); // "model.layers.0.self_attn.q_proj.lora_B.weight"
 * ```
 *
 * @module
 */
import type { Qwen3Config } from "./config.ts";
import {
  LAYER_TENSORS,
  projectionModuleName,
  type ProjectionName,
  PROJECTIONS,
  type TensorTableConfig,
} from "./tensor_table.ts";

/** Validated LoRA hyperparameters (PEFT's `LoraConfig`, the fields halo implements). */
export interface LoraConfig {
  /** Default rank (`r`). */
  r: number;
  /** Default alpha (`lora_alpha`); the scale is `alpha / r`, or `alpha / sqrt(r)` with rsLoRA. */
  loraAlpha: number;
  /**
   * `target_modules`: a list of module-name suffixes (`"q_proj"` matches
   * `model.layers.3.self_attn.q_proj`; a full name matches itself), a regular expression matched
   * against the whole module name, or `"all-linear"` (every projection, as PEFT for Qwen3).
   */
  targetModules: readonly string[] | string;
  /** `exclude_modules`, with the same matching rule as `targetModules`; null for none. */
  excludeModules: readonly string[] | string | null;
  /** `layers_to_transform`: only these layer indices carry adapters; null for all. */
  layersToTransform: readonly number[] | null;
  /** `layers_pattern`: names of the layer list used to find the layer index; null for any. */
  layersPattern: readonly string[] | null;
  /**
   * `rank_pattern`: rank per module, keyed by a regular expression matched against a suffix of
   * the module name that starts after a dot (PEFT's `re.match(rf"(.*\.)?({key})$", name)`); the
   * first key in insertion order that matches wins.
   */
  rankPattern: Readonly<Record<string, number>>;
  /** `alpha_pattern`: alpha per module, matched like `rankPattern`. */
  alphaPattern: Readonly<Record<string, number>>;
  /** `use_rslora`: scale by `alpha / sqrt(r)` instead of `alpha / r`. */
  useRslora: boolean;
  /**
   * `lora_dropout`: probability of zeroing an input element of the LoRA branch; applied only in
   * training mode with a seeded RNG, never in `forward`.
   */
  loraDropout: number;
  /**
   * `init_lora_weights` for new adapters: `true` (A Kaiming-uniform, B zero), `"gaussian"`
   * (A normal with std `1/r`, B zero) or `false` (A and B as `nn.Linear` initialises them).
   */
  initLoraWeights: boolean | "gaussian";
  /** `base_model_name_or_path`, carried into saved configs; null when unknown. */
  baseModelNameOrPath: string | null;
}

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

/** Activation rule of a HILO router: a fixed number of experts, or a probability mass. */
export type HiloActivation = "top-k" | "top-p";

/**
 * The router of a projection whose experts form a mixture (HILO / MoLA): per token
 * `p = softmax(W_r·x)` on the un-dropped input, the selected experts S (top-k or top-p), and the
 * expert outputs weighted by `g_e = p_e / Σ_{j∈S} p_j` (see `kernels/moe_route/moe_route_ref.ts`).
 */
export interface LoraRouter {
  /** `W_r` `[E, in]` row-major, without bias (E = the module's expert count). */
  weight: Float32Array;
  /** `"top-k"` or `"top-p"`. */
  activation: HiloActivation;
  /** k of top-k, in `[1, E]` (kept with top-p too, for the saved config). */
  topK: number;
  /** Threshold of top-p, in `(0, 1]`. */
  topP: number;
}

/** One decoder layer's HILO allocation (an entry of `adapter_config.json`'s `"layers"`). */
export interface HiloLayerSpec {
  /** Expert count E_l (1 = plain LoRA, no router). */
  experts: number;
  /** Rank r_l of every expert of the layer. */
  rank: number;
  /** α_l: each expert's output is scaled by `α_l / r_l`. */
  alpha: number;
  /** k_l of top-k routing. */
  topK: number;
}

/** The HILO hyperparameters of a set of adapters (absent for PEFT LoRA). */
export interface HiloSettings {
  /** `"top-k"` or `"top-p"` routing. */
  activation: HiloActivation;
  /** Threshold of top-p routing. */
  topP: number;
  /**
   * Coefficient of the load-balancing loss: `E · Σ_e f_e·P_e` per routed projection (its own
   * router; `f_e` tokens routed to e over tokens, `P_e` mean router probability) over the tokens
   * of one micro-batch, summed over projections and layers; a step's term is the mean over its
   * micro-batches (see `kernels/moe_route/moe_balance_ref.ts`). Default 0.
   */
  balanceCoef: number;
  /** One entry per decoder layer. */
  layers: HiloLayerSpec[];
}

/** The adapter of one projection. */
export interface LoraModule {
  /** HF/PEFT module name, e.g. `"model.layers.0.self_attn.q_proj"`. */
  name: string;
  /** Decoder layer index. */
  layer: number;
  /** Which projection. */
  target: ProjectionName;
  /** Input width of the projection. */
  inFeatures: number;
  /** Output width of the projection. */
  outFeatures: number;
  /** The experts whose outputs are summed (one for plain LoRA). */
  experts: LoraExpert[];
  /**
   * The router that gates the experts per token (HILO); absent: every expert's output is added
   * with weight 1 (plain LoRA, or a fixed sum of experts).
   */
  router?: LoraRouter;
}

/** A set of adapters over one model: the trainable parameters. */
export interface Lora {
  /** The hyperparameters it was made or loaded with. */
  config: LoraConfig;
  /** The adapted projections in forward order. */
  modules: LoraModule[];
  /** HILO's routing and allocation; absent for PEFT LoRA. */
  hilo?: HiloSettings;
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
 * import { loraTensorName } from "./adapter_types.ts";
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
 * The name of a module's router weight, without PEFT's `base_model.model.` prefix:
 * `<module>.router.weight` (the gradient's name in `cpuBackward`, the tensor's in a HILO file).
 *
 * @param module The module.
 * @returns The tensor name.
 *
 * @example The router of layer 1's up projection
 * ```ts
 * import { routerTensorName } from "./adapter_types.ts";
 * console.log(routerTensorName({ name: "model.layers.1.mlp.up_proj" }));
 * // "model.layers.1.mlp.up_proj.router.weight"
 * ```
 */
export function routerTensorName(module: { name: string }): string {
  return `${module.name}.router.weight`;
}

/**
 * The weight shape `[out, in]` of a projection, from the tensor table.
 *
 * @param config The model's config.
 * @param projection The projection.
 * @returns `[out, in]`.
 *
 * @example The key projection of a GQA model
 * ```ts
 * import { projectionShape } from "./adapter_types.ts";
 * const config = { vocabSize: 16, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1,
 *   numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, tieWordEmbeddings: true };
 * console.log(projectionShape(config, "k_proj")); // [32, 64]
 * ```
 */
export function projectionShape(
  config: TensorTableConfig,
  projection: ProjectionName,
): [number, number] {
  const spec = LAYER_TENSORS.find((t) => t.projection === projection);
  if (spec === undefined) {
    throw new RangeError(
      `Cannot find the shape of a projection: expected one of ${PROJECTIONS.join(", ")}: ` +
        `current value is ${JSON.stringify(projection)}`,
    );
  }
  const [out, inn] = spec.shape(config);
  return [out, inn];
}

/**
 * Checks that adapters fit a model: every module names a projection of an existing layer, its
 * widths are the projection's, each expert's rank is a positive integer, `A` holds `r·in` and `B`
 * `out·r` values, scales are finite, no projection appears twice, and a router (if any) is
 * `[E, in]` with `1 ≤ topK ≤ E` and `0 < topP ≤ 1`.
 *
 * @param lora The adapters.
 * @param modelConfig The model.
 * @param options The adapter's name in errors.
 * @throws {RangeError} Naming the module (and expert) that does not fit, the expected and the
 * current value.
 *
 * @example Adapters made for the model fit it
 * ```ts
 * import { readQwen3Config } from "./config.ts";
 * import { checkLoraFits } from "./adapter_types.ts";
 * import { loraConfig } from "../adapters/lora_config.ts";
 * import { createLora } from "../adapters/lora.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * checkLoraFits(createLora(loraConfig(), model, { seed: 1 }), model); // no error
 * ```
 */
export function checkLoraFits(
  lora: Lora,
  modelConfig: Qwen3Config,
  options: CheckLoraFitsOptions = {},
): void {
  const where = `Cannot use LoRA adapter "${options.source ?? "LoRA adapter"}"`;
  const c = modelConfig;
  const seen = new Set<string>();
  for (const m of lora.modules) {
    if (
      !PROJECTIONS.includes(m.target) || !Number.isSafeInteger(m.layer) || m.layer < 0 ||
      m.name !== projectionModuleName(m.layer, m.target)
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
    const [outF, inF] = projectionShape(c, m.target);
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
    const rt = m.router;
    if (rt !== undefined) {
      const E = m.experts.length;
      const what = `${where}: module "${m.name}" router`;
      if (!(rt.weight instanceof Float32Array) || rt.weight.length !== E * inF) {
        throw new RangeError(
          `${what}: weight must be a Float32Array of shape [${E}, ${inF}] (${E * inF} values): ` +
            `current length is ${rt.weight?.length}`,
        );
      }
      if (rt.activation !== "top-k" && rt.activation !== "top-p") {
        throw new RangeError(
          `${what}: activation must be "top-k" or "top-p": current value is ` +
            `${JSON.stringify(rt.activation)}`,
        );
      }
      if (!Number.isSafeInteger(rt.topK) || rt.topK < 1 || rt.topK > E) {
        throw new RangeError(
          `${what}: topK must be an integer in [1, ${E}]: current value is ${rt.topK}`,
        );
      }
      if (!(rt.topP > 0 && rt.topP <= 1)) {
        throw new RangeError(`${what}: topP must be in (0, 1]: current value is ${rt.topP}`);
      }
    }
  }
}
