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
 * A problem of two or more operations has several valid worked solutions ("paths", option
 * `paths`, default `"multi"`): the operations may run in any order the precedence allows
 * (independent products either way round, sums grouped as `(a + b) + c`, `a + (b + c)` or
 * `(a + c) + b`), the operands of `+` and `*` may be written either way round, and one extra line
 * may be added: a rewrite of what is left after each step (`so 3 + 20`), a restatement of the whole problem
 * (`3 + 4 * 5 = 23`) or a check that inverts the last step (`ok: 23 - 20 = 3`). Each example draws
 * its path from `(seed, split, index)` too, after (and independently of) its problem, so the
 * problems, the answers and the splits do not depend on `paths`. `paths: "single"` gives the one
 * canonical path (multiplications first, then left to right, no extra line), which is also the
 * only path of a one-operation problem (so a one-operation task, e.g. 1-digit addition, stays
 * deterministic text).
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

/**
 * Which worked solutions the task writes: `"single"`, the canonical one (multiplications first,
 * then left to right); `"multi"`, one drawn per example from the valid paths (see the module doc).
 *
 * @example Same problem and answer, canonical or drawn path
 * ```ts
 * import { type ArithmeticPaths, arithmeticExample } from "./arithmetic_task.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const [single, multi]: ArithmeticPaths[] = ["single", "multi"];
 * const a = arithmeticExample("train", 9, { seed: 1, maxTerms: 3, paths: single });
 * const b = arithmeticExample("train", 9, { seed: 1, maxTerms: 3, paths: multi });
 * strictEqual(a.prompt, b.prompt);
 * strictEqual(a.answer, b.answer);
 * ```
 */
export type ArithmeticPaths = "single" | "multi";

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
   * The worked solution: one line `a op b = c` per operation (with `paths: "single"`
   * multiplications first, then left to right; with `"multi"` in a drawn valid order, possibly
   * with one extra `so ...`, restatement or `ok: ...` line), then `Answer: N`.
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
  /**
   * `"multi"` draws one of several valid worked solutions per example, `"single"` always writes
   * the canonical one. The problems and answers are the same either way. Default `"multi"`.
   */
  paths?: ArithmeticPaths;
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
  /**
   * How the caller's config spells the options, for the error when the split holds too few
   * problems (e.g. `{ size: "data.trainSize", digits: "data.digits" }`); one left out is named
   * `option "<name>"`.
   */
  keys?: ArithmeticOptionKeys;
}

/**
 * The config keys of the options an {@linkcode arithmeticDataset} of too few problems names.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticOptionKeys } from "./arithmetic_task.ts";
 *
 * const keys: ArithmeticOptionKeys = { size: "rl.data.evalSize", digits: "data.digits" };
 * ```
 */
export type ArithmeticOptionKeys = Partial<
  Record<"size" | "digits" | "maxTerms" | "ops", string>
>;

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
  paths: ArithmeticPaths;
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
  const paths = options.paths ?? "multi";
  if (paths !== "single" && paths !== "multi") {
    throw new TypeError(
      `${where}: option "paths" must be "single" or "multi": current value is ${show(paths)}`,
    );
  }
  return { seed, digits, ops, maxTerms, mulDigits, heldOutFraction, paths };
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

/**
 * A term of the sum, or a partial result: factors still to multiply (one once evaluated) and the
 * sign it enters the sum with. The group holding term 0 (`pos` 0) always has sign +1 and its one
 * factor may be negative; every other group keeps a non-negative magnitude and its sign, so each
 * written step has a non-negative right operand.
 */
interface Group {
  pos: number;
  sign: 1 | -1;
  factors: number[];
}

type Action =
  | { kind: "mul"; group: Group; i: number; j: number }
  | { kind: "sum"; left: Group; right: Group };

/**
 * Draws one valid worked solution: at each step one of the operations the precedence allows
 * (two factors of a product, or two evaluated terms of the sum), uniformly; then whether to write
 * the operands of a commutative step the other way round; then (for two or more operations) one
 * of: no extra line, a `so <rest>` rewrite after each step but the last, a restatement
 * `<problem> = <answer>`, or a check `ok: <inverse of the last step>`.
 */
