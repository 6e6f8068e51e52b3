// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import type { EvalSampleRecord } from "./eval_records.ts";
import { summarizeEval } from "./eval_summary.ts";
import { comparisonMarkdown, passAtKChart, summaryMarkdown } from "./eval_report.ts";
import { countRole, xmlProblem } from "../plot/test_utils.ts";

function records(correct: boolean[][], extra: Partial<EvalSampleRecord> = {}): EvalSampleRecord[] {
  return correct.flatMap((row, p) =>
    row.map((c, i) => ({
      id: `p${p}`,
      sample: i,
      gold: "1",
      text: "",
      answer: c ? "1" : "2",
      correct: c,
      reason: c ? "match-string" as const : "mismatch" as const,
      vote: row.indexOf(c),
      tokens: 5,
      stop: "eos",
      subject: p % 2 ? "Algebra" : "Geometry",
      level: 1 + (p % 3),
      ...extra,
    }))
  );
}

const grid = [[true, false, false, false], [false, false, false, false], [true, true, false, true]];

Deno.test("summaryMarkdown() lists every metric and the subject and level tables", () => {
  const summary = summarizeEval(records(grid), { config: { data: "toy", k: 4 } });
  const md = summaryMarkdown(summary, { title: "toy" });
  assert.ok(md.startsWith("# toy\n"));
  for (const row of ["pass@1", "pass@2", "pass@4", "avg@4", "maj@1", "maj@2", "maj@4"]) {
    assert.ok(md.includes(`| ${row} | `), row);
  }
  assert.ok(md.includes("| pass@1 | 33.3 ["));
  assert.ok(md.includes("## By subject") && md.includes("| Algebra | 1 |"));
  assert.ok(md.includes("## By level") && md.includes("| 3 | 1 |"));
  assert.ok(md.includes("| reason mismatch | 8 |"));
  assert.equal(summaryMarkdown(summary, { title: "toy" }), md);
});

Deno.test("comparisonMarkdown() puts models side by side and checks n", () => {
  const a = summarizeEval(records(grid));
  const b = summarizeEval(records(grid.map((r) => r.map(() => true))));
  const md = comparisonMarkdown([{ name: "base", summary: a }, { name: "rl", summary: b }]);
  assert.ok(md.includes("| metric | base | rl |"));
  assert.ok(md.includes("| pass@4 | 66.7 ["));
  assert.ok(md.includes("| pass@1 · Algebra | "));
  assert.ok(md.includes("| maj@4 · level 2 | "));
  const c = summarizeEval(records([[true, false]]));
  assert.throws(
    () => comparisonMarkdown([{ name: "a", summary: a }, { name: "c", summary: c }]),
    /2 samples/,
  );
  assert.throws(() => comparisonMarkdown([]), RangeError);
});

Deno.test("passAtKChart() draws well-formed SVG with one pass@k and one maj@k line per entry", async () => {
  const a = summarizeEval(records(grid));
  const svg = await passAtKChart([{ name: "base", summary: a }, { name: "rl", summary: a }]);
  assert.equal(xmlProblem(svg), null);
  assert.equal(countRole(svg, "line mark"), 4);
  for (const name of ["base pass@k", "base maj@k", "rl pass@k", "rl maj@k"]) {
    assert.ok(svg.includes(name));
  }
  await assert.rejects(() => passAtKChart([]), RangeError);
});
