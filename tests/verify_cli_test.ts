// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { type CliIO, main } from "../cli/verify.ts";

function io(files: Record<string, string> = {}): CliIO & { out_: string[]; err_: string[] } {
  const out_: string[] = [];
  const err_: string[] = [];
  return {
    out_,
    err_,
    out: (l) => out_.push(l),
    err: (l) => err_.push(l),
    readTextFile: (p) =>
      p in files ? Promise.resolve(files[p]) : Promise.reject(new Error(`no such file ${p}`)),
  };
}

Deno.test("main() prints the decision and the reason for one pair", async () => {
  const x = io();
  assert.equal(await main(["--gold", "\\frac12", "--response", "so \\boxed{0.5}"], x), 0);
  assert.equal(
    x.out_[0],
    'correct (match-exact) extractor=boxed offset=3 answer="0.5" gold="\\\\frac{1}{2}"',
  );
});

Deno.test("main() --json prints the verify result", async () => {
  const x = io();
  await main(["--json", "--mode", "eval", "--gold", "13", "--response", "The answer is 13."], x);
  const r = JSON.parse(x.out_[0]);
  assert.equal(r.correct, true);
  assert.equal(r.extractor, "plain");
});

Deno.test("main() --file verifies JSON lines and prints a summary", async () => {
  const file = [
    JSON.stringify({ response: "Answer: 5", gold: "5" }),
    JSON.stringify({ response: "Answer: 6", gold: "5" }),
    JSON.stringify({ response: "Answer: 5", gold: "\\frac{1}{" }),
    "",
  ].join("\n");
  const x = io({ "pairs.jsonl": file });
  assert.equal(await main(["--file", "pairs.jsonl"], x), 0);
  assert.match(x.out_[0], /^1: correct/);
  assert.match(x.out_[1], /^2: incorrect \(mismatch\)/);
  assert.match(x.out_[2], /^3: skip \(gold-unparseable\)/);
  assert.equal(x.out_[3], "1 correct, 1 incorrect, 1 skipped (accuracy 0.5000)");
});

Deno.test("main() --problem reads the problem's nouns after a plain-number answer", async () => {
  const problem = "Tom has 3 bananas and gets 9 more. How many bananas does he have?";
  let x = io();
  assert.equal(await main(["--gold", "12", "--response", "#### 12 bananas"], x), 0);
  assert.match(x.out_[0], /^incorrect \(mismatch\)/, "without the problem, as before");
  x = io();
  const args = ["--gold", "12", "--response", "#### 12 bananas", "--problem", problem];
  assert.equal(await main(args, x), 0);
  assert.match(x.out_[0], /^correct \(match-string\)/);
  x = io();
  assert.equal(
    await main(["--gold", "12", "--response", "#### 12 more", "--problem", problem], x),
    0,
  );
  assert.match(x.out_[0], /^incorrect/);
  // Per line in --file ("problem" optional; it overrides --problem for its line).
  const file = [
    JSON.stringify({ response: "#### 12 bananas", gold: "12", problem }),
    JSON.stringify({ response: "#### 12 bananas", gold: "12" }),
    JSON.stringify({ response: "#### 13 bananas", gold: "12", problem }),
  ].join("\n");
  x = io({ "p.jsonl": file });
  assert.equal(await main(["--file", "p.jsonl"], x), 0);
  assert.match(x.out_[0], /^1: correct/);
  assert.match(x.out_[1], /^2: incorrect/);
  assert.match(x.out_[2], /^3: incorrect/);
  x = io({ "bad.jsonl": JSON.stringify({ response: "1", gold: "1", problem: 7 }) });
  assert.equal(await main(["--file", "bad.jsonl"], x), 2);
  assert.match(
    x.err_[0],
    /expected \{"response": string, "gold": string, "problem"\?: string\} on line 1/,
  );
});

Deno.test("main() reports usage errors with what was expected and what came", async () => {
  let x = io();
  assert.equal(await main(["--mode", "fast", "--gold", "1", "--response", "1"], x), 2);
  assert.equal(x.err_[0], 'error: expected --mode reward or eval, got "fast"');
  x = io();
  assert.equal(await main(["--gold", "1"], x), 2);
  assert.match(x.err_[0], /expected --gold and --response \(or --file\), got no --response/);
  x = io();
  assert.equal(await main(["--extractors", "boxed,magic", "--gold", "1", "--response", "1"], x), 2);
  assert.match(x.err_[0], /expected --extractors from boxed,.*got "boxed,magic"/);
  x = io({ "bad.jsonl": "{not json" });
  assert.equal(await main(["--file", "bad.jsonl"], x), 2);
  assert.match(x.err_[0], /expected JSON on line 1/);
  x = io();
  assert.equal(await main(["--bogus"], x), 2);
  x = io();
  assert.equal(await main(["--file", "missing.jsonl"], x), 2);
  assert.match(x.err_[0], /cannot read missing.jsonl/);
});

Deno.test("main() --help prints usage", async () => {
  const x = io();
  assert.equal(await main(["--help"], x), 0);
  assert.match(x.out_[0], /^Usage: deno task verify/);
});
