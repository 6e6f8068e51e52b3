// Copyright 2025 the halo authors. MIT license.
// The labelled answer-form set of issue #13 (fixtures/verify_forms.jsonl): one line per
// case, {"family", "response", "gold", "expected", "mode"?, "note"?, "split"?}, grouped by the
// families of answer forms that models write (several answers, unordered solution sets,
// labelled answers, number formats, rounded decimals, matrices, intervals and
// inequalities, extraction from long solutions, numeric precision). Every family has
// positive and negative cases; each is checked with verify() in its mode (default
// "reward"), and the agreement per family is printed. The cases without "split" were
// written first and the verifier was changed against them; the "second" split was
// written afterwards, before being run against the changed verifier.

import assert from "node:assert/strict";
import { verify, type VerifyMode } from "../verify/mod.ts";

interface FormCase {
  family: string;
  response: string;
  gold: string;
  expected: boolean;
  mode?: VerifyMode;
  note?: string;
}

const CASES: FormCase[] = Deno.readTextFileSync(
  new URL("./fixtures/verify_forms.jsonl", import.meta.url),
).trim().split("\n").map((l) => JSON.parse(l));

const FAMILIES = [...new Set(CASES.map((c) => c.family))];

function run(c: FormCase) {
  return verify(c.response, c.gold, { mode: c.mode ?? "reward" });
}

function describe(c: FormCase): string {
  const r = run(c);
  return `${c.mode ?? "reward"}: verify(${JSON.stringify(c.response)}, ${
    JSON.stringify(c.gold)
  }) = ${r.correct} (${r.reason}, extracted ${
    JSON.stringify(r.normalized)
  }), expected ${c.expected}`;
}

Deno.test("verify forms: the labelled set covers every family with positives and negatives", () => {
  for (
    const family of [
      "several answers",
      "unordered sets",
      "labelled answers",
      "number formats",
      "rounded decimals",
      "matrices",
      "intervals and inequalities",
      "extraction",
      "numeric precision",
    ]
  ) {
    const cases = CASES.filter((c) => c.family === family);
    assert.ok(cases.some((c) => c.expected), `family "${family}" has no positive case`);
    assert.ok(cases.some((c) => !c.expected), `family "${family}" has no negative case`);
  }
});

Deno.test("verify forms: agreement per family (printed) and no false positive", () => {
  const lines: string[] = [];
  let agree = 0;
  for (const family of FAMILIES) {
    const cases = CASES.filter((c) => c.family === family);
    const ok = cases.filter((c) => run(c).correct === c.expected).length;
    agree += ok;
    lines.push(`  ${family}: ${ok}/${cases.length}`);
  }
  console.log(`agreement ${agree}/${CASES.length}\n${lines.join("\n")}`);
  const falsePositives = CASES.filter((c) => !c.expected && run(c).correct !== false);
  assert.deepEqual(falsePositives.map(describe), []);
});

for (const family of FAMILIES) {
  Deno.test(`verify forms: ${family}`, () => {
    const failures = CASES.filter((c) => c.family === family && run(c).correct !== c.expected);
    assert.deepEqual(failures.map(describe), []);
  });
}
