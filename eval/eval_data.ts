// Copyright 2025 the halo authors. MIT license.
/**
 * The problems and prompt templates of `deno task eval`: the bundled GSM8K test set (1319) and
 * MATH-500 (500, with subject and level) in `data/math/`, the arithmetic task's held-out split, or
 * any JSONL file; and the `\boxed{}`, DAPO `Answer:` and task templates.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { basename } from "node:path";
import { arithmeticDataset, type ArithmeticTaskOptions } from "../data/arithmetic_task.ts";
import { goldText, questionText } from "../data/problem_fields.ts";
import { renderTemplate } from "../data/prompt_templates.ts";

/**
 * One evaluation problem.
 *
 * @example Usage
 * ```ts
 * import type { EvalProblem } from "./eval_data.ts";
 *
 * const problem: EvalProblem = {
 *   id: "test/algebra/1.json", question: "Solve $x + 1 = 2$.", gold: "1",
 *   subject: "Algebra", level: 1,
 * };
 * ```
 */
export interface EvalProblem {
  /** Unique within the data set; also the key of its sampling seed. */
  id: string;
  /** The question, before any template. */
  question: string;
  /** The gold answer as the verifier reads it. */
  gold: string;
  /** MATH-500 subject, when the data has one. */
  subject?: string;
  /** MATH-500 level, when the data has one. */
  level?: number;
}

/**
 * The data sets built in by name.
 *
 * @example Usage
 * ```ts
 * import { EVAL_DATASETS } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(EVAL_DATASETS.includes("math500"));
 * ```
 */
export const EVAL_DATASETS: readonly string[] = Object.freeze(["gsm8k", "math500", "arithmetic"]);

/**
 * The named templates: `boxed`, `dapo` and `task`.
 *
 * @example Usage
 * ```ts
 * import { EVAL_TEMPLATES } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(EVAL_TEMPLATES, ["boxed", "dapo", "task"]);
 * ```
 */
export const EVAL_TEMPLATES: readonly string[] = Object.freeze(["boxed", "dapo", "task"]);

/**
 * Settings of the arithmetic problems of `--data arithmetic`: the task of the bundled
 * `models/arithmetic-tiny` (`digits: 1`, `maxTerms: 3`, `mulDigits: 1`, all operators, seed 0),
 * held-out split.
 *
 * @example Usage
 * ```ts
 * import { ARITHMETIC_EVAL_TASK } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ARITHMETIC_EVAL_TASK.maxTerms, 3);
 * ```
 */
export const ARITHMETIC_EVAL_TASK: Readonly<ArithmeticTaskOptions> = Object.freeze({
  seed: 0,
  digits: 1,
  maxTerms: 3,
  mulDigits: 1,
  ops: Object.freeze(["+", "-", "*"] as const),
});

/**
 * Problems of `--data arithmetic` when no `limit` is given.
 *
 * @example Usage
 * ```ts
 * import { ARITHMETIC_EVAL_SIZE } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ARITHMETIC_EVAL_SIZE, 200);
 * ```
 */
export const ARITHMETIC_EVAL_SIZE = 200;

/**
 * Options of {@linkcode loadEvalProblems}.
 *
 * @example Usage
 * ```ts
 * import type { LoadEvalProblemsOptions } from "./eval_data.ts";
 *
 * const options: LoadEvalProblemsOptions = { limit: 50 };
 * ```
 */
export interface LoadEvalProblemsOptions {
  /** Keep the first this many problems (a positive integer); default all (arithmetic: 200). */
  limit?: number;
  /**
   * Told how many repeated problems a file held (same question up to whitespace and same gold,
   * as verl's aime-2024.parquet repeats each of its 30 problems 32 times): they are dropped, the
   * first of each kept, before `limit`. Default: not told.
   */
  onRepeats?: (repeats: number, rows: number) => void;
}

const BUNDLED: Record<string, { path: string; question: string; answer: string; prefix: string }> =
  {
    gsm8k: {
      path: "../data/math/gsm8k/test.jsonl",
      question: "question",
      answer: "answer",
      prefix: "gsm8k/test/",
    },
    math500: {
      path: "../data/math/math500/test.jsonl",
      question: "problem",
      answer: "answer",
      prefix: "math500/",
    },
  };

/**
 * Options of {@linkcode parseEvalJsonl}.
 *
 * @example Usage
 * ```ts
 * import type { ParseEvalJsonlOptions } from "./eval_data.ts";
 *
 * const options: ParseEvalJsonlOptions = { source: "my.jsonl", idPrefix: "my/" };
 * ```
 */
