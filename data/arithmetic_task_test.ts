import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  arithmeticDataset,
  type ArithmeticExample,
  arithmeticExample,
  formatExample,
} from "./arithmetic_task.ts";

/** An evaluator written independently of the generator: precedence by two passes. */
function evaluate(expression: string): number {
  const parts = expression.split(" ");
  const values = [Number(parts[0])];
  const ops: string[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const op = parts[i];
    const value = Number(parts[i + 1]);
    if (op === "*") values[values.length - 1] *= value;
    else {
      ops.push(op);
      values.push(value);
    }
  }
  let result = values[0];
  ops.forEach((op, i) => {
    result = op === "+" ? result + values[i + 1] : result - values[i + 1];
  });
  return result;
}

function expressionOf(example: ArithmeticExample): string {
  const match = /^What is (.+)\?$/.exec(example.prompt);
  ok(match, `unexpected prompt ${JSON.stringify(example.prompt)}`);
  return match[1];
}

Deno.test("arithmeticExample() is a pure function of seed, split, index and knobs", () => {
  const options = { seed: 42, digits: 3, maxTerms: 3 } as const;
  for (let i = 0; i < 50; i++) {
    deepStrictEqual(arithmeticExample("train", i, options), arithmeticExample("train", i, options));
  }
  const a = Array.from({ length: 20 }, (_, i) => arithmeticExample("train", i, { seed: 1 }));
  const b = Array.from({ length: 20 }, (_, i) => arithmeticExample("train", i, { seed: 2 }));
  notDeepStrictEqual(a, b);
  // Far indices work too (random access, no state to replay).
  const far = arithmeticExample("eval", 2 ** 40 + 3, options);
  deepStrictEqual(far, arithmeticExample("eval", 2 ** 40 + 3, options));
});

Deno.test("arithmeticExample() gives correct worked solutions ending in Answer: N", () => {
  // The canonical path (`paths: "single"`): one step line per operation, nothing else. (Before
  // `paths` existed this was the only path; the multi-path default is tested below.)
  for (const maxTerms of [2, 3, 4]) {
    for (let i = 0; i < 300; i++) {
      const split = i % 2 === 0 ? "train" : "eval";
      const example = arithmeticExample(split, i, {
        seed: 7,
        digits: 3,
        maxTerms,
        mulDigits: 2,
        paths: "single",
      });
      const expected = evaluate(expressionOf(example));
      strictEqual(example.answer, String(expected));
      strictEqual(Number.parseInt(example.answer, 10), expected);
      const lines = example.solution.split("\n");
      strictEqual(lines.at(-1), `Answer: ${example.answer}`);
      const steps = lines.slice(0, -1);
      strictEqual(steps.length, expressionOf(example).split(" ").length >> 1);
      for (const line of steps) {
        const m = /^(-?\d+) ([-+*]) (\d+) = (-?\d+)$/.exec(line);
        ok(m, `malformed step ${JSON.stringify(line)}`);
        strictEqual(evaluate(`${m[1]} ${m[2]} ${m[3]}`), Number(m[4]));
      }
      strictEqual(steps.at(-1)!.endsWith(`= ${example.answer}`), true);
    }
  }
});

Deno.test("arithmeticExample() keeps the canonical path's text under paths: single", () => {
  // Written by the generator before the `paths` option existed (same seed, split and indices).
  const options = { seed: 7, digits: 3, maxTerms: 4, mulDigits: 2, paths: "single" } as const;
  deepStrictEqual([0, 1, 2].map((i) => arithmeticExample("train", i, options)), [
    {
      prompt: "What is 4 + 715 - 57?",
      solution: "4 + 715 = 719\n719 - 57 = 662\nAnswer: 662",
      answer: "662",
    },
    {
      prompt: "What is 224 + 672 + 2?",
      solution: "224 + 672 = 896\n896 + 2 = 898\nAnswer: 898",
      answer: "898",
    },
    {
      prompt: "What is 6 * 4 * 65?",
      solution: "6 * 4 = 24\n24 * 65 = 1560\nAnswer: 1560",
      answer: "1560",
    },
  ]);
});

const STEP = /^(-?\d+) ([-+*]) (\d+) = (-?\d+)$/;

