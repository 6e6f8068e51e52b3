/**
 * The trainable parameters of a model as a flat {@linkcode ParamTree} under their
 * HuggingFace/PEFT names, sharing the model's own arrays, plus the tensor shapes a checkpoint
 * needs. The optimizer works on the tree; {@linkcode assignParams} copies its new values back into
 * the shared arrays, so the model sees them on its next pass.
 *
 * @example Train the final norm of a fresh model by hand
 * ```ts
 * import { assignParams, modelParams } from "./params.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [], bosTokenId: null,
 *   padTokenId: null,
 * };
 * const weights = initQwen3Weights(config, { seed: 0 });
 * const params = modelParams(weights, config);
 * assignParams(params.tree, { ...params.tree, "model.norm.weight": new Float32Array(8).fill(2) });
 * strictEqual(weights.norm[3], 2);
 * ```
 *
 * @module
 */
import type { Lora } from "../adapters/lora.ts";
import { loraTensorName } from "../adapters/lora.ts";
import type { Qwen3Config } from "../model/config.ts";
import type { TensorToWrite } from "../internal/safetensors.ts";
import { modelTensorTable } from "../model/tensor_table.ts";
import { routerTensorName } from "../model/adapter_types.ts";
import type { Qwen3LayerWeights, Qwen3Weights } from "../model/weights.ts";
import type { ParamTree } from "./types.ts";

/**
 * A parameter tree with the shape of each tensor.
 *
 * @example Usage
 * ```ts
 * import type { NamedParams } from "./params.ts";
 *
 * const named: NamedParams = {
 *   tree: { "model.norm.weight": new Float32Array(4) },
 *   shapes: { "model.norm.weight": [4] },
 * };
 * ```
 */
export interface NamedParams {
  /** Name → values (shared with the model). */
  tree: ParamTree;
  /** Name → dimensions, outermost first. */
  shapes: Record<string, number[]>;
}

/**
 * Options of {@linkcode paramTensors}.
 *
 * @example Usage
 * ```ts
 * import type { ParamTensorsOptions } from "./params.ts";
 *
 * const options: ParamTensorsOptions = { prefix: "base_model.model." };
 * ```
 */
export interface ParamTensorsOptions {
  /** Put before every name (PEFT writes `base_model.model.`). Default none. */
  prefix?: string;
}

/**
 * Every weight of a Qwen3 model under its checkpoint name (`model.embed_tokens.weight`,
 * `model.layers.N.self_attn.q_proj.weight`, …, `model.norm.weight`, and `lm_head.weight` only when
 * the embeddings are not tied), the names `cpuBackward` gives the gradients in `"full"` mode.
 *
 * @param weights The model's weights (the arrays are shared, not copied).
 * @param config The model's config.
 * @returns The tree and the shapes.
 *
 * @example Names of a one-layer model
 * ```ts
 * import { modelParams } from "./params.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [], bosTokenId: null,
 *   padTokenId: null,
 * };
 * const { tree, shapes } = modelParams(initQwen3Weights(config, { seed: 0 }), config);
 * strictEqual(Object.keys(tree).length, 13);
 * deepStrictEqual(shapes["model.layers.0.self_attn.k_proj.weight"], [4, 8]);
 * ```
 */
export function modelParams(weights: Qwen3Weights, config: Qwen3Config): NamedParams {
  const tree: ParamTree = {};
  const shapes: Record<string, number[]> = {};
  // The tensor table's names and shapes; the LM head is listed when its array is not the
  // embedding's (an untied model).
  const tied = weights.lmHead === weights.embedTokens;
  for (const entry of modelTensorTable({ ...config, tieWordEmbeddings: tied })) {
    const data = entry.layer === null
      ? weights[entry.field as "embedTokens" | "norm" | "lmHead"]
      : weights.layers[entry.layer][entry.field as keyof Qwen3LayerWeights];
    const n = entry.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new RangeError(
        `Cannot name the model's parameters: tensor "${entry.name}" must have ${n} values ` +
          `(shape [${entry.shape.join(", ")}]): current length is ${data.length}`,
      );
    }
    tree[entry.name] = data;
    shapes[entry.name] = entry.shape;
  }
  return { tree, shapes };
}

