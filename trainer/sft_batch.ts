/**
 * Supervised fine-tuning batches: a prompt/completion pair becomes one token sequence whose
 * completion tokens carry the loss; sequences are right-padded into a rectangular batch with an
 * attention mask and a loss mask laid out like the token log-probs.
 *
 * @example Tokenize two examples and collate them
 * ```ts
 * import { collateSft, tokenizeSft } from "./sft_batch.ts";
 * import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const a = tokenizeSft(tokenizer, { prompt: "What is 1 + 2?", completion: "Answer: 3" });
 * const b = tokenizeSft(tokenizer, { prompt: "What is 10 + 2?", completion: "Answer: 12" });
 * const batch = collateSft([a, b], { padId: 52 });
 * strictEqual(batch.lossTokens, a.ids.length - a.promptLength + b.ids.length - b.promptLength);
 * ```
 *
 * @module
 */
import type { Tokenizer } from "../model/tokenizer.ts";

/**
 * One training sequence: prompt tokens followed by completion tokens.
 *
 * @example Usage
 * ```ts
 * import type { SftSequence } from "./sft_batch.ts";
 *
 * const sequence: SftSequence = { ids: [5, 6, 7, 8], promptLength: 2 }; // loss on 7 and 8
 * ```
 */
export interface SftSequence {
  /** Token ids, prompt then completion. */
  ids: number[];
  /** Number of prompt tokens (no loss on them); at least 1, less than `ids.length`. */
  promptLength: number;
}

/**
 * A rectangular batch for the forward/backward pass plus its loss mask.
 *
 * @example Usage
 * ```ts
 * import type { SftBatch } from "./sft_batch.ts";
 *
 * const batch: SftBatch = {
 *   inputIds: [[5, 6, 7]],
 *   attentionMask: [[1, 1, 1]],
 *   lossMask: new Float64Array([0, 1]),
 *   batch: 1,
 *   seqLen: 3,
 *   lossTokens: 1,
 *   tokens: 3,
 * };
 * ```
 */
export interface SftBatch {
  /** Token ids `[batch][seqLen]`, right-padded. */
  inputIds: number[][];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[][];
  /**
   * `[batch, seqLen − 1]`: 1 where the target `inputIds[b][t + 1]` is a completion token, the
   * layout of `tokenLogprobs` and `sftLoss`.
   */
  lossMask: Float64Array;
  /** Number of sequences. */
  batch: number;
  /** Tokens per (padded) sequence. */
  seqLen: number;
  /** Number of completion tokens that carry the loss. */
  lossTokens: number;
  /** Number of real (non-padding) tokens. */
  tokens: number;
}

/**
 * A prompt and the completion to learn.
 *
 * @example Usage
 * ```ts
 * import type { SftText } from "./sft_batch.ts";
 *
 * const text: SftText = { prompt: "What is 1 + 2?", completion: "Answer: 3" };
 * ```
 */
export interface SftText {
  /** The prompt as the model sees it (already chat-rendered, if the model is a chat model). */
  prompt: string;
  /** The completion, including any end-of-turn token written out (`<|im_end|>`). */
  completion: string;
}

/**
 * Options of {@linkcode collateSft}.
 *
 * @example Usage
 * ```ts
 * import type { CollateSftOptions } from "./sft_batch.ts";
 *
 * const options: CollateSftOptions = { padId: 52, maxLength: 128 };
 * ```
 */
export interface CollateSftOptions {
  /** The token id written into padding slots (masked out of attention and loss). */
  padId: number;
  /** Longest sequence allowed (the model's context); default no limit. */
  maxLength?: number;
}

/**
 * Tokenizes a prompt and its completion separately (as TRL does, so the boundary is exact) and
 * joins them. No special tokens are added: write them into the texts.
 *
 * @param tokenizer The model's tokenizer.
 * @param text The prompt and completion.
 * @returns The ids and the prompt length.
 * @throws {RangeError} When the prompt or the completion encodes to no token.
 *
 * @example The completion starts after the prompt
 * ```ts
 * import { tokenizeSft } from "./sft_batch.ts";
 * import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const s = tokenizeSft(tokenizer, { prompt: "1+2=", completion: "3<|im_end|>" });
 * strictEqual(s.promptLength, 4);
 * strictEqual(tokenizer.decode(s.ids.slice(s.promptLength)), "3<|im_end|>");
 * ```
 */
export function tokenizeSft(tokenizer: Tokenizer, text: SftText): SftSequence {
  const prompt = tokenizer.encode(text.prompt, { addSpecialTokens: false });
  const completion = tokenizer.encode(text.completion, { addSpecialTokens: false });
  for (const [key, ids] of [["prompt", prompt], ["completion", completion]] as const) {
    if (ids.length === 0) {
      throw new RangeError(
        `Cannot tokenize SFT example: the ${key} must encode to at least one token: current ` +
          `text is ${JSON.stringify(text[key])}`,
      );
    }
  }
  return { ids: [...prompt, ...completion], promptLength: prompt.length };
}

/**
 * Right-pads sequences into one batch and marks the completion targets in the loss mask.
 *
 * @param sequences The sequences (at least one).
 * @param options Padding id and the longest length allowed.
 * @returns The batch.
 * @throws {RangeError} When there is no sequence, a prompt length is out of range, or a sequence
 *   is longer than `maxLength` (the message names the sequence and both lengths).
 *
 * @example Loss mask of a padded batch
 * ```ts
 * import { collateSft } from "./sft_batch.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const batch = collateSft([
 *   { ids: [1, 2, 3, 4], promptLength: 2 },
 *   { ids: [1, 5, 6], promptLength: 1 },
 * ], { padId: 0 });
 * deepStrictEqual(batch.inputIds, [[1, 2, 3, 4], [1, 5, 6, 0]]);
 * deepStrictEqual([...batch.lossMask], [0, 1, 1, 1, 1, 0]);
 * ```
 */
export function collateSft(
  sequences: readonly SftSequence[],
  options: CollateSftOptions,
): SftBatch {
  const where = "Cannot collate SFT batch";
  if (sequences.length === 0) {
    throw new RangeError(`${where}: there must be at least one sequence: current count is 0`);
  }
  const maxLength = options.maxLength ?? Infinity;
  let seqLen = 0;
  sequences.forEach((s, b) => {
    if (
      !Number.isInteger(s.promptLength) || s.promptLength < 1 || s.promptLength >= s.ids.length
    ) {
      throw new RangeError(
        `${where}: sequence ${b} must have a prompt length in [1, ${s.ids.length - 1}]: current ` +
          `value is ${s.promptLength}`,
      );
    }
    if (s.ids.length > maxLength) {
      throw new RangeError(
        `${where}: sequence ${b} must be at most ${maxLength} tokens (the model's context): ` +
          `current length is ${s.ids.length}`,
      );
    }
    seqLen = Math.max(seqLen, s.ids.length);
  });
  const batch = sequences.length;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  const lossMask = new Float64Array(batch * (seqLen - 1));
  let lossTokens = 0;
  let tokens = 0;
  sequences.forEach((s, b) => {
    const n = s.ids.length;
    inputIds.push([...s.ids, ...new Array<number>(seqLen - n).fill(options.padId)]);
    attentionMask.push(Array.from({ length: seqLen }, (_, t) => (t < n ? 1 : 0)));
    for (let t = s.promptLength - 1; t + 1 < n; t++) lossMask[b * (seqLen - 1) + t] = 1;
    lossTokens += n - s.promptLength;
    tokens += n;
  });
  return { inputIds, attentionMask, lossMask, batch, seqLen, lossTokens, tokens };
}