/** The kinds of line of a multi-path solution, each checked for truth as it is classified. */
function checkMultiPath(example: ArithmeticExample): {
  steps: string[][];
  extra: "none" | "so" | "restate" | "ok";
} {
  const expression = expressionOf(example);
  const answer = evaluate(expression);
  strictEqual(example.answer, String(answer));
  const lines = example.solution.split("\n");
  strictEqual(lines.at(-1), `Answer: ${example.answer}`);
  const steps: string[][] = [];
  const kinds = new Set<string>();
  // Each step consumes two numbers in play (as magnitudes) and puts its result in play.
  const pool = expression.split(" ").filter((_, k) => k % 2 === 0).map((v) => Math.abs(Number(v)));
  const take = (value: number, line: string): void => {
    const at = pool.indexOf(Math.abs(value));
    ok(at >= 0, `step ${JSON.stringify(line)} uses ${value}, not in play in ${example.solution}`);
    pool.splice(at, 1);
  };
  for (const line of lines.slice(0, -1)) {
    const step = STEP.exec(line);
    if (step) {
      strictEqual(evaluate(`${step[1]} ${step[2]} ${step[3]}`), Number(step[4]), line);
      ok(!kinds.has("restate") && !kinds.has("ok"), `step after the extra line: ${line}`);
      take(Number(step[1]), line);
      take(Number(step[3]), line);
      pool.push(Math.abs(Number(step[4])));
      steps.push(step.slice(1));
      continue;
    }
    const rest = /^so (.+)$/.exec(line);
    if (rest) {
      strictEqual(evaluate(rest[1]), answer, `rewrite ${JSON.stringify(line)} changes the value`);
      kinds.add("so");
      continue;
    }
    const check = /^ok: (.+)$/.exec(line);
    if (check) {
      const m = STEP.exec(check[1]);
      ok(m, `malformed check ${JSON.stringify(line)}`);
      strictEqual(evaluate(`${m[1]} ${m[2]} ${m[3]}`), Number(m[4]), line);
      // It inverts (or recomputes) the last step: the same three numbers.
      deepStrictEqual(
        [m[1], m[3], m[4]].map(Number).sort(),
        [steps.at(-1)![0], steps.at(-1)![2], steps.at(-1)![3]].map(Number).sort(),
      );
      kinds.add("ok");
      continue;
    }
    strictEqual(
      line,
      `${expression} = ${answer}`,
      "neither a step, a rewrite, a check nor a restatement",
    );
    kinds.add("restate");
  }
  strictEqual(steps.length, expression.split(" ").length >> 1, example.solution);
  deepStrictEqual(
    pool,
    [Math.abs(answer)],
    `the steps do not reach the answer: ${example.solution}`,
  );
  strictEqual(Number(steps.at(-1)![3]), answer);
  ok(kinds.size <= 1, `more than one kind of extra line: ${example.solution}`);
  const extra = ([...kinds][0] ?? "none") as "none" | "so" | "restate" | "ok";
  if (steps.length === 1) {
    // A one-operation problem has one path, the canonical line.
    strictEqual(extra, "none", "a one-step problem gets no extra line");
    strictEqual(example.solution, `${expression} = ${answer}\nAnswer: ${answer}`);
  }
  if (extra === "so") {
    strictEqual(lines.length - 1, 2 * steps.length - 1, "one rewrite per step but the last");
  }
  return { steps, extra };
}

Deno.test("arithmeticExample() multi-path solutions are true line by line and reach the answer", () => {
  for (const [digits, maxTerms, mulDigits] of [[1, 3, 1], [3, 4, 2], [2, 4, 1]]) {
    for (let i = 0; i < 1000; i++) {
      const split = i % 3 === 0 ? "eval" : "train";
      checkMultiPath(arithmeticExample(split, i, { seed: 5, digits, maxTerms, mulDigits }));
    }
  }
});

Deno.test("arithmeticExample() multi-path: the problem and answer do not depend on paths", () => {
  for (let i = 0; i < 500; i++) {
    const options = { seed: 2, digits: 2, maxTerms: 4 } as const;
    const multi = arithmeticExample("train", i, options);
    const single = arithmeticExample("train", i, { ...options, paths: "single" });
    strictEqual(multi.prompt, single.prompt);
    strictEqual(multi.answer, single.answer);
    deepStrictEqual(arithmeticExample("train", i, { ...options, paths: "multi" }), multi);
  }
});

