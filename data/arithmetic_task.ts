/**
 * A built-in verifiable math task: integer arithmetic (`+`, `-`, `*`, with one or more
 * operations) with a short worked solution that ends in `Answer: N`.
 *
 * Examples are generated from a seed by a counter-based generator (no `Math.random`): example
 * `index` of a split is a pure function of `(seed, split, index)` and the difficulty knobs, so a
 * run resumes from a data position alone. The train and held-out ("eval") splits never overlap:
 * a problem belongs to the split chosen by a hash of its expression (independent of the seed), and
 * each split only keeps the problems that hash into it.
 *
 * The answer is a plain integer string (`"432"`, `"-40"`): a completion is correct when the
 * integer after its last `Answer:` equals it.
 *
 * @example Generate, format and check one example
 * ```ts
 * import { arithmeticExample, formatExample } from "./arithmetic_task.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const example = arithmeticExample("train", 0, { seed: 1, digits: 2, ops: ["+", "*"] });
 * ok(example.prompt.startsWith("What is "));
 * ok(example.solution.endsWith(`Answer: ${example.answer}`));
 * const { prompt, completion } = formatExample(example);
 * strictEqual(prompt, `<|im_start|>user\n${example.prompt}<|im_end|>\n<|im_start|>assistant\n`);
 * strictEqual(completion, `${example.solution}<|im_end|>`);
 * ```
 *
 * @module
 */

import { fmix32, mixNumber, mulberry32 } from "../internal/random.ts";
import { show as showCut } from "../internal/show.ts";

/** Values in full: this module's messages never cut them. */
const show = (value: unknown): string => showCut(value, { maxLength: Infinity });

/** An operator the task can use. */
export type ArithmeticOp = "+" | "-" | "*";

/** A split of the task: `"train"` for training, `"eval"` for the held-out problems. */
export type ArithmeticSplit = "train" | "eval";

/**
 * One problem with its worked solution.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticExample } from "./arithmetic_task.ts";
 *
 * const example: ArithmeticExample = {
 *   prompt: "What is 12 + 7 * 3?",
 *   solution: "7 * 3 = 21\n12 + 21 = 33\nAnswer: 33",
 *   answer: "33",
 * };
 * ```
 */
export interface ArithmeticExample {
  /** The question, e.g. `"What is 12 + 7 * 3?"`. */
  prompt: string;
  /**
   * The worked solution: one line `a op b = c` per operation (multiplications first, then left
   * to right), then `Answer: N`.
   */
  solution: string;
  /** The integer result in decimal, e.g. `"33"` or `"-40"`; compare as an integer. */
  answer: string;
}

/**
 * The difficulty knobs and seed of the task.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticTaskOptions } from "./arithmetic_task.ts";
 *
 * const hard: ArithmeticTaskOptions = { seed: 7, digits: 3, ops: ["+", "-", "*"], maxTerms: 3 };
 * ```
 */
export interface ArithmeticTaskOptions {
  /** Seed of the generator, a non-negative safe integer. Default `0`. */
  seed?: number;
  /**
   * Most digits of an operand, 1 to 6. Each operand first draws its digit count uniformly from
   * `1..digits`, so easy problems stay in the mix. Default `2`.
   */
  digits?: number;
  /** The operators to draw from, uniformly; non-empty, no repeats. Default `["+", "-", "*"]`. */
  ops?: readonly ArithmeticOp[];
  /**
   * Most operands of a problem, 2 to 4 (so 1 to 3 operations); the count is drawn uniformly from
   * `2..maxTerms`. Default `2`.
   */
  maxTerms?: number;
  /** Most digits of the right operand of `*`, 1 to 3 (and at most `digits`). Default `1`. */
  mulDigits?: number;
  /**
   * Share of all problems that belong to the held-out split, in `(0, 1)`. Both splits must use
   * the same value to stay disjoint. Default `0.1`.
   */
  heldOutFraction?: number;
}

