/**
 * Parsing and validating a HuggingFace Qwen3 `config.json`.
 *
 * @module
 */
import { show } from "../internal/show.ts";
import { readJsonFile } from "../internal/read_json.ts";

/** The hyperparameters of a Qwen3 causal language model, as halo needs them. */
export interface Qwen3Config {
  /** Number of tokens in the vocabulary (`vocab_size`). */
  vocabSize: number;
  /** Width of the residual stream (`hidden_size`). */
  hiddenSize: number;
  /** Width of the SwiGLU MLP (`intermediate_size`). */
  intermediateSize: number;
  /** Number of decoder layers (`num_hidden_layers`). */
  numHiddenLayers: number;
  /** Number of query heads (`num_attention_heads`). */
  numAttentionHeads: number;
  /**
   * Number of key/value heads (`num_key_value_heads`); equal to `numAttentionHeads` when the key
   * is absent or null, as in HuggingFace.
   */
  numKeyValueHeads: number;
  /** Width of one attention head (`head_dim`, or `hidden_size / num_attention_heads` when absent). */
  headDim: number;
  /** Epsilon of every RMSNorm (`rms_norm_eps`). */
  rmsNormEps: number;
  /** RoPE base frequency (`rope_parameters.rope_theta`, or `rope_theta`). */
  ropeTheta: number;
  /** Longest sequence the model was trained for (`max_position_embeddings`). */
  maxPositionEmbeddings: number;
  /** Whether the LM head shares the embedding matrix (`tie_word_embeddings`, default `false`). */
  tieWordEmbeddings: boolean;
  /** Token ids that end generation (`eos_token_id`, a number or a list; empty when null). */
  eosTokenIds: number[];
  /** Beginning-of-sequence token id (`bos_token_id`), or `null`. */
  bosTokenId: number | null;
  /** Padding token id (`pad_token_id`), or `null`. */
  padTokenId: number | null;
}

/** transformers' `Qwen3Config` default of a missing `num_key_value_heads`. */
const HF_DEFAULT_KV_HEADS = 32;
/** transformers' `Qwen3Config` default of a missing `head_dim`. */
const HF_DEFAULT_HEAD_DIM = 128;

function prefix(source: string): string {
  return `Cannot load config "${source}"`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function positiveInteger(obj: Record<string, unknown>, key: string, source: string): number {
  const value = obj[key];
  if (value === undefined || value === null) {
    throw new TypeError(`${prefix(source)}: key "${key}" is missing`);
  }
  if (typeof value !== "number") {
    throw new TypeError(
      `${prefix(source)}: key "${key}" must be a positive integer: current value is ${show(value)}`,
    );
  }
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `${prefix(source)}: key "${key}" must be a positive integer: current value is ${show(value)}`,
    );
  }
  return value;
}

function positiveNumber(value: unknown, key: string, source: string): number {
  if (value === undefined || value === null) {
    throw new TypeError(`${prefix(source)}: key "${key}" is missing`);
  }
  if (typeof value !== "number") {
    throw new TypeError(
      `${prefix(source)}: key "${key}" must be a positive number: current value is ${show(value)}`,
    );
  }
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `${prefix(source)}: key "${key}" must be a positive number: current value is ${show(value)}`,
    );
  }
  return value;
}

function tokenId(value: unknown, key: string, source: string): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `${prefix(source)}: key "${key}" must be a non-negative integer or null: current value is ${
        show(value)
      }`,
    );
  }
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `${prefix(source)}: key "${key}" must be a non-negative integer or null: current value is ${
        show(value)
      }`,
    );
  }
  return value;
}

/** {@linkcode tokenId}, also below `vocab_size` (an id past the embedding rows is no token). */
function tokenIdInVocab(value: unknown, key: string, source: string, vocabSize: number): number {
  const id = tokenId(value, key, source);
  if (id >= vocabSize) {
    throw new RangeError(
      `${prefix(source)}: key "${key}" must be a token id below vocab_size ${vocabSize}: ` +
        `current value is ${show(value)}`,
    );
  }
  return id;
}

function optionalTokenId(
  obj: Record<string, unknown>,
  key: string,
  source: string,
  vocabSize: number,
): number | null {
  const value = obj[key];
  return value === undefined || value === null
    ? null
    : tokenIdInVocab(value, key, source, vocabSize);
}

function ropeTypeOf(value: Record<string, unknown>): unknown {
  return value.rope_type ?? value.type ?? "default";
}

