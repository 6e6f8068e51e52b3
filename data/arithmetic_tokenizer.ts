/**
 * The tokenizer of the built-in arithmetic task (`data/arithmetic_task.ts`): a HuggingFace
 * `tokenizer.json` with a character-level byte-level BPE (no merges, so every digit, operator,
 * space and newline is its own token), the marker `Answer:` as one added token, and Qwen's special
 * tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`; plus a `tokenizer_config.json` with a
 * small Qwen-style chat template. It loads through `model/tokenizer.ts` like any HF tokenizer.
 *
 * @example Build it in memory and encode an answer
 * ```ts
 * import { arithmeticTokenizerFiles } from "./arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(tokenizerJson, tokenizerConfig);
 * const ids = tokenizer.encode("Answer: -42");
 * strictEqual(ids.length, 5); // "Answer:", " ", "-", "4", "2"
 * strictEqual(tokenizer.decode(ids), "Answer: -42");
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { writeFileAtomic } from "../internal/atomic_write.ts";

/**
 * The two files of a HuggingFace tokenizer, as parsed JSON objects.
 *
 * @example Usage
 * ```ts
 * import { arithmeticTokenizerFiles, type TokenizerFiles } from "./arithmetic_tokenizer.ts";
 *
 * const files: TokenizerFiles = arithmeticTokenizerFiles();
 * ```
 */
export interface TokenizerFiles {
  /** The contents of `tokenizer.json`. */
  tokenizerJson: Record<string, unknown>;
  /** The contents of `tokenizer_config.json` (with `chat_template`, `eos_token`, `pad_token`). */
  tokenizerConfig: Record<string, unknown>;
}

/**
 * The characters the arithmetic tokenizer encodes, one token each, in id order: digits, space,
 * newline, operators and punctuation, lowercase letters, and the capitals `A` and `W` (of
 * `Answer` and `What`). Other characters are dropped by `encode`.
 *
 * @example Every character of a prompt is covered
 * ```ts
 * import { ARITHMETIC_ALPHABET } from "./arithmetic_tokenizer.ts";
 * import { ok } from "node:assert/strict";
 *
 * ok([..."What is 12 + 7 * 3?"].every((c) => ARITHMETIC_ALPHABET.includes(c)));
 * ```
 */
export const ARITHMETIC_ALPHABET: readonly string[] = Object.freeze([
  ..."0123456789",
  " ",
  "\n",
  ..."+-*/=()?:.,",
  ..."abcdefghijklmnopqrstuvwxyz",
  "A",
  "W",
]);

/**
 * The added tokens after the alphabet, in id order: the answer marker (an ordinary added token,
 * not special) and the special tokens.
 *
 * @example Ids of the special tokens
 * ```ts
 * import { ARITHMETIC_ADDED_TOKENS, ARITHMETIC_ALPHABET } from "./arithmetic_tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const imEnd = ARITHMETIC_ALPHABET.length + ARITHMETIC_ADDED_TOKENS.indexOf("<|im_end|>");
 * strictEqual(imEnd, 54);
 * ```
 */
export const ARITHMETIC_ADDED_TOKENS: readonly string[] = Object.freeze([
  "Answer:",
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
]);

const SPECIAL = new Set(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);

/** A Qwen-style template: `<|im_start|>role\ncontent<|im_end|>\n` per turn. */
const CHAT_TEMPLATE = "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** GPT-2's byte → printable character map (the ByteLevel pre-tokenizer's alphabet). */
function byteToUnicode(): Map<number, string> {
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
  return new Map(bytes.map((b, i) => [b, String.fromCharCode(chars[i])]));
}

/**
 * Builds the arithmetic tokenizer's `tokenizer.json` and `tokenizer_config.json` as fresh
 * objects (55 ids: 51 characters, `Answer:`, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`).
 * EOS is `<|im_end|>` and padding is `<|endoftext|>`, as in Qwen3.
 *
 * @returns The two parsed files.
 *
 * @example Load it and render a chat prompt
 * ```ts
 * import { arithmeticTokenizerFiles } from "./arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(tokenizerJson, tokenizerConfig);
 * strictEqual(tokenizer.vocabSize, 55);
 * strictEqual(
 *   tokenizer.applyChatTemplate([{ role: "user", content: "What is 1 + 2?" }]),
 *   "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n",
 * );
 * ```
 */
export function arithmeticTokenizerFiles(): TokenizerFiles {
  const toUnicode = byteToUnicode();
  const encoder = new TextEncoder();
  const vocab: Record<string, number> = {};
  ARITHMETIC_ALPHABET.forEach((char, id) => {
    const bytes = encoder.encode(char);
    vocab[[...bytes].map((b) => toUnicode.get(b)!).join("")] = id;
  });
  const addedTokens = ARITHMETIC_ADDED_TOKENS.map((content, i) => ({
    id: ARITHMETIC_ALPHABET.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: SPECIAL.has(content),
  }));
  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: false,
      use_regex: false,
    },
    post_processor: null,
    decoder: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: false,
      use_regex: false,
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const { id, ...rest } of addedTokens) addedTokensDecoder[String(id)] = rest;
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ["<|im_start|>", "<|im_end|>"],
    bos_token: null,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: "<|im_end|>",
    errors: "replace",
    model_max_length: 1024,
    pad_token: "<|endoftext|>",
    split_special_tokens: false,
    tokenizer_class: "PreTrainedTokenizerFast",
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Writes `tokenizer.json` and `tokenizer_config.json` of the arithmetic tokenizer into `dir`
 * (created if missing), each atomically: written to a temporary file beside it, flushed to disk,
 * then renamed into place. Needs `--allow-write`.
 *
 * @param dir The directory, e.g. a run's model directory.
 * @returns A promise that resolves once both files are in place.
 * @throws {Error} When the directory cannot be created or written; the message names the file.
 *
 * @example Write it and load it back
 * ```ts
 * import { writeArithmeticTokenizer } from "./arithmetic_tokenizer.ts";
 * import { loadTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * try {
 *   await writeArithmeticTokenizer(dir);
 *   const tokenizer = await loadTokenizer(dir);
 *   strictEqual(tokenizer.decode(tokenizer.encode("7 * 3 = 21")), "7 * 3 = 21");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeArithmeticTokenizer(dir: string): Promise<void> {
  const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
  await Deno.mkdir(dir, { recursive: true });
  for (
    const [name, value] of [
      ["tokenizer.json", tokenizerJson],
      ["tokenizer_config.json", tokenizerConfig],
    ] as const
  ) {
    const path = join(dir, name);
    try {
      await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
    } catch (error) {
      throw new Error(
        `Cannot write tokenizer file "${path}": ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }
}
