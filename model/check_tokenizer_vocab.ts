/**
 * The check that a tokenizer fits a model: every token id it can produce must have an embedding
 * row, i.e. be below the model's `vocab_size`.
 *
 * @module
 */
import { join } from "node:path";
import type { Qwen3Config } from "./config.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** Where the tokenizer and the model config came from, named in the error. */
export interface TokenizerModelFiles {
  /** The tokenizer's file, e.g. `"<dir>/tokenizer.json"`. */
  tokenizer: string;
  /** The model's config file (e.g. `"<dir>/config.json"`), or its directory. */
  config: string;
}

/**
 * Checks that the tokenizer's largest token id (`tokenizer.vocabSize - 1`, added tokens
 * included) is below the model's `vocab_size`. A model with more rows than the tokenizer has
 * ids is fine (Qwen3 checkpoints pad `vocab_size` to 151936 for 151669 tokens); an id at or past
 * `vocab_size` has no embedding row, and would fail later, far from its cause.
 *
 * @param tokenizer The tokenizer (its `vocabSize` and `decode`).
 * @param config The model's configuration (its `vocabSize`).
 * @param files The tokenizer and config files, named in the error, or the model directory that
 * holds both (`tokenizer.json` and `config.json`).
 * @throws {RangeError} When the tokenizer has an id at or past `vocab_size`; the message names
 * both files, the id, its token and `vocab_size`.
 *
 * @example A tokenizer of 55 ids fits a 64-row model, not a 50-row one
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkTokenizerFitsModel } from "./check_tokenizer_vocab.ts";
 * import { loadTokenizer } from "./tokenizer.ts";
 *
 * const tokenizer = await loadTokenizer("models/arithmetic-tiny");
 * const files = { tokenizer: "t/tokenizer.json", config: "m/config.json" };
 * checkTokenizerFitsModel(tokenizer, { vocabSize: 64 }, files);
 * assert.throws(() => checkTokenizerFitsModel(tokenizer, { vocabSize: 50 }, files), RangeError);
 * checkTokenizerFitsModel(tokenizer, { vocabSize: 55 }, "models/arithmetic-tiny"); // ids 0..54
 * ```
 */
export function checkTokenizerFitsModel(
  tokenizer: Pick<Tokenizer, "vocabSize" | "decode">,
  config: Pick<Qwen3Config, "vocabSize">,
  files: TokenizerModelFiles | string,
): void {
  const { tokenizer: tokenizerFile, config: configFile } = typeof files === "string"
    ? { tokenizer: join(files, "tokenizer.json"), config: join(files, "config.json") }
    : files;
  const largest = tokenizer.vocabSize - 1;
  if (largest < config.vocabSize) return;
  let token = "";
  try {
    token = ` (${JSON.stringify(tokenizer.decode([largest]))})`;
  } catch {
    // The id alone names it.
  }
  throw new RangeError(
    `Cannot use tokenizer "${tokenizerFile}" with the model of "${configFile}": its largest ` +
      `token id is ${largest}${token}, but the model's key "vocab_size" is ${config.vocabSize}: ` +
      `every token id must be below vocab_size (the model has no embedding row for it)`,
  );
}