Deno.test("arithmeticExample() multi-path: every kind of path is reachable", () => {
  const seen = new Set<string>();
  const options = { seed: 3, digits: 1, maxTerms: 4 } as const;
  for (let i = 0; i < 4000; i++) {
    const example = arithmeticExample("train", i, options);
    const { steps, extra } = checkMultiPath(example);
    seen.add(`extra:${extra}`);
    const single = arithmeticExample("train", i, { ...options, paths: "single" });
    if (steps.length >= 2) seen.add(example.solution === single.solution ? "canonical" : "other");
    const [x, op, y] = steps[0];
    const canonical = STEP.exec(single.solution.split("\n")[0])!;
    // The canonical first step with its operands the other way round.
    if (op === canonical[2] && x === canonical[3] && y === canonical[1] && x !== y) {
      seen.add(`swapped ${op}`);
    }
    const operands = expressionOf(example).split(" ");
    const pair = (p: string, q: string): boolean => (x === p && y === q) || (x === q && y === p);
    // a + b + c (distinct operands): each of the three groupings.
    if (operands.length === 5 && operands[1] === "+" && operands[3] === "+") {
      const [a, , b, , c] = operands;
      if (new Set([a, b, c]).size === 3) {
        if (pair(a, b)) seen.add("(a + b) + c");
        if (pair(b, c)) seen.add("a + (b + c)");
        if (pair(a, c)) seen.add("(a + c) + b");
      }
    }
    // a * b + c * d: either product first.
    if (
      operands.length === 7 && operands[1] === "*" && operands[3] !== "*" && operands[5] === "*"
    ) {
      if (op === "*" && pair(operands[4], operands[6])) seen.add("second product first");
    }
  }
  for (
    const kind of [
      "extra:none",
      "extra:so",
      "extra:restate",
      "extra:ok",
      "canonical",
      "other",
      "swapped +",
      "swapped *",
      "(a + b) + c",
      "a + (b + c)",
      "(a + c) + b",
      "second product first",
    ]
  ) {
    ok(seen.has(kind), `path kind ${kind} never drawn in 4000 examples`);
  }
});

Deno.test("arithmeticExample() multi-path: a solution of the bundled model's knobs fits 48 tokens", () => {
  // configs/arithmetic_tiny.yaml and configs/tiny_sft.yaml generate up to 48 tokens: each
  // character is a token except "Answer:" (one), plus the EOS <|im_end|>.
  let longest = 0;
  for (const split of ["train", "eval"] as const) {
    for (let i = 0; i < 5000; i++) {
      const { solution } = arithmeticExample(split, i, { digits: 1, maxTerms: 3 });
      longest = Math.max(longest, solution.length - "Answer:".length + 1 + 1);
    }
  }
  ok(longest <= 48, `longest completion ${longest} tokens`);
});

Deno.test("arithmeticExample() respects the difficulty knobs", () => {
  const operandsOf = (e: ArithmeticExample): string[] => expressionOf(e).split(" ");
  for (let i = 0; i < 300; i++) {
    const e = arithmeticExample("train", i, { digits: 1, ops: ["+"] });
    const parts = operandsOf(e);
    strictEqual(parts.length, 3);
    strictEqual(parts[1], "+");
    ok(Number(parts[0]) <= 9 && Number(parts[2]) <= 9);
  }
  let sawTwoOps = false;
  let sawOneDigit = false;
  let sawFourDigits = false;
  for (let i = 0; i < 500; i++) {
    const parts = operandsOf(
      arithmeticExample("train", i, { digits: 4, ops: ["*", "-"], maxTerms: 3, mulDigits: 2 }),
    );
    ok(parts.length === 3 || parts.length === 5);
    sawTwoOps ||= parts.length === 5;
    for (let j = 0; j < parts.length; j += 2) {
      const value = Number(parts[j]);
      ok(value <= 9999);
      if (j > 0 && parts[j - 1] === "*") ok(value <= 99, `right operand of * too long: ${value}`);
      if (j > 0) ok(parts[j - 1] === "*" || parts[j - 1] === "-");
      sawOneDigit ||= value <= 9;
      sawFourDigits ||= value >= 1000;
    }
  }
  ok(sawTwoOps && sawOneDigit && sawFourDigits, "the knobs should give a spread of difficulty");
});