function solveMulti(
  values: number[],
  ops: ArithmeticOp[],
  expression: string,
  random: () => number,
): { lines: string[]; result: number } {
  const groups: Group[] = [{ pos: 0, sign: 1, factors: [values[0]] }];
  ops.forEach((op, i) => {
    if (op === "*") groups[groups.length - 1].factors.push(values[i + 1]);
    else groups.push({ pos: i + 1, sign: op === "+" ? 1 : -1, factors: [values[i + 1]] });
  });
  const rest = (): string =>
    groups.map((g, k) => {
      const factors = g.factors.join(" * ");
      return k === 0 ? factors : ` ${g.sign > 0 ? "+" : "-"} ${factors}`;
    }).join("");
  const steps: { x: number; op: ArithmeticOp; y: number; z: number }[] = [];
  const rewrites: string[] = [];
  while (groups.length > 1 || groups[0].factors.length > 1) {
    const actions: Action[] = [];
    for (const group of groups) {
      for (let i = 0; i < group.factors.length; i++) {
        for (let j = i + 1; j < group.factors.length; j++) {
          actions.push({ kind: "mul", group, i, j });
        }
      }
    }
    const evaluated = groups.filter((g) => g.factors.length === 1);
    for (let a = 0; a < evaluated.length; a++) {
      for (let b = a + 1; b < evaluated.length; b++) {
        actions.push({ kind: "sum", left: evaluated[a], right: evaluated[b] });
      }
    }
    const action = actions[randomInt(random, 0, actions.length - 1)];
    const swap = random() < 0.5;
    let step: { x: number; op: ArithmeticOp; y: number; z: number };
    let commutative: boolean;
    if (action.kind === "mul") {
      const { group, i, j } = action;
      const [x, y] = [group.factors[i], group.factors[j]];
      step = { x, op: "*", y, z: x * y };
      commutative = true;
      group.factors[i] = x * y;
      group.factors.splice(j, 1);
    } else {
      const { left, right } = action;
      const [l, r] = [left.factors[0], right.factors[0]];
      const op: ArithmeticOp = right.sign > 0 ? "+" : "-";
      let value: number;
      if (left.pos === 0 || left.sign > 0) {
        value = l + right.sign * r;
        step = { x: l, op, y: r, z: value };
        commutative = op === "+" && l >= 0;
      } else if (right.sign > 0) {
        value = r - l; // -l + r, written r - l
        step = { x: r, op: "-", y: l, z: value };
        commutative = false;
      } else {
        value = -(l + r); // -l - r = -(l + r)
        step = { x: l, op: "+", y: r, z: l + r };
        commutative = true;
      }
      if (left.pos === 0) left.factors[0] = value;
      else {
        left.sign = value < 0 ? -1 : 1;
        left.factors[0] = Math.abs(value);
      }
      groups.splice(groups.indexOf(right), 1);
    }
    if (commutative && swap) step = { ...step, x: step.y, y: step.x };
    steps.push(step);
    rewrites.push(`so ${rest()}`);
  }
  const result = groups[0].factors[0];
  const lines = steps.map((s) => `${s.x} ${s.op} ${s.y} = ${s.z}`);
  const extra = randomInt(random, 0, 3);
  if (ops.length >= 2 && extra === 1) {
    // A rewrite after each step but the last (the last one's rest is the answer itself).
    return {
      lines: lines.flatMap((line, k) => k < lines.length - 1 ? [line, rewrites[k]] : [line]),
      result,
    };
  }
  if (ops.length >= 2 && extra === 2) lines.push(`${expression} = ${result}`);
  if (ops.length >= 2 && extra === 3) {
    const { x, op, y, z } = steps[steps.length - 1];
    lines.push(
      op === "+"
        ? `ok: ${z} - ${y} = ${x}`
        : op === "-"
        ? `ok: ${z} + ${y} = ${x}`
        : `ok: ${y} * ${x} = ${z}`,
    );
  }
  return { lines, result };
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
    // A one-operation problem has one path: it keeps the canonical line.
    const { lines, result } = options.paths === "single" || ops.length === 1
      ? solve(values, ops)
      : solveMulti(values, ops, expression, random);
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
      const keys = options.keys ?? {};
      const name = (option: keyof ArithmeticOptionKeys) =>
        keys[option] === undefined ? `option "${option}"` : `key "${keys[option]}"`;
      const { digits, maxTerms, ops } = resolved;
      throw new RangeError(
        `${where}: ${name("size")} asks for ${size} distinct "${split}" problems, but only ` +
          `${out.length} turned up in ${budget} draws with ${name("digits")} ${digits}, ` +
          `${name("maxTerms")} ${maxTerms} and ${name("ops")} [${ops.join(", ")}]: lower the ` +
          `size, raise the digits or terms, or add operators`,
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