/**
 * Options of {@linkcode arithmeticDataset}: the task options plus the number of examples.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticDatasetOptions } from "./arithmetic_task.ts";
 *
 * const evalSet: ArithmeticDatasetOptions = { size: 200, digits: 2 };
 * ```
 */
export interface ArithmeticDatasetOptions extends ArithmeticTaskOptions {
  /** How many distinct examples to return, a positive integer. */
  size: number;
}

/**
 * An example rendered for training with the chat template of the arithmetic tokenizer.
 *
 * @example Usage
 * ```ts
 * import type { FormattedExample } from "./arithmetic_task.ts";
 *
 * const formatted: FormattedExample = {
 *   prompt: "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n",
 *   completion: "1 + 2 = 3\nAnswer: 3<|im_end|>",
 *   text: "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n" +
 *     "1 + 2 = 3\nAnswer: 3<|im_end|>",
 * };
 * ```
 */
export interface FormattedExample {
  /** The chat-rendered prompt, ending with the assistant header (no loss on these tokens). */
  prompt: string;
  /** The assistant's reply, the solution followed by `<|im_end|>` (the loss is on these). */
  completion: string;
  /** `prompt + completion`, the whole training text. */
  text: string;
}

interface ResolvedOptions {
  seed: number;
  digits: number;
  ops: readonly ArithmeticOp[];
  maxTerms: number;
  mulDigits: number;
  heldOutFraction: number;
}

const ALL_OPS: readonly ArithmeticOp[] = ["+", "-", "*"];

/** Give up on a split after this many candidates for one index (only for absurd settings). */
const MAX_ATTEMPTS = 100_000;

function integerIn(
  value: unknown,
  key: string,
  min: number,
  max: number,
  where: string,
): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(
      `${where}: option "${key}" must be an integer in [${min}, ${max}]: current value is ${
        show(value)
      }`,
    );
  }
  if (value < min || value > max) {
    throw new RangeError(
      `${where}: option "${key}" must be an integer in [${min}, ${max}]: current value is ${value}`,
    );
  }
  return value;
}

function resolve(options: ArithmeticTaskOptions, where: string): ResolvedOptions {
  const seed = integerIn(options.seed ?? 0, "seed", 0, Number.MAX_SAFE_INTEGER, where);
  const digits = integerIn(options.digits ?? 2, "digits", 1, 6, where);
  const maxTerms = integerIn(options.maxTerms ?? 2, "maxTerms", 2, 4, where);
  const mulDigits = integerIn(options.mulDigits ?? 1, "mulDigits", 1, 3, where);
  const ops = options.ops ?? ALL_OPS;
  if (
    !Array.isArray(ops) || ops.length === 0 || !ops.every((op) => ALL_OPS.includes(op)) ||
    new Set(ops).size !== ops.length
  ) {
    throw new TypeError(
      `${where}: option "ops" must be a non-empty list of distinct operators from ` +
        `["+", "-", "*"]: current value is ${show(ops)}`,
    );
  }
  const heldOutFraction = options.heldOutFraction ?? 0.1;
  if (
    typeof heldOutFraction !== "number" || !(heldOutFraction > 0 && heldOutFraction < 1)
  ) {
    throw new RangeError(
      `${where}: option "heldOutFraction" must be a number in (0, 1): current value is ${
        show(heldOutFraction)
      }`,
    );
  }
  return { seed, digits, ops, maxTerms, mulDigits, heldOutFraction };
}

/** FNV-1a over UTF-16 code units, then finalized: the split hash of a problem. */
function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  return fmix32(h >>> 0);
}

function splitOf(expression: string, heldOutFraction: number): ArithmeticSplit {
  return hashText(expression) / 4294967296 < heldOutFraction ? "eval" : "train";
}

function randomInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

