/**
 * RL prompt data: questions with gold answers, from the built-in arithmetic task
 * (deterministic, disjoint train/held-out splits), a JSONL file with configurable field names,
 * or a Parquet file (DAPO-Math-17k's schema: chat `prompt`, `reward_model.ground_truth`); and the
 * duplicate removal, overlap check and content hash that the RL run applies to them
 * (DAPO-Math-17k's parquet repeats each of its ~17.9k prompts about 100 times).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parquetReadObjects } from "hyparquet";
import {
  arithmeticDataset,
  type ArithmeticOptionKeys,
  type ArithmeticTaskOptions,
} from "../../data/arithmetic_task.ts";
import { fieldAt, goldText, questionText } from "../../data/problem_fields.ts";
import { prepareGold } from "../../verify/mod.ts";

/**
 * One RL prompt: the question (before any template) and its gold answer.
 *
 * @example Usage
 * ```ts
 * import type { RlPrompt } from "./prompt_data.ts";
 *
 * const prompt: RlPrompt = { question: "What is 3 + 4?", gold: "7" };
 * ```
 */
export interface RlPrompt {
  /** The question text. */
  question: string;
  /** The gold answer, as the verifier reads it. */
  gold: string;
}

/**
 * Options of {@linkcode arithmeticPrompts}.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticPromptsOptions } from "./prompt_data.ts";
 *
 * const options: ArithmeticPromptsOptions = { size: 100, digits: 1, maxTerms: 3 };
 * ```
 */
export interface ArithmeticPromptsOptions extends ArithmeticTaskOptions {
  /** Number of distinct prompts. */
  size: number;
  /** The config keys an error names for the options, when the split holds too few problems
   * (see `ArithmeticDatasetOptions.keys`). */
  keys?: ArithmeticOptionKeys;
}

/**
 * The arithmetic task's prompts of a split (`arithmeticDataset`: distinct problems, seeded, the
 * held-out split never meets the training one), with the integer answers as gold.
 *
 * @param split `"train"` or `"eval"`.
 * @param options Size, seed and difficulty knobs.
 * @returns The prompts in the dataset's order.
 *
 * @example Held-out prompts
 * ```ts
 * import { arithmeticPrompts } from "./prompt_data.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const prompts = arithmeticPrompts("eval", { size: 3, seed: 0, digits: 1 });
 * strictEqual(prompts.length, 3);
 * ok(prompts[0].question.startsWith("What is "));
 * ```
 */
export function arithmeticPrompts(
  split: "train" | "eval",
  options: ArithmeticPromptsOptions,
): RlPrompt[] {
  return arithmeticDataset(split, options).map((e) => ({ question: e.prompt, gold: e.answer }));
}

/**
 * Options of {@linkcode parseJsonlPrompts}.
 *
 * @example Usage
 * ```ts
 * import type { JsonlPromptsOptions } from "./prompt_data.ts";
 *
 * const gsm8k: JsonlPromptsOptions = { promptField: "question", answerField: "answer" };
 * ```
 */
export interface JsonlPromptsOptions {
  /** Dotted path of the question field (e.g. `"prompt"`, `"extra.question"`). */
  promptField: string;
  /** Dotted path of the gold field (e.g. `"answer"`, `"reward_model.ground_truth"`). */
  answerField: string;
  /** Named in errors. Default `"<jsonl>"`. */
  source?: string;
  /**
   * The file's line (1-based) of each row, for {@linkcode promptsFromRows}: errors then name
   * `line N`; without it they name `row N` (a Parquet row, counted from 1).
   */
  lines?: readonly number[];
  /**
   * Receives the warnings that do not stop the read (some golds unusable, see
   * {@linkcode isUsableGold}); without it they are not reported.
   */
  warnings?: string[];
  /** The config key naming the file, in file errors. Default `"rl.data.path"`. */
  key?: string;
}

