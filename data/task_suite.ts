/**
 * A multi-task suite for supervised fine-tuning: the arithmetic task (`arithmetic_task.ts`) plus
 * the synthetic sort / count / base-conversion tasks (`synthetic_tasks.ts`), each with its own
 * deterministic train and held-out splits (disjoint within a task; the tasks' prompts differ in
 * their wording, so they never collide across tasks) and its own exact-answer check.
 *
 * @example Two tasks, three problems each
 * ```ts
 * import { suiteDataset } from "./task_suite.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const train = suiteDataset("train", { tasks: ["arithmetic", "sort"], size: 3 });
 * strictEqual(train.length, 6);
 * strictEqual(train.filter((e) => e.task === "sort").length, 3);
 * ```
 *
 * @module
 */
import {
  arithmeticDataset,
  type ArithmeticDatasetOptions,
  type ArithmeticExample,
  type ArithmeticSplit,
} from "./arithmetic_task.ts";
import { SYNTHETIC_TASKS, syntheticAnswerCorrect, syntheticExample } from "./synthetic_tasks.ts";

/**
 * A task of the suite.
 *
 * @example Usage
 * ```ts
 * import type { SuiteTask } from "./task_suite.ts";
 *
 * const task: SuiteTask = "base";
 * ```
 */
export type SuiteTask = "arithmetic" | "sort" | "count" | "base";

/**
 * Every {@linkcode SuiteTask}, in report order.
 *
 * @example Usage
 * ```ts
 * import { SUITE_TASKS } from "./task_suite.ts";
 *
 * console.log(SUITE_TASKS.join(", ")); // arithmetic, sort, count, base
 * ```
 */
export const SUITE_TASKS: readonly SuiteTask[] = Object.freeze([
  "arithmetic",
  ...SYNTHETIC_TASKS,
]);

/**
 * One problem of the suite: an {@linkcode ArithmeticExample} tagged with its task.
 *
 * @example Usage
 * ```ts
 * import type { SuiteExample } from "./task_suite.ts";
 *
 * const e: SuiteExample = {
 *   task: "count",
 *   prompt: "What is the count of 1 in 1, 0, 1, 2?",
 *   solution: "1 at 1\n1 at 3\nso 2\nAnswer: 2",
 *   answer: "2",
 * };
 * ```
 */
export interface SuiteExample extends ArithmeticExample {
  /** The task the problem belongs to. */
  task: SuiteTask;
}

/**
 * Options of {@linkcode suiteDataset}.
 *
 * @example Usage
 * ```ts
 * import type { SuiteDatasetOptions } from "./task_suite.ts";
 *
 * const options: SuiteDatasetOptions = { tasks: ["arithmetic", "base"], size: 100, level: 1 };
 * ```
 */
export interface SuiteDatasetOptions {
  /** The tasks, each at most once; non-empty. */
  tasks: readonly SuiteTask[];
  /** Distinct problems per task. */
  size: number;
  /** Seed of every task's problem generator; default 0. */
  seed?: number;
  /** Difficulty of the synthetic tasks, 1 to 4 (see `SyntheticTaskOptions.level`); default 2. */
  level?: number;
  /** Knobs of the arithmetic task (its `size` and `seed` come from here; its `keys` name them in
   * its errors). */
  arithmetic?: Omit<ArithmeticDatasetOptions, "size" | "seed">;
  /** How the caller's config spells `size` and `level`, for the error when a task holds too few
   * problems; one left out is named `option "<name>"`. */
  keys?: { size?: string; level?: string };
}

/**
 * `size` distinct problems of each task of a split, task by task in the order of `tasks`.
 * Problem `i` of a task is a pure function of `(task, seed, split, level)`: the arithmetic task
 * is `arithmeticDataset`, a synthetic task takes `syntheticExample` at increasing indices,
 * skipping repeated prompts. The train and held-out splits of a task never share a prompt.
 *
 * @param split `"train"` or `"eval"`.
 * @param options Tasks, size per task, seed and knobs.
 * @returns The problems.
 * @throws {RangeError} When `tasks` is empty, repeats or names an unknown task, when `size` is
 *   not a positive integer, or when a task's space has fewer than `size` distinct problems.
 *
 * @example Held-out problems never appear in training
 * ```ts
 * import { suiteDataset } from "./task_suite.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const tasks = ["sort", "count", "base"] as const;
 * const train = new Set(suiteDataset("train", { tasks, size: 200 }).map((e) => e.prompt));
 * const held = suiteDataset("eval", { tasks, size: 20 });
 * strictEqual(held.filter((e) => train.has(e.prompt)).length, 0);
 * ```
 */