function randomOperand(random: () => number, maxDigits: number): number {
  const digits = randomInt(random, 1, maxDigits);
  if (digits === 1) return randomInt(random, 0, 9);
  return randomInt(random, 10 ** (digits - 1), 10 ** digits - 1);
}

function apply(a: number, op: ArithmeticOp, b: number): number {
  return op === "+" ? a + b : op === "-" ? a - b : a * b;
}

/** Draws one candidate problem: operands and operators, from the PRNG. */
function drawProblem(
  random: () => number,
  options: ResolvedOptions,
): { values: number[]; ops: ArithmeticOp[] } {
  const terms = randomInt(random, 2, options.maxTerms);
  const values: number[] = [];
  const ops: ArithmeticOp[] = [];
  for (let i = 0; i < terms; i++) {
    if (i > 0) ops.push(options.ops[randomInt(random, 0, options.ops.length - 1)]);
    const maxDigits = i > 0 && ops[i - 1] === "*"
      ? Math.min(options.mulDigits, options.digits)
      : options.digits;
    values.push(randomOperand(random, maxDigits));
  }
  return { values, ops };
}

/** Evaluates with the usual precedence, writing one line per operation. */
function solve(values: number[], ops: ArithmeticOp[]): { lines: string[]; result: number } {
  const vs = [...values];
  const os = [...ops];
  const lines: string[] = [];
  const step = (i: number): void => {
    const value = apply(vs[i], os[i], vs[i + 1]);
    lines.push(`${vs[i]} ${os[i]} ${vs[i + 1]} = ${value}`);
    vs.splice(i, 2, value);
    os.splice(i, 1);
  };
  for (let i = os.indexOf("*"); i !== -1; i = os.indexOf("*")) step(i);
  while (os.length > 0) step(0);
  return { lines, result: vs[0] };
}

function expressionOf(values: number[], ops: ArithmeticOp[]): string {
  let text = String(values[0]);
  for (let i = 0; i < ops.length; i++) text += ` ${ops[i]} ${values[i + 1]}`;
  return text;
}

function generate(
  split: ArithmeticSplit,
  index: number,
  options: ResolvedOptions,
  where: string,
): ArithmeticExample {
  const base = mixNumber(mixNumber(0x9e3779b9, options.seed), split === "train" ? 1 : 2);
  const stream = mixNumber(base, index);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const random = mulberry32(mixNumber(stream, attempt));
    const { values, ops } = drawProblem(random, options);
    const expression = expressionOf(values, ops);
    if (splitOf(expression, options.heldOutFraction) !== split) continue;
    const { lines, result } = solve(values, ops);
    const answer = String(result);
    return {
      prompt: `What is ${expression}?`,
      solution: `${lines.join("\n")}\nAnswer: ${answer}`,
      answer,
    };
  }
  throw new RangeError(
    `${where}: found no "${split}" problem in ${MAX_ATTEMPTS} candidates for index ${index}: ` +
      `the settings leave the split (almost) empty`,
  );
}

function checkSplit(split: unknown, where: string): ArithmeticSplit {
  if (split !== "train" && split !== "eval") {
    throw new TypeError(
      `${where}: split must be "train" or "eval": current value is ${show(split)}`,
    );
  }
  return split;
}

/**
 * Generates example `index` of a split: a pure function of the seed, split, index and knobs
 * (random access, so a run resumes from its data position). Examples at different indices may
 * repeat a problem; {@linkcode arithmeticDataset} gives distinct ones.
 *
 * @param split `"train"` or `"eval"` (held out; never shares a problem with `"train"`).
 * @param index A non-negative safe integer.
 * @param options The seed and difficulty knobs.
 * @returns The example.
 * @throws {TypeError} When the split or an option has the wrong type.
 * @throws {RangeError} When the index or an option is out of range.
 *
 * @example Same inputs, same example
 * ```ts
 * import { arithmeticExample } from "./arithmetic_task.ts";
 * import { deepStrictEqual, strictEqual } from "node:assert/strict";
 *
 * const a = arithmeticExample("eval", 5, { seed: 3, maxTerms: 3 });
 * deepStrictEqual(arithmeticExample("eval", 5, { seed: 3, maxTerms: 3 }), a);
 * const lastLine = a.solution.split("\n").at(-1);
 * strictEqual(lastLine, `Answer: ${a.answer}`);
 * ```
 */
