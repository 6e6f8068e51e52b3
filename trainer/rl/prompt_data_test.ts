import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import {
  arithmeticPrompts,
  parseJsonlPrompts,
  readJsonlPrompts,
  readParquetPrompts,
} from "./prompt_data.ts";

Deno.test("arithmeticPrompts() gives deterministic, disjoint splits", () => {
  const options = { size: 50, seed: 0, digits: 1, maxTerms: 3 };
  const train = arithmeticPrompts("train", options);
  deepStrictEqual(arithmeticPrompts("train", options), train);
  const held = new Set(arithmeticPrompts("eval", options).map((p) => p.question));
  strictEqual(train.filter((p) => held.has(p.question)).length, 0);
});

Deno.test("readJsonlPrompts() reads the bundled GSM8K and MATH-500 sets", async () => {
  const gsm8k = await readJsonlPrompts("data/math/gsm8k/test.jsonl", {
    promptField: "question",
    answerField: "answer",
  });
  strictEqual(gsm8k.length, 1319);
  strictEqual(gsm8k[0].gold, "18"); // "... #### 18"
  const math500 = await readJsonlPrompts("data/math/math500/test.jsonl", {
    promptField: "problem",
    answerField: "answer",
  });
  strictEqual(math500.length, 500);
  strictEqual(math500[0].gold, "\\left( 3, \\frac{\\pi}{2} \\right)");
});

Deno.test("parseJsonlPrompts() names the line and key of a bad row", () => {
  const options = { promptField: "q", answerField: "a", source: "x.jsonl" };
  throws(() => parseJsonlPrompts('{"q": "1?", "a": 1}\n{"q": 2, "a": 1}\n', options), {
    name: "TypeError",
    message: /"x\.jsonl": row 2: field "q" \(key "rl\.data\.promptField"\)/,
  });
  throws(() => parseJsonlPrompts('{"q": "1?"}\n', options), {
    message: /row 1: field "a" \(key "rl\.data\.answerField"\)/,
  });
  throws(() => parseJsonlPrompts("{oops\n", options), {
    name: "SyntaxError",
    message: /"x\.jsonl": line 1 is not JSON/,
  });
});

Deno.test("readParquetPrompts() names a missing file", async () => {
  await rejects(readParquetPrompts("nope.parquet", { promptField: "p", answerField: "a" }), {
    message: /"nope\.parquet" \(key "rl\.data\.path"\): file not found/,
  });
});
