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
  for (const maxTerms of [2, 3, 4]) {
    for (let i = 0; i < 300; i++) {
      const split = i % 2 === 0 ? "train" : "eval";
      const example = arithmeticExample(split, i, { seed: 7, digits: 3, maxTerms, mulDigits: 2 });
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