/**
 * Validates a parsed Qwen3 `config.json` object and converts it to a {@linkcode Qwen3Config}.
 *
 * Features halo does not implement are errors rather than silently ignored: a `model_type` other
 * than `"qwen3"`, RoPE scaling (a `rope_scaling` or `rope_parameters.rope_type` other than
 * `"default"`), `attention_bias: true`, a `hidden_act` other than `"silu"`, and sliding-window
 * attention.
 *
 * Keys left out take transformers' `Qwen3Config` defaults, as `from_pretrained` would: a missing
 * `head_dim` is 128 (not `hidden_size / num_attention_heads`: Qwen3-0.6B and -4B have
 * `num_attention_heads · head_dim ≠ hidden_size`), a missing `num_key_value_heads` is 32 and a
 * `null` one equals `num_attention_heads`, a missing `tie_word_embeddings` is false. Official
 * Qwen3 configs give all of them.
 *
 * @param json The value of `JSON.parse` on the config file.
 * @param source The file path (or another name) the config came from, quoted in error messages.
 * @returns The validated configuration.
 * @throws {TypeError} If a required key is missing or has the wrong type.
 * @throws {RangeError} If a value is out of range or names an unsupported feature; a token id
 * (`bos_token_id`, `pad_token_id`, `eos_token_id` or an item of its list, named with its index)
 * must be an integer in `[0, vocab_size)`.
 *
 * @example Parse a config object
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQwen3Config } from "./config.ts";
 *
 * const config = parseQwen3Config({
 *   model_type: "qwen3",
 *   vocab_size: 384,
 *   hidden_size: 64,
 *   intermediate_size: 128,
 *   num_hidden_layers: 2,
 *   num_attention_heads: 4,
 *   num_key_value_heads: 2,
 *   head_dim: 16,
 *   rms_norm_eps: 1e-6,
 *   rope_theta: 1e6,
 *   max_position_embeddings: 256,
 *   eos_token_id: 383,
 * }, "inline");
 * assert.equal(config.headDim, 16);
 * assert.deepEqual(config.eosTokenIds, [383]);
 * assert.equal(config.tieWordEmbeddings, false);
 * ```
 */
