/**
 * The one table of a Qwen3 model's parameter tensors (llm.c's `ParameterTensors`): for every
 * tensor, its HuggingFace name, its shape from the config and the field of
 * {@linkcode Qwen3Weights} / {@linkcode Qwen3LayerWeights} it fills. Loading, the weights structs
 * of every backend, gradients, trainable-parameter trees and checkpoint names all read their names
 * and shapes from here instead of spelling them out.
 *
 * @example The tensors of a one-layer model
 * ```ts
 * import { modelTensorTable } from "./tensor_table.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, tieWordEmbeddings: true,
 * };
 * const table = modelTensorTable(config);
 * strictEqual(table.length, 13);
 * strictEqual(table[2].name, "model.layers.0.self_attn.q_proj.weight");
 * ```
 *
 * @module
 */

import type { Qwen3Config } from "./config.ts";
import type { Qwen3LayerWeights, Qwen3Weights } from "./weights.ts";

/** The linear projections of a Qwen3 decoder layer (PEFT module names), in forward order. */
export type ProjectionName =
  | "q_proj"
  | "k_proj"
  | "v_proj"
  | "o_proj"
  | "gate_proj"
  | "up_proj"
  | "down_proj";

/**
 * Every {@linkcode ProjectionName}, in the order the forward pass runs them.
 *
 * @example Usage
 * ```ts
 * import { PROJECTIONS } from "./tensor_table.ts";
 * console.log(PROJECTIONS.length); // 7
 * ```
 */
export const PROJECTIONS: readonly ProjectionName[] = Object.freeze([
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
]);

/** The config fields the table reads. */
export type TensorTableConfig = Pick<
  Qwen3Config,
  | "vocabSize"
  | "hiddenSize"
  | "intermediateSize"
  | "numHiddenLayers"
  | "numAttentionHeads"
  | "numKeyValueHeads"
  | "headDim"
  | "tieWordEmbeddings"
>;

/** One per-layer tensor of the table. */
export interface LayerTensorSpec {
  /** The field of {@linkcode Qwen3LayerWeights} it fills. */
  field: keyof Qwen3LayerWeights;
  /** Its module path inside a layer, e.g. `"self_attn.q_proj"` (the name adds `.weight`). */
  module: string;
  /** The projection, for the seven linear weights (the ones LoRA can adapt). */
  projection?: ProjectionName;
  /** Its shape, `[out, in]` for projections, `[n]` for norms. */
  shape(config: TensorTableConfig): number[];
}

const projection = (
  field: keyof Qwen3LayerWeights,
  block: "self_attn" | "mlp",
  name: ProjectionName,
  shape: (c: TensorTableConfig) => number[],
): LayerTensorSpec => ({ field, module: `${block}.${name}`, projection: name, shape });
const norm = (
  field: keyof Qwen3LayerWeights,
  module: string,
  shape: (c: TensorTableConfig) => number[],
): LayerTensorSpec => ({ field, module, shape });
const qRows = (c: TensorTableConfig): number => c.numAttentionHeads * c.headDim;
const kvRows = (c: TensorTableConfig): number => c.numKeyValueHeads * c.headDim;

/**
 * The tensors of one decoder layer in checkpoint order (the order `weights.ts` reads them).
 *
 * @example Find the field of `mlp.up_proj`
 * ```ts
 * import { LAYER_TENSORS } from "./tensor_table.ts";
 * console.log(LAYER_TENSORS.find((t) => t.module === "mlp.up_proj")?.field); // "upProj"
 * ```
 */
export const LAYER_TENSORS: readonly LayerTensorSpec[] = Object.freeze([
  norm("inputLayernorm", "input_layernorm", (c) => [c.hiddenSize]),
  projection("qProj", "self_attn", "q_proj", (c) => [qRows(c), c.hiddenSize]),
  projection("kProj", "self_attn", "k_proj", (c) => [kvRows(c), c.hiddenSize]),
  projection("vProj", "self_attn", "v_proj", (c) => [kvRows(c), c.hiddenSize]),
  projection("oProj", "self_attn", "o_proj", (c) => [c.hiddenSize, qRows(c)]),
  norm("qNorm", "self_attn.q_norm", (c) => [c.headDim]),
  norm("kNorm", "self_attn.k_norm", (c) => [c.headDim]),
  norm("postAttentionLayernorm", "post_attention_layernorm", (c) => [c.hiddenSize]),
  projection("gateProj", "mlp", "gate_proj", (c) => [c.intermediateSize, c.hiddenSize]),
  projection("upProj", "mlp", "up_proj", (c) => [c.intermediateSize, c.hiddenSize]),
  projection("downProj", "mlp", "down_proj", (c) => [c.hiddenSize, c.intermediateSize]),
]);

/**
 * The field of {@linkcode Qwen3LayerWeights} (and of every backend's per-layer weights struct,
 * which use the same field names) that holds each projection's weight.
 *
 * @example Usage
 * ```ts
 * import { PROJECTION_FIELD } from "./tensor_table.ts";
 * console.log(PROJECTION_FIELD.down_proj); // "downProj"
 * ```
 */
export const PROJECTION_FIELD: Readonly<Record<ProjectionName, keyof Qwen3LayerWeights>> = Object
  .freeze(
    Object.fromEntries(
      LAYER_TENSORS.filter((t) => t.projection).map((t) => [t.projection, t.field]),
    ) as Record<ProjectionName, keyof Qwen3LayerWeights>,
  );

