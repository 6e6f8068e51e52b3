// Copyright 2025 the halo authors. MIT license.
// Table-driven cases grouped by phenomenon (fixtures/verify_cases.jsonl). Each line is
// either {"kind": "equal", "group", "a", "b", "equal", "options"?} — checked with
// mathEqual() in both argument orders — or {"kind": "verify", "group", "response", "gold",
// "expected" (true | false | null), "extractor"?, "markerOffset"?, "reason"?, "options"?}.

import assert from "node:assert/strict";
import { mathEqual, verify, type VerifyOptions } from "../verify/mod.ts";

interface EqualCase {
  kind: "equal";
  group: string;
  a: string;
  b: string;
  equal: boolean;
  options?: VerifyOptions;
}

interface VerifyCase {
  kind: "verify";
  group: string;
  response: string;
  gold: string;
  expected: boolean | null;
  extractor?: string;
  markerOffset?: number;
  reason?: string;
  options?: VerifyOptions;
}

const CASES: (EqualCase | VerifyCase)[] = Deno.readTextFileSync(
  new URL("./fixtures/verify_cases.jsonl", import.meta.url),
).trim().split("\n").map((l) => JSON.parse(l));

// Generous budget: these checks are about decisions, not speed (tested elsewhere).
const BUDGET = { budgetMs: 5000 };

function check(c: EqualCase | VerifyCase): string | null {
  if (c.kind === "equal") {
    const ab = mathEqual(c.a, c.b, { ...BUDGET, ...c.options });
    const ba = mathEqual(c.b, c.a, { ...BUDGET, ...c.options });
    if (ab.equal !== c.equal || ba.equal !== c.equal) {
      return `mathEqual(${JSON.stringify(c.a)}, ${
        JSON.stringify(c.b)
      }) = ${ab.equal}/${ba.equal} (${ab.reason}/${ba.reason}), expected ${c.equal}`;
    }
    return null;
  }
  const r = verify(c.response, c.gold, { ...BUDGET, ...c.options });
  const problems: string[] = [];
  if (r.correct !== c.expected) {
    problems.push(`correct=${r.correct} (${r.reason}), expected ${c.expected}`);
  }
  if (c.extractor !== undefined && r.extractor !== c.extractor) {
    problems.push(`extractor=${r.extractor}, expected ${c.extractor}`);
  }
  if (c.markerOffset !== undefined && r.markerOffset !== c.markerOffset) {
    problems.push(`markerOffset=${r.markerOffset}, expected ${c.markerOffset}`);
  }
  if (c.reason !== undefined && r.reason !== c.reason) {
    problems.push(`reason=${r.reason}, expected ${c.reason}`);
  }
  return problems.length === 0
    ? null
    : `verify(${JSON.stringify(c.response.slice(0, 80))}, ${JSON.stringify(c.gold)}): ${
      problems.join("; ")
    }`;
}

const groups = [...new Set(CASES.map((c) => c.group))];

for (const group of groups) {
  Deno.test(`verify cases: ${group}`, () => {
    const failures = CASES.filter((c) => c.group === group).map(check).filter((x) => x !== null);
    assert.deepEqual(failures, []);
  });
}

Deno.test("verify cases: the table covers every phenomenon of the brief", () => {
  assert.ok(CASES.length >= 200, `expected >= 200 cases, got ${CASES.length}`);
  for (
    const g of [
      "integers and decimals",
      "fractions",
      "radicals",
      "pi and e",
      "scientific notation",
      "symbolic expressions",
      "tuples (ordered)",
      "sets (unordered)",
      "intervals",
      "plus-minus",
      "equations",
      "inequalities",
      "multiple choice",
      "matrices",
    ]
  ) assert.ok(groups.includes(g), `missing group ${g}`);
});
