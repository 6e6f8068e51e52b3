import {
  deepStrictEqual,
  match,
  notStrictEqual,
  rejects,
  strictEqual,
  throws,
} from "node:assert/strict";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  arithmeticPrompts,
  isUsableGold,
  parseJsonlPrompts,
  promptOverlap,
  promptsSha256,
  readJsonlPrompts,
  readParquetPrompts,
  type RlPrompt,
  uniquePrompts,
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
    message: /"x\.jsonl": line 2: field "q" \(key "rl\.data\.promptField"\)/,
  });
  throws(() => parseJsonlPrompts('{"q": "1?"}\n', options), {
    message: /line 1: field "a" \(key "rl\.data\.answerField"\)/,
  });
  throws(() => parseJsonlPrompts("{oops\n", options), {
    name: "SyntaxError",
    message: /"x\.jsonl": line 1 is not JSON/,
  });
});

Deno.test("parseJsonlPrompts() names the file's line of a bad row after blank lines", () => {
  const options = { promptField: "q", answerField: "a", source: "x.jsonl" };
  const text = '{"q": "1?", "a": 1}\n\n\n{"q": "2?", "a": 2}\r\n\n{"q": "3?"}\n';
  throws(() => parseJsonlPrompts(text, options), {
    name: "TypeError",
    message: /^Cannot read prompts "x\.jsonl": line 6: field "a" \(key "rl\.data\.answerField"\)/,
  });
});

Deno.test("parseJsonlPrompts() refuses an empty question, naming file, line and key", () => {
  const options = { promptField: "q", answerField: "a", source: "x.jsonl" };
  throws(() => parseJsonlPrompts('{"q": "1?", "a": 1}\n\n{"q": "  ", "a": 2}\n', options), {
    name: "TypeError",
    message:
      /^Cannot read prompts "x\.jsonl": line 3: field "q" \(key "rl\.data\.promptField"\) is empty/,
  });
  throws(() => parseJsonlPrompts('{"q": [{"role": "user", "content": ""}], "a": 2}\n', options), {
    message: /line 1: field "q" \(key "rl\.data\.promptField"\) is empty/,
  });
});

Deno.test("parseJsonlPrompts() warns of unusable golds and refuses a file with none usable", () => {
  const warnings: string[] = [];
  const options = { promptField: "q", answerField: "a", source: "x.jsonl", warnings };
  const rows = [
    { q: "1?", a: "" },
    { q: "2?", a: "2" },
    { q: "3?", a: "\\frac{1}{" },
    { q: "4?", a: "4" },
  ];
  const text = rows.map((r) => JSON.stringify(r)).join("\n");
  const prompts = parseJsonlPrompts(text, options);
  strictEqual(prompts.length, 4); // kept: dynamic sampling skips their groups
  strictEqual(warnings.length, 1);
  match(
    warnings[0],
    /"x\.jsonl": 2 of 4 golds .*"a" \(key "rl\.data\.answerField"\).* unusable.*lines 1, 3/,
  );
  // Usable golds only: no warning.
  const none: string[] = [];
  parseJsonlPrompts('{"q": "1?", "a": "1 + 1 = 2 #### 2"}\n', { ...options, warnings: none });
  deepStrictEqual(none, []);
  // None usable: an error.
  throws(() => parseJsonlPrompts('{"q": "1?", "a": ""}\n{"q": "2?", "a": " "}\n', options), {
    name: "TypeError",
    message:
      /^Cannot read prompts "x\.jsonl": none of its 2 golds .*"a" \(key "rl\.data\.answerField"\) is usable.*line 1: "" \(empty\)/,
  });
});

Deno.test("isUsableGold() tells golds the reward verifier can score", () => {
  strictEqual(isUsableGold("7"), true);
  strictEqual(isUsableGold("\\frac{1}{2}"), true);
  strictEqual(isUsableGold(""), false);
  strictEqual(isUsableGold("  "), false);
  strictEqual(isUsableGold("\\frac{1}{"), false);
});

Deno.test("readParquetPrompts() names a missing file", async () => {
  await rejects(readParquetPrompts("nope.parquet", { promptField: "p", answerField: "a" }), {
    message: /"nope\.parquet" \(key "rl\.data\.path"\): file not found/,
  });
});

