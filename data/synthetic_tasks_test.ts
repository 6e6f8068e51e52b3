import assert from "node:assert/strict";
import { ARITHMETIC_ALPHABET } from "./arithmetic_tokenizer.ts";
import { SYNTHETIC_TASKS, syntheticAnswerCorrect, syntheticExample } from "./synthetic_tasks.ts";

const alphabet = new Set(ARITHMETIC_ALPHABET);

Deno.test("syntheticExample() answers are right, recomputed independently from the prompt", () => {
  for (const level of [1, 2, 4]) {
    for (let i = 0; i < 200; i++) {
      const s = syntheticExample("sort", "train", i, { seed: 3, level });
      const list = s.prompt.match(/of (.*)\?$/)![1].split(", ").map(Number);
      assert.equal(s.answer, list.sort((a, b) => a - b).join(", "));
      const c = syntheticExample("count", "train", i, { seed: 3, level });
      const [, target, rest] = c.prompt.match(/count of (\d+) in (.*)\?$/)!;
      assert.equal(Number(c.answer), rest.split(", ").filter((v) => v === target).length);
      const b = syntheticExample("base", "train", i, { seed: 3, level });
      const [, value, base] = b.prompt.match(/What is (\d+) in base (\d)\?/)!.map(Number);
      assert.equal(parseInt(b.answer, base), value);
      assert.ok([...b.answer].every((d) => Number(d) < base));
      for (const e of [s, c, b]) {
        assert.ok(e.solution.endsWith(`\nAnswer: ${e.answer}`));
        assert.ok(syntheticAnswerCorrect(e.solution, e.answer));
        for (const ch of e.prompt + e.solution) {
          assert.ok(alphabet.has(ch), `character ${JSON.stringify(ch)} is not in the alphabet`);
        }
      }
    }
  }
});

Deno.test("syntheticExample() is deterministic and its splits are disjoint", () => {
  for (const task of SYNTHETIC_TASKS) {
    const a = syntheticExample(task, "train", 17, { seed: 5 });
    assert.deepEqual(syntheticExample(task, "train", 17, { seed: 5 }), a);
    const train = new Set(
      Array.from({ length: 2000 }, (_, i) => syntheticExample(task, "train", i).prompt),
    );
    const held = Array.from(
      { length: 300 },
      (_, i) => syntheticExample(task, "eval", i, { seed: 9 }).prompt,
    );
    assert.equal(held.filter((p) => train.has(p)).length, 0, task);
  }
});

Deno.test("syntheticAnswerCorrect() reads the last Answer line only", () => {
  assert.ok(syntheticAnswerCorrect("Answer: 1\nAnswer: 2, 3", "2, 3"));
  assert.ok(!syntheticAnswerCorrect("Answer: 2, 3\nAnswer: 1", "2, 3"));
  assert.ok(!syntheticAnswerCorrect("2, 3", "2, 3"));
  assert.ok(!syntheticAnswerCorrect("Answer: 2,3", "2, 3"));
  assert.throws(() => syntheticExample("sort", "train", 0, { level: 5 }), /"level".*5/);
});
