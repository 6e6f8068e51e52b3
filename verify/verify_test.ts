// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { verify } from "./verify.ts";
import { prepareGold } from "./prepare_gold.ts";

Deno.test("verify() reports extraction, normalisation, offset and reason", () => {
  const response = "Adding up, we get $\\boxed{\\dfrac{1}{2}}$.";
  const r = verify(response, "0.5");
  assert.deepEqual(r, {
    correct: true,
    reason: "match-exact",
    extracted: "\\dfrac{1}{2}",
    normalized: "\\frac{1}{2}",
    goldNormalized: "0.5",
    extractor: "boxed",
    markerOffset: response.indexOf("\\boxed"),
  });
});

Deno.test("verify() fixes DAPO's string-match false negatives", () => {
  assert.equal(verify("Answer: 13.0", "13").correct, true);
  assert.equal(verify("Answer: 0.5", "\\frac{1}{2}").correct, true);
  assert.equal(verify("Answer: \\dfrac{1}{2}", "\\frac{1}{2}").correct, true);
});

Deno.test("verify() reads an Answer: whose value is on the next line, as DAPO does", () => {
  const gsm =
    "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18";
  const text = "So she makes $18 per day.\nAnswer:\n18";
  const r = verify(text, gsm);
  assert.equal(r.correct, true);
  assert.equal(r.extracted, "18");
  assert.equal(r.markerOffset, text.indexOf("Answer"));
  assert.equal(verify("**Answer:**\n\n18", "18").correct, true);
  const wrong = verify("Answer:\n\nLet me think", "5");
  assert.equal(wrong.correct, false);
  assert.equal(wrong.extracted, "Let me think");
});

Deno.test("verify() requires a marker in reward mode and not in eval mode", () => {
  const r = verify("So it is $\\frac{1}{2}$.", "0.5");
  assert.equal(r.correct, false);
  assert.equal(r.reason, "no-answer");
  assert.equal(r.markerOffset, null);
  const e = verify("So it is $\\frac{1}{2}$.", "0.5", { mode: "eval" });
  assert.equal(e.correct, true);
  assert.equal(e.extractor, "latex");
});

Deno.test("verify() extracts a gold written as text in eval mode", () => {
  const gold = "Adding the two parts gives $\\boxed{12}$ marbles.";
  assert.equal(verify("Answer: 12", gold, { mode: "eval" }).correct, true);
  assert.equal(verify("Answer: 12", "The answer is 12.", { mode: "eval" }).correct, true);
  assert.equal(verify("Answer: 12", gold).correct, true, "\\boxed in a gold is read in any mode");
  assert.equal(verify("Answer: 12", "Twelve marbles in all", { mode: "eval" }).correct, false);
});

Deno.test("verify() gives null, never false, for an unusable gold", () => {
  for (const gold of ["", "  ", "\\frac{1}{", "x+".repeat(400)]) {
    const r = verify("\\boxed{1}", gold);
    assert.equal(r.correct, null, JSON.stringify(gold));
    assert.equal(r.reason, "gold-unparseable");
  }
});

Deno.test("verify() accepts a prepared gold and gives the same results", () => {
  const gold = prepareGold("(1, \\sqrt{2})");
  for (
    const resp of ["\\boxed{(1,\\sqrt2)}", "\\boxed{(\\sqrt2, 1)}", "Answer: (1, 1.41421356237)"]
  ) {
    assert.deepEqual(verify(resp, gold), verify(resp, "(1, \\sqrt{2})"));
  }
});

Deno.test("verify() stays within its budget and never throws", () => {
  const nasty = [
    "\\boxed{" + "{".repeat(10000) + "}".repeat(10000) + "}",
    "\\boxed{" + "ab".repeat(5000) + "}",
    "\\boxed{\\binom{10^{9}}{5\\cdot 10^{8}}}",
    "\\boxed{" + "\\sqrt{".repeat(20) + "x" + "}".repeat(20) + "}",
    null as unknown as string,
  ];
  for (const resp of nasty) {
    const t = performance.now();
    const r = verify(resp, "x^2+1", { budgetMs: 50 });
    assert.equal(r.correct, false);
    assert.ok(performance.now() - t < 500, `took ${performance.now() - t} ms`);
  }
});
