// Copyright 2025 the halo authors. MIT license.
/**
 * The prompt templates of the RL trainer and `deno task eval`: the task's own question, DAPO's
 * `Answer:` instruction, the `\boxed{}` instruction of Qwen2.5-Math, or a text with
 * `{question}`. One copy of the texts, so that training and evaluation ask alike.
 *
 * @module
 */

/**
 * The named templates.
 *
 * @example Usage
 * ```ts
 * import { PROMPT_TEMPLATES } from "./prompt_templates.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(PROMPT_TEMPLATES, ["task", "dapo", "boxed"]);
 * ```
 */
export const PROMPT_TEMPLATES: readonly string[] = Object.freeze(["task", "dapo", "boxed"]);

/**
 * Options of {@linkcode renderTemplate}.
 *
 * @example Usage
 * ```ts
 * import type { RenderTemplateOptions } from "./prompt_templates.ts";
 *
 * const options: RenderTemplateOptions = { key: "--template", allowCustom: true };
 * ```
 */
export interface RenderTemplateOptions {
  /** The config key or flag named in errors; default `"template"`. */
  key?: string;
  /** Accept any text containing `{question}` as the template itself; default `false`. */
  allowCustom?: boolean;
}

/** Part of the `dapo` instruction that marks a question already holding it. */
const DAPO_MARK = "The last line of your response should be of the form Answer: $Answer";
/** Part of the `boxed` instruction that marks a question already holding it. */
const BOXED_MARK = "put your final answer within \\boxed{}";

/** Whether the question holds the instruction's mark (whitespace runs as one space). */
function holdsInstruction(question: string, mark: string): boolean {
  return question.replace(/\s+/g, " ").includes(mark);
}

/**
 * The user message of a question under a template: `"task"` leaves it as it is; `"dapo"` wraps
 * it in DAPO-Math-17k's instruction (answer on a last line `Answer: …`); `"boxed"` appends the
 * `\boxed{}` instruction of Qwen2.5-Math; with `allowCustom`, any other text containing
 * `{question}` is used as the template itself. A question that already holds the named
 * template's instruction (DAPO-Math-17k's prompts hold DAPO's) is left as it is, so that the
 * instruction appears once.
 *
 * @param question The question.
 * @param template A named template, or (with `allowCustom`) a text with `{question}`.
 * @param options The key named in errors and whether custom texts are allowed.
 * @returns The user message.
 * @throws {RangeError} When the template is none of these (the message names the key).
 *
 * @example The three named templates and a custom one
 * ```ts
 * import { renderTemplate } from "./prompt_templates.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(renderTemplate("2 + 2?", "task"), "2 + 2?");
 * assert.ok(renderTemplate("2 + 2?", "dapo").includes("Answer: $Answer"));
 * assert.ok(renderTemplate("2 + 2?", "boxed").endsWith("within \\boxed{}."));
 * assert.equal(renderTemplate("2 + 2?", "Q: {question}\nA:", { allowCustom: true }), "Q: 2 + 2?\nA:");
 * const dapo = renderTemplate("2 + 2?", "dapo");
 * assert.equal(renderTemplate(dapo, "dapo"), dapo); // a DAPO-Math-17k prompt: the instruction once
 * assert.throws(() => renderTemplate("2 + 2?", "fancy", { key: "rl.template" }), /rl\.template/);
 * ```
 */
export function renderTemplate(
  question: string,
  template: string,
  options: RenderTemplateOptions = {},
): string {
  switch (template) {
    case "task":
      return question;
    case "dapo":
      // DAPO-Math-17k's prompts hold the instruction already: not a second time.
      if (holdsInstruction(question, DAPO_MARK)) return question;
      return "Solve the following math problem step by step. The last line of your response " +
        "should be of the form Answer: $Answer (without quotes) where $Answer is the answer to " +
        `the problem.\n\n${question}\n\nRemember to put your answer on its own line after ` +
        '"Answer:".';
    case "boxed":
      if (holdsInstruction(question, BOXED_MARK)) return question;
      return `${question}\nPlease reason step by step, and put your final answer within \\boxed{}.`;
    default: {
      if (options.allowCustom && template.includes("{question}")) {
        return template.replaceAll("{question}", question);
      }
      const key = options.key ?? "template";
      const custom = options.allowCustom ? " or a text with {question}" : "";
      throw new RangeError(
        `Cannot render a prompt: ${key} must be "task", "dapo" or "boxed"${custom}: current ` +
          `value is ${JSON.stringify(template)}`,
      );
    }
  }
}