export interface ParseEvalJsonlOptions {
  /** Named in errors; default `"<jsonl>"`. */
  source?: string;
  /** Prefix of the ids made from line numbers (rows without `unique_id` or `id`); default `""`. */
  idPrefix?: string;
  /** The question field; default the first of `question`, `problem`, `prompt` present. */
  questionField?: string;
  /** The gold field; default the first of `answer`, `gold`, `ground_truth` present. */
  answerField?: string;
}

/**
 * Parses JSONL problems: one object per non-empty line. The question is read from `question`,
 * `problem` or `prompt` (a string, or a chat list whose last user message is taken), the gold
 * from `answer`, `gold` or `ground_truth` (a string or number; a GSM8K solution ending in
 * `#### N` gives `N`), the id from `unique_id` or `id` (else the zero-padded line number), and
 * `subject` and `level` when present.
 *
 * @param text The file's text.
 * @param options The source named in errors, the id prefix and field names.
 * @returns The problems in file order.
 * @throws {SyntaxError} When a line is not JSON, lacks a question or gold, its question is empty,
 * or an id repeats (the message names the file and line).
 *
 * @example GSM8K-style rows
 * ```ts
 * import { parseEvalJsonl } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * const text = '{"question": "1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n';
 * assert.deepEqual(parseEvalJsonl(text, { idPrefix: "toy/" }), [
 *   { id: "toy/000001", question: "1 + 1?", gold: "2" },
 * ]);
 * ```
 */
export function parseEvalJsonl(text: string, options: ParseEvalJsonlOptions = {}): EvalProblem[] {
  const source = options.source ?? "<jsonl>";
  const out: EvalProblem[] = [];
  const ids = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const where = `Cannot read problems "${source}": line ${i + 1}`;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch (error) {
      throw new SyntaxError(`${where} is not JSON: ${(error as Error).message}`);
    }
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new SyntaxError(`${where} is not a JSON object`);
    }
    const qField = options.questionField ??
      ["question", "problem", "prompt"].find((f) => f in row) ?? "question";
    const aField = options.answerField ??
      ["answer", "gold", "ground_truth"].find((f) => f in row) ?? "answer";
    const question = questionText(row[qField]);
    if (question === null) {
      throw new SyntaxError(`${where}: field "${qField}" must be a string or a chat list`);
    }
    if (question.trim() === "") {
      throw new SyntaxError(`${where}: field "${qField}" is empty: expected the question's text`);
    }
    const gold = goldText(row[aField]);
    if (gold === null) {
      throw new SyntaxError(`${where}: field "${aField}" must be a string or a number`);
    }
    const rawId = row.unique_id ?? row.id;
    const id = typeof rawId === "string" || typeof rawId === "number"
      ? `${options.idPrefix ?? ""}${rawId}`
      : `${options.idPrefix ?? ""}${String(i + 1).padStart(6, "0")}`;
    if (ids.has(id)) throw new SyntaxError(`${where}: id "${id}" appears twice`);
    ids.add(id);
    const problem: EvalProblem = { id, question, gold };
    if (typeof row.subject === "string") problem.subject = row.subject;
    if (Number.isInteger(row.level)) problem.level = row.level as number;
    out.push(problem);
  }
  return out;
}

/**
 * The file of `--data`: the bundled file of `"gsm8k"` (`data/math/gsm8k/test.jsonl`) and
 * `"math500"`, the path itself for a `.jsonl` file, `null` for `"arithmetic"` (generated) or an
 * unknown name.
 *
 * @param data A data set name or a `.jsonl` path.
 * @returns The file, or `null`.
 *
 * @example Usage
 * ```ts
 * import { evalDataPath } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(evalDataPath("gsm8k")!.endsWith("data/math/gsm8k/test.jsonl"));
 * assert.equal(evalDataPath("mine.jsonl"), "mine.jsonl");
 * assert.equal(evalDataPath("arithmetic"), null);
 * ```
 */
export function evalDataPath(data: string): string | null {
  const bundled = BUNDLED[data];
  if (bundled !== undefined) return fileURLToPath(new URL(bundled.path, import.meta.url));
  return data.endsWith(".jsonl") ? data : null;
}

