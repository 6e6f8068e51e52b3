/**
 * The chat template's end-of-turn token (`<|im_end|>` for Qwen3's ChatML), found by rendering a
 * short conversation: a prompt rendered through the template makes the model close its answer
 * with that token, so generation should stop there even when the checkpoint's EOS is another id
 * (Qwen3-*-Base: `<|endoftext|>`).
 *
 * @module
 */
import type { Tokenizer } from "./tokenizer.ts";

/** The assistant message of the probe conversation (found again in the rendered text). */
const PROBE = "halo end-of-turn probe 7";

/**
 * The id of the special token the chat template writes right after an assistant message (after
 * any whitespace): `<|im_end|>` for Qwen3, `<|eot_id|>` for Llama 3. It renders a user turn and
 * an assistant turn (thinking off, no generation prompt), looks at what follows the assistant's
 * text, and takes its first token when that token is a special token of the tokenizer (skipped
 * by `decode(…, { skipSpecialTokens: true })`). `null` when the template does not render the
 * probe, or writes something else after it (plain text, or nothing).
 *
 * @param tokenizer The tokenizer with its chat template.
 * @returns The end-of-turn id, or `null`.
 *
 * @example The arithmetic tokenizer's ChatML template
 * ```ts
 * import { endOfTurnTokenId } from "./end_of_turn.ts";
 * import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "./tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const id = endOfTurnTokenId(tokenizer);
 * strictEqual(id === null ? null : tokenizer.decode([id]), "<|im_end|>");
 * ```
 */
export function endOfTurnTokenId(tokenizer: Tokenizer): number | null {
  let text: string;
  try {
    text = tokenizer.applyChatTemplate(
      [{ role: "user", content: "1 + 1?" }, { role: "assistant", content: PROBE }],
      { addGenerationPrompt: false, enableThinking: false },
    );
  } catch {
    return null; // no template, or one that refuses this conversation
  }
  const at = text.lastIndexOf(PROBE);
  if (at < 0) return null;
  const rest = text.slice(at + PROBE.length).trimStart();
  if (rest === "") return null;
  const id = tokenizer.encode(rest, { addSpecialTokens: false })[0];
  if (id === undefined) return null;
  const literal = tokenizer.decode([id]);
  if (literal === "" || !rest.startsWith(literal)) return null;
  return tokenizer.decode([id], { skipSpecialTokens: true }) === "" ? id : null;
}
