// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import {
  defaultTemplate,
  evalTemplateMessage,
  loadEvalProblems,
  parseEvalJsonl,
} from "./eval_data.ts";

Deno.test("loadEvalProblems() reads the bundled GSM8K and MATH-500 test sets", async () => {
  const gsm8k = await loadEvalProblems("gsm8k");
  assert.equal(gsm8k.length, 1319);
  assert.equal(gsm8k[0].gold, "18");
  assert.equal(gsm8k[0].id, "gsm8k/test/000001");
  assert.equal(new Set(gsm8k.map((p) => p.id)).size, 1319);
  const math = await loadEvalProblems("math500");
  assert.equal(math.length, 500);
  const bySubject: Record<string, number> = {};
  for (const p of math) bySubject[p.subject!] = (bySubject[p.subject!] ?? 0) + 1;
  // The counts stated in shared/data/README.md.
  assert.deepEqual(bySubject, {
    "Precalculus": 56,
    "Intermediate Algebra": 97,
    "Algebra": 124,
    "Number Theory": 62,
    "Counting & Probability": 38,
    "Geometry": 41,
    "Prealgebra": 82,
  });
  assert.ok(math.every((p) => p.level! >= 1 && p.level! <= 5));
  assert.equal((await loadEvalProblems("math500", { limit: 2 })).length, 2);
});

Deno.test("loadEvalProblems() gives the arithmetic held-out split and checks its input", async () => {
  const a = await loadEvalProblems("arithmetic", { limit: 5 });
  assert.equal(a.length, 5);
  assert.ok(a[0].question.startsWith("What is "));
  assert.deepEqual(a, await loadEvalProblems("arithmetic", { limit: 5 }));
  assert.equal((await loadEvalProblems("arithmetic")).length, 200);
  await assert.rejects(() => loadEvalProblems("nope"), { name: "RangeError", message: /--data/ });
  await assert.rejects(() => loadEvalProblems("missing/x.jsonl"), {
    name: "NotFound",
    message: /"missing\/x\.jsonl" not found/,
  });
  await assert.rejects(() => loadEvalProblems("gsm8k", { limit: 0 }), /--limit/);
});

Deno.test("parseEvalJsonl() reads ids, fields and chat prompts, naming the line on errors", () => {
  const text = [
    JSON.stringify({ unique_id: "u1", problem: "P?", answer: 5, subject: "Algebra", level: 3 }),
    "",
    JSON.stringify({ prompt: [{ role: "user", content: "Q?" }], ground_truth: "x" }),
  ].join("\n");
  assert.deepEqual(parseEvalJsonl(text, { idPrefix: "f/" }), [
    { id: "f/u1", question: "P?", gold: "5", subject: "Algebra", level: 3 },
    { id: "f/000003", question: "Q?", gold: "x" },
  ]);
  assert.throws(
    () => parseEvalJsonl("{\n", { source: "s.jsonl" }),
    /"s\.jsonl": line 1 is not JSON/,
  );
  assert.throws(() => parseEvalJsonl('{"question": "q"}'), /field "answer"/);
  // An empty question (blank or whitespace, or an empty chat message) names file and line.
  assert.throws(
    () =>
      parseEvalJsonl('{"question": "q", "answer": 1}\n\n{"question": " ", "answer": 2}', {
        source: "s.jsonl",
      }),
    /^SyntaxError: Cannot read problems "s\.jsonl": line 3: field "question" is empty/,
  );
  assert.throws(
    () => parseEvalJsonl('{"prompt": [{"role": "user", "content": ""}], "answer": 2}'),
    /line 1: field "prompt" is empty/,
  );
  assert.throws(
    () => parseEvalJsonl('{"id": 1, "question": "q", "answer": 1}\n'.repeat(2)),
    /appears twice/,
  );
});

Deno.test("evalTemplateMessage() renders the three templates and custom text", () => {
  assert.equal(evalTemplateMessage("Q", "task"), "Q");
  assert.ok(evalTemplateMessage("Q", "dapo").includes("Answer: $Answer"));
  assert.equal(
    evalTemplateMessage("Q", "boxed"),
    "Q\nPlease reason step by step, and put your final answer within \\boxed{}.",
  );
  assert.throws(() => evalTemplateMessage("Q", "fancy"), {
    name: "RangeError",
    message: /--template/,
  });
  assert.equal(defaultTemplate("gsm8k"), "boxed");
});

Deno.test("loadEvalProblems() drops repeated problems (same question and gold), keeping the first, and says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/aime.jsonl`;
    const row = (q: string, a: string) => JSON.stringify({ problem: q, answer: a });
    // Two problems repeated three times (as verl's aime-2024.parquet repeats each 32 times), and
    // a third with the first's question but another gold (kept: not the same problem).
    const lines = [
      row("1 + 1?", "2"),
      row("2 + 2?", "4"),
      row("1 +  1? ", "2"),
      row("2 + 2?", "4"),
    ];
    lines.push(row("1 + 1?", "2"), row("2 + 2?", "4"), row("1 + 1?", "3"));
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    const told: [number, number][] = [];
    const problems = await loadEvalProblems(path, { onRepeats: (r, n) => told.push([r, n]) });
    assert.deepEqual(problems.map((p) => [p.id, p.gold]), [
      ["aime/000001", "2"],
      ["aime/000002", "4"],
      ["aime/000007", "3"],
    ]);
    assert.deepEqual(told, [[4, 7]]);
    assert.equal((await loadEvalProblems(path, { limit: 2 })).length, 2);
    // The bundled sets hold no repeats.
    const quiet: number[] = [];
    await loadEvalProblems("math500", { onRepeats: (r) => quiet.push(r) });
    assert.deepEqual(quiet, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