/** The file's bytes or text; errors name the file and its config key. */
async function readPromptFile<T>(
  path: string,
  key: string,
  read: (path: string) => Promise<T>,
): Promise<T> {
  const where = `Cannot read prompts "${path}" (key "${key}")`;
  try {
    return await read(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`${where}: file not found`);
    }
    const isDirectory = await Deno.stat(path).then((s) => s.isDirectory, () => false);
    if (isDirectory) throw new TypeError(`${where}: expected a file, found a directory`);
    throw new Error(`${where}: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  }
}

/**
 * Whether the reward verifier can score against a gold: `prepareGold` in reward mode finds an
 * answer it parses. An unusable gold (empty, unparseable, too large) makes every rollout of its
 * prompt `correct: null`, and dynamic sampling skips the group.
 *
 * @param gold The gold answer.
 * @returns `true` when usable.
 *
 * @example An empty gold and a broken one
 * ```ts
 * import { isUsableGold } from "./prompt_data.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(isUsableGold("\\frac{1}{2}"), true);
 * strictEqual(isUsableGold(""), false);
 * strictEqual(isUsableGold("\\frac{1}{"), false);
 * ```
 */
export function isUsableGold(gold: string): boolean {
  return prepareGold(gold, { mode: "reward" }).error === null;
}

/**
 * Prompts from parsed rows (JSONL lines or Parquet rows): the question and the gold read at
 * dotted field paths. A question may be a string or a chat list (the last user message is
 * taken: DAPO-Math-17k's `prompt`); a gold may be a string or number, and a worked solution
 * ending in `#### N` (GSM8K) gives `N`.
 *
 * @param rows The rows.
 * @param options Field paths and the source named in errors.
 * @returns The prompts in row order.
 * Every gold is prepared as the reward verifier would ({@linkcode isUsableGold}): unusable ones
 * are counted in a warning (`options.warnings`), and none usable is an error.
 *
 * @throws {TypeError} When a row lacks a field, it has the wrong type, a question is empty, or
 * no gold is usable (naming the row or line and the key).
 *
 * @example A DAPO-Math-17k row
 * ```ts
 * import { promptsFromRows } from "./prompt_data.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const row = {
 *   prompt: [{ role: "user", content: "Find 2 + 2." }],
 *   reward_model: { ground_truth: "4", style: "rule-lighteval/MATH_v2" },
 * };
 * deepStrictEqual(
 *   promptsFromRows([row], { promptField: "prompt", answerField: "reward_model.ground_truth" }),
 *   [{ question: "Find 2 + 2.", gold: "4" }],
 * );
 * ```
 */
export function promptsFromRows(
  rows: readonly unknown[],
  options: JsonlPromptsOptions,
): RlPrompt[] {
  const source = options.source ?? "<rows>";
  const where = (i: number): string =>
    options.lines === undefined ? `row ${i + 1}` : `line ${options.lines[i]}`;
  const field = `field "${options.answerField}" (key "rl.data.answerField")`;
  // Golds prepared once each: DAPO-Math-17k's parquet repeats each of ~17.9k about 100 times.
  const usable = new Map<string, string | null>();
  const unusable: number[] = [];
  let firstError = "";
  const prompts = rows.map((row, i) => {
    const question = questionText(fieldAt(row, options.promptField));
    if (question === null) {
      throw new TypeError(
        `Cannot read prompts "${source}": ${where(i)}: field "${options.promptField}" ` +
          `(key "rl.data.promptField") must be a string or a chat list with a user message`,
      );
    }
    if (question.trim() === "") {
      throw new TypeError(
        `Cannot read prompts "${source}": ${where(i)}: field "${options.promptField}" ` +
          `(key "rl.data.promptField") is empty: expected the question's text`,
      );
    }
    const gold = goldText(fieldAt(row, options.answerField));
    if (gold === null) {
      throw new TypeError(
        `Cannot read prompts "${source}": ${where(i)}: ${field} must be a string or a number`,
      );
    }
    let error = usable.get(gold);
    if (error === undefined) {
      error = prepareGold(gold, { mode: "reward" }).error;
      usable.set(gold, error);
    }
    if (error !== null) {
      if (unusable.length === 0) {
        const shown = gold.length > 40 ? `${gold.slice(0, 40)}…` : gold;
        firstError = `${where(i)}: ${JSON.stringify(shown)} (${error})`;
      }
      unusable.push(i);
    }
    return { question, gold };
  });
  if (rows.length > 0 && unusable.length === rows.length) {
    throw new TypeError(
      `Cannot read prompts "${source}": none of its ${rows.length} golds in ${field} is ` +
        `usable by the reward verifier (empty or unparseable), e.g. ${firstError}`,
    );
  }
  if (unusable.length > 0) {
    const shown = unusable.slice(0, 10).map((i) => where(i).replace(/^(line|row) /, ""));
    const unit = (options.lines === undefined ? "row" : "line") +
      (unusable.length > 1 ? "s" : "");
    options.warnings?.push(
      `"${source}": ${unusable.length} of ${rows.length} golds in ${field} unusable by the ` +
        `reward verifier (empty or unparseable), at ${unit} ${shown.join(", ")}` +
        `${unusable.length > 10 ? ", …" : ""}; e.g. ${firstError}: their groups are skipped by ` +
        `dynamic sampling and left out of reward/mean and reward/accuracy`,
    );
  }
  return prompts;
}

/**
 * Parses JSONL text into prompts: one JSON object per non-empty line, the question and the gold
 * read at dotted field paths. A question may be a string or a chat list (the last user message
 * is taken: DAPO-Math-17k's `prompt`); a gold may be a string or number, and a worked solution
 * ending in `#### N` (GSM8K) gives `N`. Errors name the file's line (blank lines counted).
 *
 * @param text The file's text.
 * @param options Field paths and the source named in errors.
 * @returns The prompts in file order.
 * @throws {SyntaxError} When a line is not JSON (the message names the source and line).
 * @throws {TypeError} When a line lacks a field, it has the wrong type, a question is empty or no
 * gold is usable.
 *
 * @example GSM8K-style rows
 * ```ts
 * import { parseJsonlPrompts } from "./prompt_data.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const text = '{"question": "1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n';
 * deepStrictEqual(parseJsonlPrompts(text, { promptField: "question", answerField: "answer" }), [
 *   { question: "1 + 1?", gold: "2" },
 * ]);
 * ```
 */
export function parseJsonlPrompts(text: string, options: JsonlPromptsOptions): RlPrompt[] {
  const source = options.source ?? "<jsonl>";
  const rows: unknown[] = [];
  const lines: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line));
      lines.push(i + 1);
    } catch (error) {
      throw new SyntaxError(
        `Cannot read prompts "${source}": line ${i + 1} is not JSON: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  });
  return promptsFromRows(rows, { ...options, source, lines });
}

/**
 * Reads a JSONL prompt file (see {@linkcode parseJsonlPrompts}). Needs `--allow-read`.
 *
 * @param path The file.
 * @param options Field paths.
 * @returns The prompts in file order.
 * @throws {Deno.errors.NotFound} When the file does not exist (the message names it and its key).
 * @throws {TypeError} When the path is a directory.
 * @throws {RangeError} When the file holds no prompts.
 *
 * @example The bundled GSM8K test set
 * ```ts
 * import { readJsonlPrompts } from "./prompt_data.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const prompts = await readJsonlPrompts("data/math/gsm8k/test.jsonl", {
 *   promptField: "question", answerField: "answer",
 * });
 * strictEqual(prompts.length, 1319);
 * strictEqual(prompts[0].gold, "18");
 * ```
 */
export async function readJsonlPrompts(
  path: string,
  options: Omit<JsonlPromptsOptions, "source" | "lines">,
): Promise<RlPrompt[]> {
  const text = await readPromptFile(path, options.key ?? "rl.data.path", Deno.readTextFile);
  const prompts = parseJsonlPrompts(text, { ...options, source: path });
  if (prompts.length === 0) {
    throw new RangeError(
      `Cannot read prompts "${path}" (key "${options.key ?? "rl.data.path"}"): the file holds no ` +
        `prompts (expected JSON objects, one a line)`,
    );
  }
  return prompts;
}

/**
 * Reads a Parquet prompt file (e.g. DAPO-Math-17k: `promptField: "prompt"`, `answerField:
 * "reward_model.ground_truth"`) with hyparquet; see {@linkcode promptsFromRows}. Needs
 * `--allow-read`.
 *
 * @param path The file.
 * @param options Field paths.
 * @returns The prompts in row order.
 * @throws {Deno.errors.NotFound} When the file does not exist (the message names it and its key).
 * @throws {TypeError} When the path is a directory or the file is not Parquet.
 * @throws {RangeError} When the file holds no rows.
 *
 * @example A two-row file in DAPO-Math-17k's schema
 * ```ts
 * import { readParquetPrompts } from "./prompt_data.ts";
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".parquet" });
 * await Deno.writeFile(path, new Uint8Array(parquetWriteBuffer({
 *   columnData: [
 *     { name: "prompt", type: "JSON", data: [[{ role: "user", content: "1 + 1?" }], [{ role: "user", content: "2 + 2?" }]] },
 *     { name: "reward_model", type: "JSON", data: [{ ground_truth: "2" }, { ground_truth: "4" }] },
 *   ],
 * })));
 * const prompts = await readParquetPrompts(path, {
 *   promptField: "prompt", answerField: "reward_model.ground_truth",
 * });
 * deepStrictEqual(prompts.map((p) => p.gold), ["2", "4"]);
 * await Deno.remove(path);
 * ```
 */
export async function readParquetPrompts(
  path: string,
  options: Omit<JsonlPromptsOptions, "source" | "lines">,
): Promise<RlPrompt[]> {
  const key = options.key ?? "rl.data.path";
  const bytes = await readPromptFile(path, key, Deno.readFile);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: file as ArrayBuffer });
  } catch (error) {
    throw new TypeError(
      `Cannot read prompts "${path}" (key "${key}"): not a Parquet file: ${
        error instanceof Error ? error.message : error
      }`,
      { cause: error },
    );
  }
  if (rows.length === 0) {
    throw new RangeError(`Cannot read prompts "${path}" (key "${key}"): the file holds no rows`);
  }
  return promptsFromRows(rows, { ...options, source: path });
}

/**
 * The key two prompts are duplicates by: the question with its whitespace runs collapsed to one
 * space and trimmed. {@linkcode uniquePrompts} keys by this and the trimmed gold.
 *
 * @param question The question text.
 * @returns The normalised question.
 *
 * @example Whitespace does not tell prompts apart
 * ```ts
 * import { normalizeQuestion } from "./prompt_data.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(normalizeQuestion("  What is\n2 +  2? "), "What is 2 + 2?");
 * ```
 */
export function normalizeQuestion(question: string): string {
  return question.replace(/\s+/g, " ").trim();
}

/**
 * Result of {@linkcode uniquePrompts}.
 *
 * @example Usage
 * ```ts
 * import type { UniquePrompts } from "./prompt_data.ts";
 *
 * const unique: UniquePrompts = { prompts: [{ question: "1 + 1?", gold: "2" }], rows: 3 };
 * ```
 */
export interface UniquePrompts {
  /** The first occurrence of each prompt, in the input's order. */
  prompts: RlPrompt[];
  /** How many prompts came in (rows of the file). */
  rows: number;
}

/**
 * Drops repeated prompts: two prompts are the same when their normalised questions
 * ({@linkcode normalizeQuestion}) and trimmed golds are equal; the first occurrence is kept, in
 * the input's order. DAPO-Math-17k's parquet holds 1.79M rows of ~17.9k prompts (each about
 * 100 times), verl's aime-2024.parquet 30 problems × 32.
 *
 * @param prompts The prompts, in file order.
 * @returns The unique prompts and the number of rows.
 *
 * @example A file that repeats its prompts
 * ```ts
 * import { uniquePrompts } from "./prompt_data.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const a = { question: "1 + 1?", gold: "2" };
 * const b = { question: "2 + 2?", gold: "4" };
 * const unique = uniquePrompts([a, b, { question: " 1 + 1? ", gold: "2" }, b]);
 * deepStrictEqual(unique.prompts, [a, b]);
 * strictEqual(unique.rows, 4);
 * ```
 */
export function uniquePrompts(prompts: readonly RlPrompt[]): UniquePrompts {
  const seen = new Set<string>();
  const out: RlPrompt[] = [];
  for (const p of prompts) {
    const key = `${normalizeQuestion(p.question)}\u0000${p.gold.trim()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return { prompts: out, rows: prompts.length };
}

