// Copyright 2025 the halo authors. MIT license.
/**
 * Reading a math problem's question and gold answer out of a dataset row, shared by the RL
 * trainer's prompt files (`trainer/rl/prompt_data.ts`) and `deno task eval`'s problem files
 * (`eval/eval_data.ts`): dotted field paths, chat-list questions, GSM8K `#### N` golds.
 *
 * @module
 */

/**
 * The value at a dotted path of a parsed row (`"reward_model.ground_truth"`), or `undefined`
 * when a step is missing or not an object.
 *
 * @param row A parsed JSON or Parquet row.
 * @param path Keys joined by dots.
 * @returns The value there, or `undefined`.
 *
 * @example DAPO-Math-17k's gold
 * ```ts
 * import { fieldAt } from "./problem_fields.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(fieldAt({ reward_model: { ground_truth: "4" } }, "reward_model.ground_truth"), "4");
 * assert.equal(fieldAt({ answer: "4" }, "reward_model.ground_truth"), undefined);
 * ```
 */
export function fieldAt(row: unknown, path: string): unknown {
  let node = row;
  for (const key of path.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/**
 * The text of a question field: a string, or a chat (a list of `{role, content}`, as
 * DAPO-Math-17k's `prompt`) whose last user message is taken; `null` for anything else.
 *
 * @param value The field's value.
 * @returns The question, or `null`.
 *
 * @example A chat-list question
 * ```ts
 * import { questionText } from "./problem_fields.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(questionText([{ role: "system", content: "Be brief." }, { role: "user", content: "1 + 1?" }]), "1 + 1?");
 * assert.equal(questionText(42), null);
 * ```
 */
export function questionText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    for (let i = value.length - 1; i >= 0; i--) {
      const m = value[i] as { role?: unknown; content?: unknown };
      if (m?.role === "user" && typeof m.content === "string") return m.content;
    }
  }
  return null;
}

/**
 * The gold of an answer field: a string (trimmed) or a finite number; a worked solution ending
 * in GSM8K's `#### N` line is reduced to `N`; `null` for anything else.
 *
 * @param value The field's value.
 * @returns The gold answer, or `null`.
 *
 * @example A GSM8K solution
 * ```ts
 * import { goldText } from "./problem_fields.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(goldText("16 - 3 - 4 = 9 eggs.\n#### 18"), "18");
 * assert.equal(goldText(7), "7");
 * assert.equal(goldText(null), null);
 * ```
 */
export function goldText(value: unknown): string | null {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string") return null;
  const at = value.lastIndexOf("####");
  return at === -1 ? value.trim() : value.slice(at + 4).trim();
}
