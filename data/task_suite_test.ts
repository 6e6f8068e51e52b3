import assert from "node:assert/strict";
import { SUITE_TASKS, suiteAnswerCorrect, suiteDataset } from "./task_suite.ts";

const ARITHMETIC = { digits: 1, ops: ["+", "-", "*"] as const, maxTerms: 3, mulDigits: 1 };

Deno.test("suiteDataset() gives size distinct problems per task, disjoint train and eval", () => {
  const options = { tasks: SUITE_TASKS, seed: 4, level: 1, arithmetic: ARITHMETIC };
  const train = suiteDataset("train", { ...options, size: 150 });
  const held = suiteDataset("eval", { ...options, size: 12 });
  for (const task of SUITE_TASKS) {
    const t = train.filter((e) => e.task === task);
    assert.equal(t.length, 150, task);
    assert.equal(new Set(t.map((e) => e.prompt)).size, 150, `${task} repeats a prompt`);
    assert.equal(held.filter((e) => e.task === task).length, 12, task);
  }
  const seen = new Set(train.map((e) => e.prompt));
  assert.deepEqual(held.filter((e) => seen.has(e.prompt)), []);
  // Task by task, in the order asked.
  assert.deepEqual([...new Set(train.map((e) => e.task))], [...SUITE_TASKS]);
  for (const e of [...train, ...held]) assert.ok(suiteAnswerCorrect(e.task, e.solution, e.answer));
});

Deno.test("suiteDataset() is deterministic and depends on the seed", () => {
  const a = suiteDataset("eval", { tasks: ["sort", "base"], size: 8, seed: 1, level: 1 });
  const b = suiteDataset("eval", { tasks: ["sort", "base"], size: 8, seed: 1, level: 1 });
  const c = suiteDataset("eval", { tasks: ["sort", "base"], size: 8, seed: 2, level: 1 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("suiteDataset() rejects bad tasks and sizes, naming the option", () => {
  assert.throws(() => suiteDataset("train", { tasks: [], size: 1 }), /option "tasks"/);
  assert.throws(
    () => suiteDataset("train", { tasks: ["sort", "sort"], size: 1 }),
    /"sort" repeats/,
  );
  assert.throws(
    () => suiteDataset("train", { tasks: ["parse" as never], size: 1 }),
    /option "tasks" must hold only/,
  );
  assert.throws(() => suiteDataset("train", { tasks: ["count"], size: 0 }), /option "size"/);
  // Level-1 base conversion has ~250 problems in all.
  assert.throws(
    () => suiteDataset("train", { tasks: ["base"], size: 1000, level: 1 }),
    /distinct "train" problems of "base"/,
  );
});

Deno.test("suiteDataset() names the caller's config keys and values when a task has too few problems", () => {
  const keys = { size: "data.trainSize", level: "data.suite.level" };
  assert.throws(() => suiteDataset("train", { tasks: ["base"], size: 1000, level: 1, keys }), {
    name: "RangeError",
    message: new RegExp(
      `key "data\\.trainSize" asks for 1000 distinct "train" problems of "base", but only \\d+ ` +
        `turned up in \\d+ draws with key "data\\.suite\\.level" 1: lower the size`,
    ),
  });
  // The arithmetic task's knobs, named by its own keys.
  const arithmetic = { digits: 1, ops: ["+"] as const, keys: { size: "data.trainSize" } };
  assert.throws(
    () => suiteDataset("train", { tasks: ["arithmetic"], size: 1000, arithmetic, keys }),
    /key "data\.trainSize" asks for 1000 distinct "train" problems, .* option "digits" 1/,
  );
});

Deno.test("suiteAnswerCorrect() scores each task by its own rule", () => {
  assert.equal(suiteAnswerCorrect("arithmetic", "3 + 4 = 7\nAnswer: 7", "7"), true);
  assert.equal(suiteAnswerCorrect("arithmetic", "Answer: -3", "-3"), true);
  assert.equal(suiteAnswerCorrect("arithmetic", "Answer: 3", "-3"), false);
  assert.equal(suiteAnswerCorrect("arithmetic", "no answer", "3"), false);
  // A list's first number is not the list.
  assert.equal(suiteAnswerCorrect("sort", "Answer: 2, 5, 9", "2, 5, 9"), true);
  assert.equal(suiteAnswerCorrect("sort", "Answer: 2", "2, 5, 9"), false);
  // Base-2 digits are text: leading zeros are wrong.
  assert.equal(suiteAnswerCorrect("base", "Answer: 101", "101"), true);
  assert.equal(suiteAnswerCorrect("base", "Answer: 0101", "101"), false);
  assert.equal(suiteAnswerCorrect("count", "so 2\nAnswer: 2", "2"), true);
});