/**
 * The held-out prompts whose question (normalised, {@linkcode normalizeQuestion}; the gold
 * aside) is also a training prompt's.
 *
 * @param heldOut The held-out prompts.
 * @param train The training prompts.
 * @returns The held-out prompts also in training, in the held-out order.
 *
 * @example One question in both
 * ```ts
 * import { promptOverlap } from "./prompt_data.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const train = [{ question: "1 + 1?", gold: "2" }, { question: "2 + 2?", gold: "4" }];
 * const heldOut = [{ question: "3 + 3?", gold: "6" }, { question: "2 +  2?", gold: "4" }];
 * deepStrictEqual(promptOverlap(heldOut, train), [heldOut[1]]);
 * ```
 */
export function promptOverlap(
  heldOut: readonly RlPrompt[],
  train: readonly RlPrompt[],
): RlPrompt[] {
  const questions = new Set(train.map((p) => normalizeQuestion(p.question)));
  return heldOut.filter((p) => questions.has(normalizeQuestion(p.question)));
}

/**
 * The SHA-256 (lowercase hex) of a prompt list, questions and golds in order: what a checkpoint
 * records of its data, so that a resume on other prompts (a file changed at the same path, or
 * read before duplicates were removed) is refused rather than reshuffled.
 *
 * @param prompts The prompts.
 * @returns 64 hex digits.
 *
 * @example Order matters
 * ```ts
 * import { promptsSha256 } from "./prompt_data.ts";
 * import { notStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const a = { question: "1 + 1?", gold: "2" };
 * const b = { question: "2 + 2?", gold: "4" };
 * strictEqual(promptsSha256([a, b]).length, 64);
 * notStrictEqual(promptsSha256([a, b]), promptsSha256([b, a]));
 * ```
 */
export function promptsSha256(prompts: readonly RlPrompt[]): string {
  const hash = createHash("sha256");
  for (const p of prompts) hash.update(`${JSON.stringify([p.question, p.gold])}\n`);
  return hash.digest("hex");
}