export function suiteDataset(split: ArithmeticSplit, options: SuiteDatasetOptions): SuiteExample[] {
  const where = "Cannot generate the task suite";
  const { tasks, size } = options;
  if (tasks.length === 0) {
    throw new RangeError(
      `${where}: option "tasks" must name at least one task: current value is []`,
    );
  }
  tasks.forEach((task, i) => {
    if (!SUITE_TASKS.includes(task)) {
      throw new RangeError(
        `${where}: option "tasks" must hold only ${SUITE_TASKS.map((t) => `"${t}"`).join(", ")}: ` +
          `current value is ${JSON.stringify(tasks)}`,
      );
    }
    if (tasks.indexOf(task) !== i) {
      throw new RangeError(
        `${where}: option "tasks" must not repeat a task: "${task}" repeats in ` +
          `${JSON.stringify(tasks)}`,
      );
    }
  });
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(
      `${where}: option "size" must be a positive integer: current value is ${size}`,
    );
  }
  const seed = options.seed ?? 0;
  const out: SuiteExample[] = [];
  for (const task of tasks) {
    if (task === "arithmetic") {
      const problems = arithmeticDataset(split, { ...options.arithmetic, size, seed });
      for (const e of problems) out.push({ ...e, task });
      continue;
    }
    const seen = new Set<string>();
    const budget = 20 * size + 1000;
    for (let index = 0; seen.size < size; index++) {
      if (index >= budget) {
        const name = (option: "size" | "level") =>
          options.keys?.[option] === undefined
            ? `option "${option}"`
            : `key "${options.keys[option]}"`;
        throw new RangeError(
          `${where}: ${name("size")} asks for ${size} distinct "${split}" problems of "${task}", ` +
            `but only ${seen.size} turned up in ${budget} draws with ${name("level")} ` +
            `${options.level ?? 2}: lower the size or raise the level`,
        );
      }
      const e = syntheticExample(task, split, index, { seed, level: options.level });
      if (seen.has(e.prompt)) continue;
      seen.add(e.prompt);
      out.push({ ...e, task });
    }
  }
  return out;
}

/**
 * Whether a completion answers a suite problem exactly: for arithmetic, the integer after the
 * last `Answer:` equals the answer (as `eval_sft.ts` scores it: leading zeros and `-0` read as
 * numbers); for the synthetic tasks, `syntheticAnswerCorrect` (the rest of the line, trimmed,
 * equals the answer text).
 *
 * @param task The problem's task.
 * @param completion The model's completion.
 * @param answer The reference answer.
 * @returns True when the answer is exactly right.
 *
 * @example A sorted list must be complete
 * ```ts
 * import { suiteAnswerCorrect } from "./task_suite.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(suiteAnswerCorrect("sort", "Answer: 2, 5, 9", "2, 5, 9"), true);
 * strictEqual(suiteAnswerCorrect("sort", "Answer: 2, 5", "2, 5, 9"), false);
 * strictEqual(suiteAnswerCorrect("arithmetic", "Answer: 07", "7"), true);
 * ```
 */
export function suiteAnswerCorrect(task: SuiteTask, completion: string, answer: string): boolean {
  if (task !== "arithmetic") return syntheticAnswerCorrect(completion, answer);
  const at = completion.lastIndexOf("Answer:");
  if (at === -1) return false;
  const match = /^[ \t]*(-?)(\d+)/.exec(completion.slice(at + "Answer:".length));
  const want = /^(-?)(\d+)$/.exec(answer.trim());
  if (match === null || want === null) return false;
  const value = (sign: string, digits: string): bigint => (sign ? -1n : 1n) * BigInt(digits);
  return value(match[1], match[2]) === value(want[1], want[2]);
}