/**
 * Every LoRA matrix of a set of adapters under the names `cpuBackward` gives their gradients
 * (`model.layers.0.self_attn.q_proj.lora_A.weight`; PEFT adds the prefix `base_model.model.`).
 *
 * @param lora The adapters (the arrays are shared, not copied).
 * @returns The tree and the shapes (`A` is `[r, in]`, `B` is `[out, r]`).
 *
 * @example Two matrices per adapted projection
 * ```ts
 * import { loraParams } from "./params.ts";
 * import { createLora } from "../adapters/lora.ts";
 * import { loraConfig } from "../adapters/lora_config.ts";
 * import { readQwen3Config } from "../model/config.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const lora = createLora(loraConfig({ r: 2, targetModules: ["q_proj"] }), model, { seed: 0 });
 * const { shapes } = loraParams(lora);
 * deepStrictEqual(shapes["model.layers.1.self_attn.q_proj.lora_A.weight"], [2, 64]);
 * ```
 */
export function loraParams(lora: Lora): NamedParams {
  const tree: ParamTree = {};
  const shapes: Record<string, number[]> = {};
  for (const m of lora.modules) {
    m.experts.forEach((e, expert) => {
      const a = loraTensorName(m, { matrix: "A", expert });
      const b = loraTensorName(m, { matrix: "B", expert });
      tree[a] = e.a;
      shapes[a] = [e.r, m.inFeatures];
      tree[b] = e.b;
      shapes[b] = [m.outFeatures, e.r];
    });
    if (m.router) {
      // A HILO / MoLA mixture's router `[E, in]` trains with its experts.
      const r = routerTensorName(m);
      tree[r] = m.router.weight;
      shapes[r] = [m.experts.length, m.inFeatures];
    }
  }
  return { tree, shapes };
}

/**
 * Copies new values into the live parameter arrays, in place (so a model holding those arrays
 * sees them). Both trees must have the same names and lengths.
 *
 * @param target The live tree (from {@linkcode modelParams} or {@linkcode loraParams}).
 * @param source The new values.
 * @throws {TypeError} When a name is missing on either side.
 * @throws {RangeError} When a tensor's length differs.
 *
 * @example Copy one tensor
 * ```ts
 * import { assignParams } from "./params.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const live = { w: new Float32Array(2) };
 * const alias = live.w;
 * assignParams(live, { w: new Float32Array([1, 2]) });
 * deepStrictEqual(alias, new Float32Array([1, 2]));
 * ```
 */
export function assignParams(target: ParamTree, source: ParamTree): void {
  const where = "Cannot assign parameters";
  for (const name of Object.keys(source)) {
    if (!Object.hasOwn(target, name)) {
      throw new TypeError(`${where}: tensor "${name}" is not a parameter of the model`);
    }
  }
  for (const [name, live] of Object.entries(target)) {
    const value = source[name];
    if (!(value instanceof Float32Array)) {
      throw new TypeError(`${where}: tensor "${name}" is missing from the new values`);
    }
    if (value.length !== live.length) {
      throw new RangeError(
        `${where}: tensor "${name}" must have ${live.length} values: current length is ` +
          `${value.length}`,
      );
    }
    if (value !== live) live.set(value);
  }
}

/**
 * The parameters as safetensors tensors (F32 with their shapes), e.g. for a checkpoint or an
 * exported model. The data arrays are shared, not copied.
 *
 * @param params The tree and shapes.
 * @param options A name prefix.
 * @returns Name → tensor.
 *
 * @example PEFT names
 * ```ts
 * import { paramTensors } from "./params.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const tensors = paramTensors(
 *   { tree: { "a.weight": new Float32Array(6) }, shapes: { "a.weight": [2, 3] } },
 *   { prefix: "base_model.model." },
 * );
 * deepStrictEqual(Object.keys(tensors), ["base_model.model.a.weight"]);
 * deepStrictEqual(tensors["base_model.model.a.weight"].shape, [2, 3]);
 * ```
 */
export function paramTensors(
  params: NamedParams,
  options: ParamTensorsOptions = {},
): Record<string, TensorToWrite> {
  const prefix = options.prefix ?? "";
  const out: Record<string, TensorToWrite> = {};
  for (const [name, data] of Object.entries(params.tree)) {
    out[prefix + name] = { dtype: "F32", shape: params.shapes[name], data };
  }
  return out;
}
