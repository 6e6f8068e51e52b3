/**
 * Writing a trained Qwen3 model as a HuggingFace checkpoint directory that `loadModel`,
 * `loadTokenizer` and transformers' `AutoModelForCausalLM.from_pretrained` read: `config.json`,
 * `generation_config.json`, `model.safetensors` (F32), `tokenizer.json` and
 * `tokenizer_config.json`. Every file is written atomically (temporary file, flush, rename), so a
 * killed export never leaves a half-written file; other files in the directory are left alone.
 *
 * @module
 */
import { join } from "node:path";
import type { Qwen3Config } from "../model/config.ts";
import { writeSafetensors } from "../internal/safetensors.ts";
import type { Qwen3Weights } from "../model/weights.ts";
import { modelParams, paramTensors } from "./params.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";

/**
 * Options of {@linkcode exportQwen3Model}.
 *
 * @example Usage
 * ```ts ignore
 * import type { ExportQwen3ModelOptions } from "./export_model.ts";
 * declare const config: import("../model/config.ts").Qwen3Config;
 * declare const weights: import("../model/weights.ts").Qwen3Weights;
 * const options: ExportQwen3ModelOptions = {
 *   config, weights, tokenizerJson: {}, tokenizerConfig: {}, initializerRange: 0.02,
 * };
 * ```
 */
export interface ExportQwen3ModelOptions {
  /** The model's config. */
  config: Qwen3Config;
  /** Its weights. */
  weights: Qwen3Weights;
  /** The parsed `tokenizer.json`. */
  tokenizerJson: unknown;
  /** The parsed `tokenizer_config.json`. */
  tokenizerConfig: unknown;
  /** The chat template file `chat_template.jinja`, when the tokenizer keeps it apart. */
  chatTemplate?: string;
  /** `initializer_range` recorded in `config.json`; default `0.02`. */
  initializerRange?: number;
  /**
   * The source model's `generation_config.json` (its stop ids, e.g. Qwen3's
   * `[151645, 151643]`, and recommended sampling), written as it is; default one built from the
   * config: greedy, with the config's EOS and padding ids.
   */
  generationConfig?: Record<string, unknown>;
}

/**
 * The HuggingFace `config.json` of a Qwen3 model (what `parseQwen3Config` reads back).
 *
 * @param config The model's config.
 * @param initializerRange The init standard deviation to record; default `0.02`.
 * @returns The JSON object.
 *
 * @example It parses back to the same config
 * ```ts
 * import { qwen3ConfigJson } from "./export_model.ts";
 * import { parseQwen3Config } from "../model/config.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
 *   numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 8, rmsNormEps: 1e-6, ropeTheta: 10000,
 *   maxPositionEmbeddings: 128, tieWordEmbeddings: true, eosTokenIds: [54], bosTokenId: null,
 *   padTokenId: 52,
 * };
 * deepStrictEqual(parseQwen3Config(qwen3ConfigJson(config), "config.json"), config);
 * ```
 */
export function qwen3ConfigJson(
  config: Qwen3Config,
  initializerRange = 0.02,
): Record<string, unknown> {
  return {
    architectures: ["Qwen3ForCausalLM"],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds,
    head_dim: config.headDim,
    hidden_act: "silu",
    hidden_size: config.hiddenSize,
    initializer_range: initializerRange,
    intermediate_size: config.intermediateSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    max_window_layers: config.numHiddenLayers,
    model_type: "qwen3",
    num_attention_heads: config.numAttentionHeads,
    num_hidden_layers: config.numHiddenLayers,
    num_key_value_heads: config.numKeyValueHeads,
    pad_token_id: config.padTokenId,
    rms_norm_eps: config.rmsNormEps,
    rope_scaling: null,
    rope_theta: config.ropeTheta,
    sliding_window: null,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: "float32",
    use_cache: true,
    use_sliding_window: false,
    vocab_size: config.vocabSize,
  };
}

/**
 * Writes a Qwen3 model with its tokenizer as a HuggingFace checkpoint directory (created if
 * missing). `generation_config.json` is the source model's when given (`generationConfig`), else
 * one that asks for greedy decoding and names the EOS and padding ids. Needs `--allow-write`.
 *
 * @param dir The directory.
 * @param options The config, weights and tokenizer files.
 * @returns The paths written.
 * @throws {Error} When a file cannot be written; the message names it.
 *
 * @example Export a fresh model and load it back
 * ```ts
 * import { exportQwen3Model } from "./export_model.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
 * import { loadModel } from "../model/load_model.ts";
 * import { loadTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = {
 *   vocabSize: 56, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 32, tieWordEmbeddings: true, eosTokenIds: [54], bosTokenId: null,
 *   padTokenId: 52,
 * };
 * const dir = await Deno.makeTempDir();
 * try {
 *   await exportQwen3Model(dir, {
 *     config, weights: initQwen3Weights(config, { seed: 0 }), ...arithmeticTokenizerFiles(),
 *   });
 *   const model = await loadModel(dir, { backend: "cpu", warn: false });
 *   strictEqual(model.config.hiddenSize, 8);
 *   strictEqual((await loadTokenizer(dir)).eosTokenId, 54);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function exportQwen3Model(
  dir: string,
  options: ExportQwen3ModelOptions,
): Promise<string[]> {
  const { config, weights } = options;
  await Deno.mkdir(dir, { recursive: true });
  const written: string[] = [];
  const writeJson = async (name: string, value: unknown): Promise<void> => {
    const path = join(dir, name);
    try {
      await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
    } catch (error) {
      throw new Error(
        `Cannot export model file "${path}": ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    written.push(path);
  };
  const weightsPath = join(dir, "model.safetensors");
  await writeSafetensors(weightsPath, paramTensors(modelParams(weights, config)), {
    metadata: { format: "pt" },
  });
  written.push(weightsPath);
  await writeJson("config.json", qwen3ConfigJson(config, options.initializerRange));
  const eos = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds;
  await writeJson(
    "generation_config.json",
    options.generationConfig ?? {
      _from_model_config: true,
      bos_token_id: config.bosTokenId,
      do_sample: false,
      eos_token_id: eos,
      pad_token_id: config.padTokenId,
    },
  );
  await writeJson("tokenizer.json", options.tokenizerJson);
  await writeJson("tokenizer_config.json", options.tokenizerConfig);
  if (options.chatTemplate !== undefined) {
    const path = join(dir, "chat_template.jinja");
    await writeFileAtomic(path, options.chatTemplate);
    written.push(path);
  }
  return written;
}