/**
 * Loads the problems of `--data`: `"gsm8k"` and `"math500"` (the bundled test sets in
 * `data/math/`), `"arithmetic"` (the held-out split of the arithmetic task with the settings of
 * the bundled model, {@linkcode ARITHMETIC_EVAL_TASK}; 200 problems unless `limit`), or a path to
 * a JSONL file (see {@linkcode parseEvalJsonl}). Needs `--allow-read`.
 *
 * @param data A data set name or a `.jsonl` path.
 * @param options The number of problems to keep.
 * @returns The problems, in the data set's order.
 * @throws {RangeError} When `data` is neither a known name nor a `.jsonl` path, or `limit` is not
 * a positive integer.
 * @throws {Deno.errors.NotFound} When the file does not exist (the message names it).
 *
 * @example The first three MATH-500 problems
 * ```ts
 * import { loadEvalProblems } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * const problems = await loadEvalProblems("math500", { limit: 3 });
 * assert.equal(problems.length, 3);
 * assert.equal(problems[0].id, "math500/test/precalculus/807.json");
 * assert.equal(problems[0].subject, "Precalculus");
 * ```
 */
export async function loadEvalProblems(
  data: string,
  options: LoadEvalProblemsOptions = {},
): Promise<EvalProblem[]> {
  const limit = options.limit;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new RangeError(
      `Cannot load problems: --limit must be a positive integer: current value is ${limit}`,
    );
  }
  if (data === "arithmetic") {
    const size = limit ?? ARITHMETIC_EVAL_SIZE;
    return arithmeticDataset("eval", { ...ARITHMETIC_EVAL_TASK, size }).map((e, i) => ({
      id: `arithmetic/eval/${String(i).padStart(6, "0")}`,
      question: e.prompt,
      gold: e.answer,
    }));
  }
  const bundled = BUNDLED[data];
  let path: string;
  let parseOptions: ParseEvalJsonlOptions;
  if (bundled !== undefined) {
    path = evalDataPath(data)!;
    parseOptions = {
      source: path,
      idPrefix: bundled.prefix,
      questionField: bundled.question,
      answerField: bundled.answer,
    };
  } else if (data.endsWith(".jsonl")) {
    path = data;
    parseOptions = { source: path, idPrefix: `${basename(path, ".jsonl")}/` };
  } else {
    throw new RangeError(
      `Cannot load problems: --data must be one of ${
        EVAL_DATASETS.map((d) => `"${d}"`).join(", ")
      } or a .jsonl file: current value is "${data}"`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot load problems: --data file "${path}" not found`);
    }
    throw error;
  }
  const parsed = parseEvalJsonl(text, parseOptions);
  // A repeated problem would be scored as many times as it appears (and narrow the interval):
  // the first of each is kept, keyed as trainer/rl/prompt_data.ts uniquePrompts keys prompts.
  const seen = new Set<string>();
  const problems = parsed.filter((p) => {
    const key = `${p.question.replace(/\s+/g, " ").trim()}\u0000${p.gold.trim()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (problems.length < parsed.length) {
    options.onRepeats?.(parsed.length - problems.length, parsed.length);
  }
  return limit === undefined ? problems : problems.slice(0, limit);
}

/**
 * The template used when `--template` is not given: `task` for arithmetic (the bundled model
 * was trained on the bare question), `boxed` otherwise.
 *
 * @param data The `--data` value.
 * @returns The template name.
 *
 * @example Usage
 * ```ts
 * import { defaultTemplate } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultTemplate("math500"), "boxed");
 * assert.equal(defaultTemplate("arithmetic"), "task");
 * ```
 */
export function defaultTemplate(data: string): string {
  return data === "arithmetic" ? "task" : "boxed";
}

/**
 * The user message of a question under a template: `"task"` leaves it as it is; `"dapo"` wraps
 * it in DAPO-Math-17k's instruction (answer on a last line `Answer: …`); `"boxed"` appends the
 * `\boxed{}` instruction of Qwen2.5-Math; any other text containing `{question}` is used as the
 * template itself. The texts are those of `data/prompt_templates.ts`, shared with the RL trainer.
 *
 * @param question The question.
 * @param template `"boxed"`, `"dapo"`, `"task"`, or a text with `{question}`.
 * @returns The user message.
 * @throws {RangeError} When the template is none of these (the message names `--template`).
 *
 * @example Usage
 * ```ts
 * import { evalTemplateMessage } from "./eval_data.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(evalTemplateMessage("What is 2 + 2?", "boxed").endsWith("within \\boxed{}."));
 * assert.equal(evalTemplateMessage("2 + 2?", "Q: {question}\nA:"), "Q: 2 + 2?\nA:");
 * ```
 */
export function evalTemplateMessage(question: string, template: string): string {
  return renderTemplate(question, template, { key: "--template", allowCustom: true });
}
