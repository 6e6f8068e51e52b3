// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { type EvalSampleRecord, formatSampleLines, parseSamplesJsonl } from "./eval_records.ts";

function record(
  id: string,
  sample: number,
  extra: Partial<EvalSampleRecord> = {},
): EvalSampleRecord {
  return {
    id,
    sample,
    gold: "3",
    text: `text ${id} ${sample}\n"quoted"`,
    answer: sample % 2 === 0 ? "3" : null,
    correct: sample % 2 === 0,
    reason: sample % 2 === 0 ? "match-string" : "no-answer",
    vote: sample % 2 === 0 ? 0 : null,
    tokens: 10 + sample,
    stop: "eos",
    ...extra,
  };
}

const prompt = (id: string, k: number, extra: Partial<EvalSampleRecord> = {}) =>
  Array.from({ length: k }, (_, i) => record(id, i, extra));

Deno.test("formatSampleLines() and parseSamplesJsonl() round-trip whole prompts", () => {
  const records = [...prompt("a", 3), ...prompt("b", 3, { subject: "Algebra", level: 2 })];
  const text = formatSampleLines(records);
  const parsed = parseSamplesJsonl(text, { k: 3 });
  assert.deepEqual(parsed.records, records);
  assert.deepEqual(parsed.prompts, ["a", "b"]);
  assert.equal(parsed.droppedLines, 0);
  assert.deepEqual(parsed.droppedPrompts, []);
  assert.equal(formatSampleLines(parsed.records), text); // byte-stable
  assert.deepEqual(parseSamplesJsonl("").records, []);
});

Deno.test("parseSamplesJsonl() drops a torn last line and the unfinished prompt", () => {
  const whole = formatSampleLines(prompt("a", 2));
  const next = formatSampleLines(prompt("b", 2));
  // Cut the second prompt's text at every byte: the first prompt always survives alone.
  for (let cut = 0; cut < next.length; cut++) {
    const parsed = parseSamplesJsonl(whole + next.slice(0, cut), { k: 2 });
    assert.deepEqual(parsed.prompts, ["a"], `cut at ${cut}`);
    assert.deepEqual(parsed.records, prompt("a", 2));
  }
  const oneLine = parseSamplesJsonl(whole + next.split("\n")[0] + "\n", { k: 2 });
  assert.deepEqual(oneLine.droppedPrompts, ["b"]);
  assert.equal(oneLine.droppedLines, 0);
  const torn = parseSamplesJsonl(whole + next.slice(0, 30), { k: 2 });
  assert.equal(torn.droppedLines, 1);
  // A complete-looking but invalid last line (killed after "\n" of a half record) is dropped too.
  const bad = parseSamplesJsonl(whole + '{"id":"b"}\n', { k: 2 });
  assert.equal(bad.droppedLines, 1);
});

Deno.test("parseSamplesJsonl() rejects corruption before the tail, naming the file and line", () => {
  const a = formatSampleLines(prompt("a", 2));
  const b = formatSampleLines(prompt("b", 2));
  assert.throws(() => parseSamplesJsonl("garbage\n" + a + b, { k: 2, source: "s.jsonl" }), {
    name: "SyntaxError",
    message: /"s\.jsonl": line 1: not JSON/,
  });
  assert.throws(() => parseSamplesJsonl(a + b + a, { k: 2 }), /prompt "a" appears twice/);
  const swapped = formatSampleLines([record("a", 1), record("a", 0)]);
  assert.throws(() => parseSamplesJsonl(swapped, { k: 2 }), /starts with sample 1/);
  const short = formatSampleLines([record("a", 0), ...prompt("b", 2)]);
  assert.throws(() => parseSamplesJsonl(short, { k: 2 }), /prompt "a" has 1 samples, expected 2/);
  const wrongField = JSON.stringify({ ...record("c", 0), reason: "nope" }) + "\n";
  assert.throws(() => parseSamplesJsonl(wrongField + a, { k: 2 }), /field "reason"/);
});