/** A group of projections whose weights can share one buffer: q|k|v or gate|up. */
export type FusedGroup = "qkv" | "gate_up";

/**
 * The projections of each {@linkcode FusedGroup}, in the row order of the group's one weight
 * (`WebGpuQwen3` stores the base weights so, `MergedAdapterWeights` the merged ones).
 *
 * @example Usage
 * ```ts
 * import { FUSED_GROUPS } from "./tensor_table.ts";
 * console.log(FUSED_GROUPS.qkv); // ["q_proj", "k_proj", "v_proj"]
 * ```
 */
export const FUSED_GROUPS: Readonly<Record<FusedGroup, readonly ProjectionName[]>> = Object.freeze({
  qkv: Object.freeze(["q_proj", "k_proj", "v_proj"] as const),
  gate_up: Object.freeze(["gate_proj", "up_proj"] as const),
});

/**
 * The layer field of a {@linkcode FusedGroup}'s one weight (`GpuLayerWeights.qkvProj` /
 * `gateUpProj`).
 *
 * @example Usage
 * ```ts
 * import { FUSED_FIELD } from "./tensor_table.ts";
 * console.log(FUSED_FIELD.gate_up); // "gateUpProj"
 * ```
 */
export const FUSED_FIELD: Readonly<Record<FusedGroup, "qkvProj" | "gateUpProj">> = Object.freeze({
  qkv: "qkvProj",
  gate_up: "gateUpProj",
});

/**
 * The module path of a projection in a layer, e.g. `"model.layers.2.self_attn.o_proj"` (PEFT's
 * module name; add `.weight` for the base tensor, `.lora_A.weight` for an adapter).
 *
 * @param layer Decoder layer index.
 * @param projection The projection.
 * @returns The module name.
 *
 * @example Layer 2's o_proj
 * ```ts
 * import { projectionModuleName } from "./tensor_table.ts";
 * console.log(projectionModuleName(2, "o_proj")); // "model.layers.2.self_attn.o_proj"
 * ```
 */
export function projectionModuleName(layer: number, projection: ProjectionName): string {
  const block = projection === "gate_proj" || projection === "up_proj" ||
      projection === "down_proj"
    ? "mlp"
    : "self_attn";
  return `model.layers.${layer}.${block}.${projection}`;
}

/**
 * The checkpoint name of a per-layer tensor, e.g. `"model.layers.0.self_attn.q_norm.weight"`.
 *
 * @param layer Decoder layer index.
 * @param spec The tensor (an entry of {@linkcode LAYER_TENSORS}).
 * @returns The name.
 *
 * @example Usage
 * ```ts
 * import { LAYER_TENSORS, layerTensorName } from "./tensor_table.ts";
 * console.log(layerTensorName(1, LAYER_TENSORS[0])); // "model.layers.1.input_layernorm.weight"
 * ```
 */
export function layerTensorName(layer: number, spec: LayerTensorSpec): string {
  return `model.layers.${layer}.${spec.module}.weight`;
}

/** One row of {@linkcode modelTensorTable}. */
export interface TensorEntry {
  /** The checkpoint name, e.g. `"model.layers.0.mlp.up_proj.weight"`. */
  name: string;
  /** The shape. */
  shape: number[];
  /** The decoder layer, or `null` for the embedding, the final norm and the LM head. */
  layer: number | null;
  /**
   * The field it fills: of {@linkcode Qwen3LayerWeights} when `layer` is a number, else of
   * {@linkcode Qwen3Weights}.
   */
  field: keyof Qwen3LayerWeights | Exclude<keyof Qwen3Weights, "layers">;
  /** The projection, for the seven linear weights of a layer. */
  projection?: ProjectionName;
}

/**
 * Every parameter tensor of a model in checkpoint order: `model.embed_tokens.weight`, each
 * layer's tensors ({@linkcode LAYER_TENSORS}), `model.norm.weight`, and `lm_head.weight` only when
 * the embeddings are not tied.
 *
 * @param config The model's config.
 * @returns The table.
 *
 * @example Untied models list the LM head last
 * ```ts
 * import { modelTensorTable } from "./tensor_table.ts";
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, tieWordEmbeddings: false,
 * };
 * const table = modelTensorTable(config);
 * console.log(table.at(-1)?.name, table.at(-1)?.shape); // "lm_head.weight" [16, 8]
 * ```
 */
export function modelTensorTable(config: TensorTableConfig): TensorEntry[] {
  const H = config.hiddenSize;
  const V = config.vocabSize;
  const table: TensorEntry[] = [
    { name: "model.embed_tokens.weight", shape: [V, H], layer: null, field: "embedTokens" },
  ];
  for (let l = 0; l < config.numHiddenLayers; l++) {
    for (const spec of LAYER_TENSORS) {
      table.push({
        name: layerTensorName(l, spec),
        shape: spec.shape(config),
        layer: l,
        field: spec.field,
        ...(spec.projection ? { projection: spec.projection } : {}),
      });
    }
  }
  table.push({ name: "model.norm.weight", shape: [H], layer: null, field: "norm" });
  if (!config.tieWordEmbeddings) {
    table.push({ name: "lm_head.weight", shape: [V, H], layer: null, field: "lmHead" });
  }
  return table;
}