Deno.test("arithmeticExample() splits never share a problem, whatever the seeds", () => {
  const options = { digits: 2, ops: ["+", "-", "*"], maxTerms: 2 } as const;
  const train = new Set<string>();
  for (const seed of [0, 1, 2]) {
    for (let i = 0; i < 3000; i++) {
      train.add(arithmeticExample("train", i, { ...options, seed }).prompt);
    }
  }
  const held = new Set<string>();
  for (const seed of [0, 5]) {
    for (let i = 0; i < 500; i++) {
      held.add(arithmeticExample("eval", i, { ...options, seed }).prompt);
    }
  }
  ok(train.size > 1000 && held.size > 100);
  strictEqual([...held].filter((p) => train.has(p)).length, 0);
});

Deno.test("arithmeticDataset() returns distinct examples in index order", () => {
  const data = arithmeticDataset("eval", { size: 300, seed: 3 });
  strictEqual(data.length, 300);
  strictEqual(new Set(data.map((e) => e.prompt)).size, 300);
  deepStrictEqual(data[0], arithmeticExample("eval", 0, { seed: 3 }));
  deepStrictEqual(arithmeticDataset("eval", { size: 300, seed: 3 }), data);
});

Deno.test("arithmeticDataset() throws when the split has too few problems", () => {
  // 1-digit addition has 100 problems; about a tenth are held out.
  throws(() => arithmeticDataset("eval", { size: 60, digits: 1, ops: ["+"] }), {
    name: "RangeError",
    message: /option "size" asks for 60 distinct "eval" problems, but only \d+ turned up/,
  });
});

Deno.test("arithmeticDataset() names the caller's config keys and the values when the split has too few problems", () => {
  const keys = { size: "rl.data.evalSize", digits: "data.digits", ops: "data.ops" };
  throws(() => arithmeticDataset("eval", { size: 60, digits: 1, ops: ["+"], keys }), {
    name: "RangeError",
    message: new RegExp(
      `key "rl\\.data\\.evalSize" asks for 60 distinct "eval" problems, but only \\d+ turned ` +
        `up in \\d+ draws with key "data\\.digits" 1, option "maxTerms" 2 and key "data\\.ops" ` +
        `\\[\\+\\]: lower the size`,
    ),
  });
});

Deno.test("arithmeticExample() rejects bad options, naming the option", () => {
  throws(() => arithmeticExample("train", 0, { digits: 7 }), {
    name: "RangeError",
    message:
      'Cannot generate arithmetic example: option "digits" must be an integer in [1, 6]: current value is 7',
  });
  throws(() => arithmeticExample("train", -1), { name: "RangeError", message: /option "index"/ });
  throws(() => arithmeticExample("test" as "train", 0), {
    name: "TypeError",
    message:
      'Cannot generate arithmetic example: split must be "train" or "eval": current value is "test"',
  });
  throws(() => arithmeticExample("train", 0, { ops: ["/" as "+"] }), {
    name: "TypeError",
    message: /option "ops" must be a non-empty list of distinct operators/,
  });
  throws(() => arithmeticExample("train", 0, { paths: "many" as "multi" }), {
    name: "TypeError",
    message:
      'Cannot generate arithmetic example: option "paths" must be "single" or "multi": current value is "many"',
  });
  throws(() => arithmeticExample("train", 0, { heldOutFraction: 1 }), {
    name: "RangeError",
    message: /option "heldOutFraction" must be a number in \(0, 1\)/,
  });
});

Deno.test("formatExample() wraps the example in the chat format", () => {
  const example = arithmeticExample("train", 3);
  const formatted = formatExample(example);
  strictEqual(
    formatted.prompt,
    `<|im_start|>user\n${example.prompt}<|im_end|>\n<|im_start|>assistant\n`,
  );
  strictEqual(formatted.completion, `${example.solution}<|im_end|>`);
  strictEqual(formatted.text, formatted.prompt + formatted.completion);
});
