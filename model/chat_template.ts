/**
 * Finding and rendering HuggingFace chat templates (Jinja) with `@huggingface/jinja`.
 *
 * {@linkcode resolveChatTemplate} picks the template out of a parsed `tokenizer_config.json`, and
 * {@linkcode compileChatTemplate} parses it once into a render function. Both name the file they
 * read in every error. `model/tokenizer.ts` builds the variables (messages, `add_generation_prompt`,
 * `enable_thinking`, special tokens) the way transformers does.
 *
 * @module
 */

import { Template } from "@huggingface/jinja";

/**
 * Renders a compiled chat template with the given Jinja variables.
 *
 * @example Usage
 * ```ts
 * import { compileChatTemplate, type RenderChatTemplate } from "./chat_template.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const render: RenderChatTemplate = compileChatTemplate("{{ greeting }}!");
 * strictEqual(render({ greeting: "hi" }), "hi!");
 * ```
 */
export type RenderChatTemplate = (variables: Readonly<Record<string, unknown>>) => string;

/** Options for {@linkcode compileChatTemplate}. */
export interface CompileChatTemplateOptions {
  /** Where the template came from (a file path), named in every error. Default `"chat template"`. */
  source?: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Picks the chat template out of a parsed `tokenizer_config.json`.
 *
 * `chat_template` may be a string, or (older configs) a list of `{name, template}` entries, of
 * which the one named `name` is taken.
 *
 * @param tokenizerConfig The parsed `tokenizer_config.json`.
 * @param options `source` names the file in errors; `name` picks a named template (default
 *   `"default"`).
 * @returns The template text, or `null` when the config has no `chat_template`.
 * @throws {TypeError} When `chat_template` is neither a string nor a list of named templates, or
 *   the named template is missing.
 *
 * @example Usage
 * ```ts
 * import { resolveChatTemplate } from "./chat_template.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(resolveChatTemplate({ chat_template: "{{ x }}" }), "{{ x }}");
 * strictEqual(
 *   resolveChatTemplate({ chat_template: [{ name: "default", template: "{{ y }}" }] }),
 *   "{{ y }}",
 * );
 * strictEqual(resolveChatTemplate({}), null);
 * ```
 */
export function resolveChatTemplate(
  tokenizerConfig: unknown,
  options: { source?: string; name?: string } = {},
): string | null {
  const source = options.source ?? "tokenizer_config.json";
  const name = options.name ?? "default";
  if (!isObject(tokenizerConfig)) {
    throw new TypeError(`Cannot load chat template "${source}": expected a JSON object`);
  }
  const value = tokenizerConfig.chat_template;
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (const entry of value) {
      if (isObject(entry) && entry.name === name && typeof entry.template === "string") {
        return entry.template;
      }
    }
    const names = value.flatMap((entry) =>
      isObject(entry) && typeof entry.name === "string" ? [JSON.stringify(entry.name)] : []
    );
    throw new TypeError(
      `Cannot load chat template "${source}": no template named "${name}" in "chat_template" ` +
        `(found ${names.length === 0 ? "none" : names.join(", ")})`,
    );
  }
  throw new TypeError(
    `Cannot load chat template "${source}": "chat_template" must be a string or a list of ` +
      `{name, template}: found ${typeof value}`,
  );
}

/**
 * Parses a Jinja chat template once and returns a function rendering it.
 *
 * @param template The Jinja template text (e.g. Qwen3's `chat_template`).
 * @param options `source` names the template's file in parse and render errors.
 * @returns A function rendering the template with a set of variables.
 * @throws {SyntaxError} When the template does not parse; the message names `source`.
 *
 * @example Usage
 * ```ts
 * import { compileChatTemplate } from "./chat_template.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const render = compileChatTemplate(
 *   "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}" +
 *     "{% if add_generation_prompt %}<assistant>{% endif %}",
 * );
 * const text = render({
 *   messages: [{ role: "user", content: "2+2?" }],
 *   add_generation_prompt: true,
 * });
 * strictEqual(text, "<user>2+2?<assistant>");
 * ```
 */
export function compileChatTemplate(
  template: string,
  options: CompileChatTemplateOptions = {},
): RenderChatTemplate {
  const source = options.source ?? "chat template";
  if (typeof template !== "string") {
    throw new TypeError(`Cannot load chat template "${source}": expected a string`);
  }
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (error) {
    throw new SyntaxError(`Cannot load chat template "${source}": ${message(error)}`, {
      cause: error,
    });
  }
  return (variables: Readonly<Record<string, unknown>>): string => {
    try {
      return compiled.render({ ...variables });
    } catch (error) {
      throw new Error(`Cannot render chat template "${source}": ${message(error)}`, {
        cause: error,
      });
    }
  };
}