Deno.test("readJsonlPrompts() and readParquetPrompts() name the file and key of a directory or a bad parquet", async () => {
  const fields = { promptField: "p", answerField: "a" };
  const dir = await Deno.makeTempDir();
  try {
    for (const read of [readJsonlPrompts, readParquetPrompts]) {
      await rejects(read(dir, fields), {
        message: new RegExp(
          `^Cannot read prompts "${dir}" \\(key "rl\\.data\\.path"\\): expected a file, found a directory`,
        ),
      });
      await rejects(read(dir, { ...fields, key: "rl.data.evalPath" }), {
        message: /\(key "rl\.data\.evalPath"\): expected a file/,
      });
    }
    const bad = `${dir}/bad.parquet`;
    await Deno.writeTextFile(bad, "not parquet at all\n");
    await rejects(readParquetPrompts(bad, fields), {
      message: new RegExp(
        `^Cannot read prompts "${bad}" \\(key "rl\\.data\\.path"\\): not a Parquet file: .*PAR1`,
      ),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readJsonlPrompts() and readParquetPrompts() refuse a file with no rows, naming file and key", async () => {
  const fields = { promptField: "p", answerField: "a" };
  const dir = await Deno.makeTempDir();
  try {
    const jsonl = `${dir}/empty.jsonl`;
    await Deno.writeTextFile(jsonl, "\n  \n");
    await rejects(readJsonlPrompts(jsonl, { ...fields, key: "rl.data.evalPath" }), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot read prompts "${jsonl}" \\(key "rl\\.data\\.evalPath"\\): the file holds no ` +
          `prompts \\(expected JSON objects, one a line\\)`,
      ),
    });
    const parquet = `${dir}/empty.parquet`;
    await Deno.writeFile(
      parquet,
      new Uint8Array(parquetWriteBuffer({
        columnData: [{ name: "p", type: "STRING", data: [] }, {
          name: "a",
          type: "STRING",
          data: [],
        }],
      })),
    );
    await rejects(readParquetPrompts(parquet, fields), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot read prompts "${parquet}" \\(key "rl\\.data\\.path"\\): the file holds no rows`,
      ),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("uniquePrompts() collapses a DAPO-Math-17k-like parquet's repeats, keeping file order", async () => {
  // Three prompts, each repeated as DAPO-Math-17k repeats its own (interleaved, ~100 times there).
  const questions = ["Find $x$: $2x = 6$.", "Compute $3 + 4$.", "What is $5^2$?"];
  const golds = ["3", "7", "25"];
  const order = [0, 1, 0, 2, 1, 1, 0, 2, 2, 0];
  const path = await Deno.makeTempFile({ suffix: ".parquet" });
  try {
    await Deno.writeFile(
      path,
      new Uint8Array(parquetWriteBuffer({
        columnData: [
          {
            name: "prompt",
            type: "JSON",
            data: order.map((i) => [{ role: "user", content: questions[i] }]),
          },
          {
            name: "reward_model",
            type: "JSON",
            data: order.map((i) => ({ ground_truth: golds[i], style: "rule" })),
          },
        ],
      })),
    );
    const rows = await readParquetPrompts(path, {
      promptField: "prompt",
      answerField: "reward_model.ground_truth",
    });
    strictEqual(rows.length, 10);
    const unique = uniquePrompts(rows);
    strictEqual(unique.rows, 10);
    deepStrictEqual(unique.prompts, [
      { question: questions[0], gold: "3" },
      { question: questions[1], gold: "7" },
      { question: questions[2], gold: "25" },
    ]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("uniquePrompts() keys by normalised question and gold", () => {
  const p = (question: string, gold: string): RlPrompt => ({ question, gold });
  const unique = uniquePrompts([
    p("1 + 1?", "2"),
    p("1 +\n 1?  ", " 2 "), // whitespace only: the same prompt
    p("1 + 1?", "3"), // another gold: kept
    p("1 + 2?", "3"),
  ]);
  deepStrictEqual(unique.prompts, [p("1 + 1?", "2"), p("1 + 1?", "3"), p("1 + 2?", "3")]);
  strictEqual(unique.rows, 4);
  deepStrictEqual(uniquePrompts([]), { prompts: [], rows: 0 });
});

Deno.test("promptOverlap() finds held-out questions among the training ones, whatever the gold", () => {
  const train = [{ question: "a?", gold: "1" }, { question: "b?", gold: "2" }];
  const heldOut = [{ question: "c?", gold: "3" }, { question: " b? ", gold: "9" }];
  deepStrictEqual(promptOverlap(heldOut, train), [heldOut[1]]);
  deepStrictEqual(promptOverlap([heldOut[0]], train), []);
});

Deno.test("promptsSha256() changes with any question, gold or the order", () => {
  const a = { question: "a?", gold: "1" };
  const b = { question: "b?", gold: "2" };
  const base = promptsSha256([a, b]);
  strictEqual(promptsSha256([{ ...a }, { ...b }]), base);
  notStrictEqual(promptsSha256([b, a]), base);
  notStrictEqual(promptsSha256([a, { ...b, gold: "3" }]), base);
  notStrictEqual(promptsSha256([a]), base);
  // The field boundary is part of the hash.
  notStrictEqual(
    promptsSha256([{ question: "a", gold: "b1" }]),
    promptsSha256([{ question: "ab", gold: "1" }]),
  );
});