export function parseQwen3Config(json: unknown, source: string): Qwen3Config {
  if (!isObject(json)) {
    throw new TypeError(
      `${prefix(source)}: expected a JSON object: current value is ${show(json)}`,
    );
  }
  const modelType = json.model_type;
  if (modelType !== "qwen3") {
    const error = typeof modelType === "string" ? RangeError : TypeError;
    throw new error(
      `${prefix(source)}: key "model_type" must be "qwen3": current value is ${show(modelType)}`,
    );
  }

  const vocabSize = positiveInteger(json, "vocab_size", source);
  const hiddenSize = positiveInteger(json, "hidden_size", source);
  const intermediateSize = positiveInteger(json, "intermediate_size", source);
  const numHiddenLayers = positiveInteger(json, "num_hidden_layers", source);
  const numAttentionHeads = positiveInteger(json, "num_attention_heads", source);
  // transformers' Qwen3Config: a missing num_key_value_heads is 32 and an explicit null is
  // num_attention_heads; a missing head_dim is 128 (not hidden_size / num_attention_heads).
  const kvMissing = !("num_key_value_heads" in json);
  const numKeyValueHeads = kvMissing
    ? HF_DEFAULT_KV_HEADS
    : json.num_key_value_heads === null
    ? numAttentionHeads
    : positiveInteger(json, "num_key_value_heads", source);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new RangeError(
      `${prefix(source)}: key "num_attention_heads" must be divisible by "num_key_value_heads": ` +
        `current values are ${numAttentionHeads} and ${numKeyValueHeads}` +
        (kvMissing
          ? ` (key "num_key_value_heads" is missing: transformers' default is ` +
            `${HF_DEFAULT_KV_HEADS}; give the key, or null for one KV head per attention head)`
          : ""),
    );
  }
  if (json.head_dim === null) {
    throw new TypeError(
      `${prefix(source)}: key "head_dim" must be a positive integer (transformers has no null ` +
        `head_dim; without the key it is ${HF_DEFAULT_HEAD_DIM}): current value is null`,
    );
  }
  const headDim = "head_dim" in json
    ? positiveInteger(json, "head_dim", source)
    : HF_DEFAULT_HEAD_DIM;
  const rmsNormEps = positiveNumber(json.rms_norm_eps, "rms_norm_eps", source);
  const maxPositionEmbeddings = positiveInteger(json, "max_position_embeddings", source);

  // RoPE: transformers >= 5 writes `rope_parameters`, older versions `rope_theta` + `rope_scaling`.
  let ropeTheta: number;
  const ropeParameters = json.rope_parameters;
  if (ropeParameters !== undefined && ropeParameters !== null) {
    if (!isObject(ropeParameters)) {
      throw new TypeError(
        `${prefix(source)}: key "rope_parameters" must be an object: current value is ${
          show(ropeParameters)
        }`,
      );
    }
    const ropeType = ropeTypeOf(ropeParameters);
    if (ropeType !== "default") {
      throw new RangeError(
        `${prefix(source)}: key "rope_parameters.rope_type" is unsupported: only "default" is ` +
          `implemented: current value is ${show(ropeType)}`,
      );
    }
    ropeTheta = ropeParameters.rope_theta === undefined && json.rope_theta !== undefined
      ? positiveNumber(json.rope_theta, "rope_theta", source)
      : positiveNumber(ropeParameters.rope_theta, "rope_parameters.rope_theta", source);
  } else {
    ropeTheta = positiveNumber(json.rope_theta, "rope_theta", source);
  }
  const ropeScaling = json.rope_scaling;
  if (ropeScaling !== undefined && ropeScaling !== null) {
    if (!isObject(ropeScaling) || ropeTypeOf(ropeScaling) !== "default") {
      throw new RangeError(
        `${prefix(source)}: key "rope_scaling" is unsupported: only null is implemented: ` +
          `current value is ${show(ropeScaling)}`,
      );
    }
  }

  if (json.attention_bias !== undefined && json.attention_bias !== null) {
    if (json.attention_bias !== false) {
      throw new RangeError(
        `${prefix(source)}: key "attention_bias" is unsupported: only false is implemented: ` +
          `current value is ${show(json.attention_bias)}`,
      );
    }
  }
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") {
    throw new RangeError(
      `${prefix(source)}: key "hidden_act" is unsupported: only "silu" is implemented: ` +
        `current value is ${show(json.hidden_act)}`,
    );
  }
  if (json.use_sliding_window !== undefined && json.use_sliding_window !== false) {
    throw new RangeError(
      `${prefix(source)}: key "use_sliding_window" is unsupported: only false is implemented: ` +
        `current value is ${show(json.use_sliding_window)}`,
    );
  }
  const layerTypes = json.layer_types;
  if (layerTypes !== undefined && layerTypes !== null) {
    if (
      !Array.isArray(layerTypes) || layerTypes.some((t) => t !== "full_attention")
    ) {
      throw new RangeError(
        `${prefix(source)}: key "layer_types" is unsupported: only "full_attention" layers are ` +
          `implemented: current value is ${show(layerTypes)}`,
      );
    }
  }

  let tieWordEmbeddings = false;
  const tie = json.tie_word_embeddings;
  if (tie !== undefined && tie !== null) {
    if (typeof tie !== "boolean") {
      throw new TypeError(
        `${prefix(source)}: key "tie_word_embeddings" must be a boolean: current value is ${
          show(tie)
        }`,
      );
    }
    tieWordEmbeddings = tie;
  }

  const eos = json.eos_token_id;
  let eosTokenIds: number[];
  if (eos === undefined || eos === null) {
    eosTokenIds = [];
  } else if (Array.isArray(eos)) {
    eosTokenIds = eos.map((id, i) => tokenIdInVocab(id, `eos_token_id[${i}]`, source, vocabSize));
  } else {
    eosTokenIds = [tokenIdInVocab(eos, "eos_token_id", source, vocabSize)];
  }

  return {
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    maxPositionEmbeddings,
    tieWordEmbeddings,
    eosTokenIds,
    bosTokenId: optionalTokenId(json, "bos_token_id", source, vocabSize),
    padTokenId: optionalTokenId(json, "pad_token_id", source, vocabSize),
  };
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

/**
 * Reads and validates `config.json` from a HuggingFace Qwen3 checkpoint directory.
 *
 * @param dir The checkpoint directory.
 * @returns The validated configuration.
 * @throws {Deno.errors.NotFound} If `dir/config.json` does not exist.
 * @throws {SyntaxError} If the file is not valid JSON; the message names the file.
 * @throws {TypeError} If a required key is missing or has the wrong type.
 * @throws {RangeError} If a value is out of range or names an unsupported feature.
 *
 * @example Read the test fixture's config
 * ```ts
 * import assert from "node:assert/strict";
 * import { readQwen3Config } from "./config.ts";
 *
 * const config = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * assert.equal(config.numHiddenLayers, 2);
 * assert.equal(config.tieWordEmbeddings, true);
 * ```
 */
export async function readQwen3Config(dir: string): Promise<Qwen3Config> {
  const path = joinPath(dir, "config.json");
  const json = await readJsonFile(path, { context: "Cannot load config" });
  return parseQwen3Config(json, path);
}
