/**
 * Verifiable synthetic tasks besides arithmetic, for multi-task SFT (the HILO experiment): sorting a
 * list, counting a value in a list, and writing a number in another base, each with a short
 * worked solution ending in `Answer: …`. Texts use only the arithmetic tokenizer's alphabet
 * (digits, lower-case letters, `A`, `W`, `,`, `=`, `*`, `+`, `?`, `:`), so the bundled model's
 * tokenizer covers them.
 *
 * As in `arithmetic_task.ts`, example `index` of a split is a pure function of
 * `(task, seed, split, index)` and the difficulty knob, and the splits never overlap: a problem
 * belongs to the split a hash of its prompt picks (independent of the seed).
 *
 * @example One example of each task
 * ```ts
 * import { syntheticExample } from "./synthetic_tasks.ts";
 * for (const task of ["sort", "count", "base"] as const) {
 *   const e = syntheticExample(task, "train", 0, { seed: 1 });
 *   console.log(e.prompt, "→", e.answer);
 * }
 * ```
 *
 * @module
 */
import { fmix32, mixNumber, mulberry32 } from "../internal/random.ts";
import type { ArithmeticExample, ArithmeticSplit } from "./arithmetic_task.ts";

/** The tasks: `"sort"` (easy), `"count"` (easy), `"base"` (harder: repeated division). */
export type SyntheticTask = "sort" | "count" | "base";

/** Every {@linkcode SyntheticTask}. */
export const SYNTHETIC_TASKS: readonly SyntheticTask[] = Object.freeze(["sort", "count", "base"]);

/** Options of {@linkcode syntheticExample}. */
export interface SyntheticTaskOptions {
  /** Seed, a non-negative safe integer; default 0. */
  seed?: number;
  /**
   * Difficulty, 1 to 4; default 2. Sort: lists of 3..(2 + level) values in 0..99. Count: lists of
   * 4..(4 + 2·level) values in 0..(2 + level). Base: numbers in 1..min(4095, 2^(4·level + 1) − 1)
   * (31, 511, 4095, 4095), in bases 2..9; level 1 keeps every text within 128 tokens of the
   * arithmetic tokenizer (the bundled model's context).
   */
  level?: number;
  /** Share of problems in the held-out split, in (0, 1); default 0.1. */
  heldOutFraction?: number;
}

const MAX_ATTEMPTS = 100_000;

function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

function randomInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

function draw(task: SyntheticTask, level: number, random: () => number): ArithmeticExample {
  if (task === "sort") {
    const n = randomInt(random, 3, 2 + level);
    const values = Array.from({ length: n }, () => randomInt(random, 0, 99));
    const sorted = [...values].sort((a, b) => a - b);
    const answer = sorted.join(", ");
    const lines = sorted.map((v, i) => (i === 0 ? `smallest ${v}` : `then ${v}`));
    return {
      prompt: `What is the sorted order of ${values.join(", ")}?`,
      solution: `${lines.join("\n")}\nAnswer: ${answer}`,
      answer,
    };
  }
  if (task === "count") {
    const n = randomInt(random, 4, 4 + 2 * level);
    const max = 2 + level;
    const values = Array.from({ length: n }, () => randomInt(random, 0, max));
    const target = randomInt(random, 0, max);
    const at = values.flatMap((v, i) => (v === target ? [i + 1] : []));
    const lines = at.map((i) => `${target} at ${i}`);
    const answer = String(at.length);
    return {
      prompt: `What is the count of ${target} in ${values.join(", ")}?`,
      solution: `${[...lines, `so ${answer}`].join("\n")}\nAnswer: ${answer}`,
      answer,
    };
  }
  const base = randomInt(random, 2, 9);
  const value = randomInt(random, 1, Math.min(4095, 2 ** (4 * level + 1) - 1));
  const lines: string[] = [];
  const digits: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / base)) {
    lines.push(`${v} = ${Math.floor(v / base)} * ${base} + ${v % base}`);
    digits.push(v % base);
  }
  const answer = digits.reverse().join("");
  return {
    prompt: `What is ${value} in base ${base}?`,
    solution: `${lines.join("\n")}\nAnswer: ${answer}`,
    answer,
  };
}

/**
 * Example `index` of a task's split.
 *
 * @param task The task.
 * @param split `"train"` or `"eval"` (held out).
 * @param index A non-negative integer.
 * @param options Seed, level and held-out share.
 * @returns The prompt, worked solution and answer.
 * @throws {RangeError} If an option or the index is out of range, naming it.
 *
 * @example 13 in base 2
 * ```ts
 * import { syntheticExample } from "./synthetic_tasks.ts";
 * const e = syntheticExample("base", "eval", 3, { seed: 2, level: 1 });
 * console.log(e.solution.endsWith(`Answer: ${e.answer}`)); // true
 * ```
 */
export function syntheticExample(
  task: SyntheticTask,
  split: ArithmeticSplit,
  index: number,
  options: SyntheticTaskOptions = {},
): ArithmeticExample {
  const where = `Cannot generate a "${task}" example`;
  if (!SYNTHETIC_TASKS.includes(task)) {
    throw new RangeError(
      `Cannot generate a synthetic example: task must be one of ${SYNTHETIC_TASKS.join(", ")}: ` +
        `current value is ${JSON.stringify(task)}`,
    );
  }
  if (split !== "train" && split !== "eval") {
    throw new RangeError(`${where}: split must be "train" or "eval": current value is ${split}`);
  }
  const seed = options.seed ?? 0;
  const level = options.level ?? 2;
  const held = options.heldOutFraction ?? 0.1;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(
      `${where}: option "seed" must be a non-negative integer: current value is ${seed}`,
    );
  }
  if (!Number.isSafeInteger(level) || level < 1 || level > 4) {
    throw new RangeError(
      `${where}: option "level" must be an integer in [1, 4]: current value is ${level}`,
    );
  }
  if (!(held > 0 && held < 1)) {
    throw new RangeError(
      `${where}: option "heldOutFraction" must be in (0, 1): current value is ${held}`,
    );
  }
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(
      `${where}: index must be a non-negative integer: current value is ${index}`,
    );
  }
  const stream = mixNumber(
    mixNumber(
      mixNumber(mixNumber(0x51ed270b, seed), SYNTHETIC_TASKS.indexOf(task)),
      split === "train" ? 1 : 2,
    ),
    index,
  );
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const e = draw(task, level, mulberry32(mixNumber(stream, attempt)));
    const inEval = hashText(e.prompt) / 4294967296 < held;
    if (inEval === (split === "eval")) return e;
  }
  throw new RangeError(`${where}: found no "${split}" problem in ${MAX_ATTEMPTS} candidates`);
}

/**
 * Whether a completion answers correctly: the text after its last `Answer:` (up to the end of
 * the line, spaces trimmed) equals the answer exactly (lists compare with their `", "`
 * separators).
 *
 * @param completion The model's completion.
 * @param answer The example's answer.
 * @returns True when correct.
 *
 * @example A sorted list
 * ```ts
 * import { syntheticAnswerCorrect } from "./synthetic_tasks.ts";
 * console.log(syntheticAnswerCorrect("then 9\nAnswer: 2, 5, 9<|im_end|>", "2, 5, 9")); // true
 * ```
 */
export function syntheticAnswerCorrect(completion: string, answer: string): boolean {
  const at = completion.lastIndexOf("Answer:");
  if (at < 0) return false;
  const rest = completion.slice(at + "Answer:".length).split("\n")[0].replace(
    /<\|im_end\|>.*$/,
    "",
  );
  return rest.trim() === answer;
}
