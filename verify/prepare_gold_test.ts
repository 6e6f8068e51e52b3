// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { prepareGold } from "./prepare_gold.ts";

Deno.test("prepareGold() normalises and parses the gold once", () => {
  const g = prepareGold("\\dfrac{1}{2}");
  assert.equal(g.kind, "prepared-gold");
  assert.equal(g.normalized, "\\frac{1}{2}");
  assert.equal(g.error, null);
  assert.deepEqual(g.literal, { n: 1n, d: 2n });
  assert.equal(g.node?.kind, "apply");
});

Deno.test("prepareGold() extracts \\boxed and #### from a gold solution", () => {
  assert.equal(prepareGold("so $\\boxed{7}$").normalized, "7");
  const gsm = prepareGold("She sells 16 - 3 - 4 = 9 eggs.\n#### 18");
  assert.equal(gsm.normalized, "18");
  assert.equal(gsm.extractor, "gsm8k");
});

Deno.test("prepareGold() in eval mode reads a gold written as prose", () => {
  assert.equal(
    prepareGold("The answer is $\\frac{3}{4}$.", { mode: "eval" }).normalized,
    "\\frac{3}{4}",
  );
  assert.equal(prepareGold("The answer is 12.", { mode: "eval" }).normalized, "12");
});

Deno.test("prepareGold() marks unusable golds", () => {
  assert.equal(prepareGold("").error, "empty");
  assert.equal(prepareGold("\\frac{1}{").error, "syntax");
  assert.equal(prepareGold("(".repeat(40) + ")".repeat(40)).error, "too-large");
  assert.equal(prepareGold(42 as unknown as string).node, null);
});
