// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { LatexSyntax } from "@cortex-js/compute-engine/latex-syntax";
import { type AnswerNode, parseAnswer } from "./parse_answer.ts";
import { normalizeAnswer } from "./normalize_answer.ts";

function node(latex: string): AnswerNode {
  const r = parseAnswer(latex);
  if (!r.ok) throw new Error(`expected ${latex} to parse, got ${r.reason}`);
  return r.node;
}

const key = (x: unknown) => JSON.stringify(x, (_k, v) => typeof v === "bigint" ? `${v}n` : v);

Deno.test("parseAnswer() builds exact numbers from decimals and repeating decimals", () => {
  assert.deepEqual(node("0.5"), { kind: "number", n: 1n, d: 2n });
  assert.deepEqual(node("0.\\overline{3}"), { kind: "number", n: 1n, d: 3n });
  assert.deepEqual(node("12345678901234567890"), {
    kind: "number",
    n: 12345678901234567890n,
    d: 1n,
  });
  assert.deepEqual(node("1\\frac{4}{5}"), { kind: "number", n: 9n, d: 5n });
});

Deno.test("parseAnswer() recognises tuples, sets, intervals and matrices", () => {
  assert.equal(node("(1,2,3)").kind, "tuple");
  assert.equal(node("\\{1,2\\}").kind, "set");
  assert.deepEqual(node("\\emptyset"), { kind: "set", items: [] });
  const iv = node("(3,4]");
  assert.ok(iv.kind === "interval" && iv.loOpen && !iv.hiOpen);
  const m = node("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}");
  assert.ok(m.kind === "matrix" && m.rows.length === 2 && m.rows[0].length === 2);
});

Deno.test("parseAnswer() normalises Greater to Less and splits inequality chains", () => {
  const r = node("2>a");
  assert.ok(r.kind === "relation" && r.op === "<" && r.lhs.kind === "symbol");
  const chain = node("1 < x \\le 3");
  assert.ok(chain.kind === "and" && chain.items.length === 2);
});

Deno.test("parseAnswer() maps \\pm, bases and text", () => {
  assert.equal(node("1\\pm\\sqrt{2}").kind, "pm");
  assert.deepEqual(node("52_8"), { kind: "base", value: 42n, base: 8 });
  assert.deepEqual(node("\\text{east}"), { kind: "text", text: "east" });
});

Deno.test("parseAnswer() reports syntax errors and refuses oversized input", () => {
  assert.deepEqual(parseAnswer("\\frac{1}{"), { ok: false, reason: "syntax" });
  assert.deepEqual(parseAnswer(""), { ok: false, reason: "empty" });
  assert.deepEqual(parseAnswer("x+".repeat(300) + "1"), { ok: false, reason: "too-large" });
  assert.deepEqual(parseAnswer("(".repeat(30) + "1" + ")".repeat(30)), {
    ok: false,
    reason: "too-large",
  });
  assert.ok(parseAnswer("x+".repeat(300) + "1", { maxLength: 1000 }).ok);
});

Deno.test("parseAnswer() is unaffected by earlier calls (shared parser holds no state)", () => {
  const answers = Deno.readTextFileSync(
    new URL("../tests/fixtures/verify_math500.jsonl", import.meta.url),
  ).trim().split("\n").map((l) => normalizeAnswer(JSON.parse(l).answer));
  const forward = answers.map((a) => key(parseAnswer(a)));
  const backward = [...answers].reverse().map((a) => key(parseAnswer(a))).reverse();
  assert.deepEqual(forward, backward);
  // and the shared instance agrees with a fresh one, after all those calls
  const fresh = new LatexSyntax();
  const shared = new LatexSyntax();
  for (const a of answers) shared.parse(a);
  for (const a of answers) assert.equal(key(fresh.parse(a)), key(shared.parse(a)));
});