export function arithmeticExample(
  split: ArithmeticSplit,
  index: number,
  options: ArithmeticTaskOptions = {},
): ArithmeticExample {
  const where = "Cannot generate arithmetic example";
  checkSplit(split, where);
  integerIn(index, "index", 0, Number.MAX_SAFE_INTEGER, where);
  return generate(split, index, resolve(options, where), where);
}

/**
 * Generates `size` distinct examples of a split (no two share a prompt), taking indices
 * 0, 1, 2, ... of {@linkcode arithmeticExample} and skipping repeats.
 *
 * @param split `"train"` or `"eval"`.
 * @param options The number of examples, seed and difficulty knobs.
 * @returns The examples, in index order.
 * @throws {TypeError} When the split or an option has the wrong type.
 * @throws {RangeError} When an option is out of range, or the split holds too few distinct
 *   problems for `size` (e.g. 1-digit addition only has 100 problems in all).
 *
 * @example A held-out set that never meets the training set
 * ```ts
 * import { arithmeticDataset } from "./arithmetic_task.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const train = arithmeticDataset("train", { size: 500, seed: 0 });
 * const held = arithmeticDataset("eval", { size: 50, seed: 1 });
 * const seen = new Set(train.map((e) => e.prompt));
 * strictEqual(held.filter((e) => seen.has(e.prompt)).length, 0);
 * ```
 */
export function arithmeticDataset(
  split: ArithmeticSplit,
  options: ArithmeticDatasetOptions,
): ArithmeticExample[] {
  const where = "Cannot generate arithmetic dataset";
  checkSplit(split, where);
  const size = integerIn(options?.size, "size", 1, 10_000_000, where);
  const resolved = resolve(options, where);
  const out: ArithmeticExample[] = [];
  const seen = new Set<string>();
  // Repeats only dominate when the problem space is nearly exhausted; stop well before spinning.
  const budget = 20 * size + 1000;
  for (let index = 0; out.length < size; index++) {
    if (index >= budget) {
      throw new RangeError(
        `${where}: option "size" asks for ${size} distinct "${split}" problems, but only ` +
          `${out.length} turned up in ${budget} draws: raise "digits", "maxTerms" or add "ops"`,
      );
    }
    const example = generate(split, index, resolved, where);
    if (seen.has(example.prompt)) continue;
    seen.add(example.prompt);
    out.push(example);
  }
  return out;
}

/**
 * Renders an example for training in the chat format of the arithmetic tokenizer
 * (`data/arithmetic_tokenizer.ts`, a Qwen-style `<|im_start|>role\n...<|im_end|>` template):
 * the prompt is the user turn plus the assistant header, the completion is the solution closed by
 * `<|im_end|>` (the tokenizer's EOS).
 *
 * @param example The example.
 * @returns The prompt, completion and whole text.
 *
 * @example Usage
 * ```ts
 * import { formatExample } from "./arithmetic_task.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const formatted = formatExample({
 *   prompt: "What is 1 + 2?",
 *   solution: "1 + 2 = 3\nAnswer: 3",
 *   answer: "3",
 * });
 * strictEqual(
 *   formatted.text,
 *   "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n1 + 2 = 3\nAnswer: 3<|im_end|>",
 * );
 * ```
 */
export function formatExample(example: ArithmeticExample): FormattedExample {
  const prompt = `<|im_start|>user\n${example.prompt}<|im_end|>\n<|im_start|>assistant\n`;
  const completion = `${example.solution}<|im_end|>`;
  return { prompt, completion, text: prompt + completion };
}
