/**
 * Prompt templates of the RL trainer: the task's own question, DAPO's `Answer:` instruction, or
 * a `\boxed{}` instruction, rendered through the tokenizer's chat template as one user turn.
 *
 * @module
 */
import type { Tokenizer } from "../../model/tokenizer.ts";
import type { RlTemplate } from "./config.ts";
import { renderTemplate } from "../../data/prompt_templates.ts";

/**
 * The user message of a question under a template: `"task"` leaves it as it is; `"dapo"` wraps
 * it in DAPO-Math-17k's instruction (answer on a last line `Answer: …`); `"boxed"` appends the
 * usual `\boxed{}` instruction (Qwen2.5-Math's). The texts are those of
 * `data/prompt_templates.ts`, shared with `deno task eval`.
 *
 * @param question The question.
 * @param template The template.
 * @returns The user message.
 *
 * @example DAPO's instruction
 * ```ts
 * import { templateMessage } from "./prompt_template.ts";
 * import { ok } from "node:assert/strict";
 *
 * const text = templateMessage("What is 2 + 2?", "dapo");
 * ok(text.includes("Answer: $Answer") && text.includes("What is 2 + 2?"));
 * ```
 */
export function templateMessage(question: string, template: RlTemplate): string {
  return renderTemplate(question, template, { key: 'key "rl.template"' });
}

/**
 * Token ids of a question's prompt: the template's user message through the tokenizer's chat
 * template with the assistant header appended (`encodeChat`). Qwen3's thinking mode is off
 * unless `enableThinking` (`rl.enableThinking`): off, the prompt ends with an empty
 * `<think>\n\n</think>\n\n` block.
 *
 * @param tokenizer The model's tokenizer.
 * @param question The question.
 * @param options The template, and the chat template's `enable_thinking` (default `false`).
 * @returns The prompt ids.
 *
 * @example The arithmetic task's own prompt
 * ```ts
 * import { promptIds } from "./prompt_template.ts";
 * import { arithmeticTokenizerFiles } from "../../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const ids = promptIds(tokenizer, "What is 1 + 2?", { template: "task" });
 * strictEqual(
 *   tokenizer.decode(ids),
 *   "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n",
 * );
 * ```
 */
export function promptIds(
  tokenizer: Tokenizer,
  question: string,
  options: { template: RlTemplate; enableThinking?: boolean },
): number[] {
  return tokenizer.encodeChat(
    [{ role: "user", content: templateMessage(question, options.template) }],
    { addGenerationPrompt: true, enableThinking: options.enableThinking ?? false },
  );
}
