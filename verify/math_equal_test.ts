// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { mathEqual } from "./math_equal.ts";

const eq = (a: string, b: string) => mathEqual(a, b, { budgetMs: 5000 });

Deno.test("mathEqual() compares rationals exactly", () => {
  assert.deepEqual(eq("13.0", "13"), { equal: true, reason: "match-exact" });
  assert.deepEqual(eq("0.5", "\\frac12"), { equal: true, reason: "match-exact" });
  assert.equal(eq("0.333", "\\frac13").equal, false);
  assert.equal(eq("2^{64}", "18446744073709551616").equal, true);
  assert.equal(eq("2^{64}", "18446744073709551617").equal, false);
});

Deno.test("mathEqual() compares closed forms numerically with relative tolerance 1e-9", () => {
  assert.deepEqual(eq("\\sqrt{8}", "2\\sqrt{2}"), { equal: true, reason: "match-numeric" });
  assert.equal(eq("\\pi", "3.14159265").equal, false);
  assert.equal(eq("\\pi", "3.14159265358979").equal, true);
  assert.equal(mathEqual("\\pi", "3.14159265358979", { relTol: 1e-16 }).equal, false);
});

Deno.test("mathEqual() compares expressions with variables at seeded random points", () => {
  assert.deepEqual(eq("(x+1)^2", "x^2+2x+1"), { equal: true, reason: "match-random-points" });
  assert.equal(eq("(x+1)^2", "x^2+2x+2").equal, false);
  assert.equal(eq("\\frac{a}{b}", "\\frac{b}{a}").equal, false);
  assert.equal(eq("\\sqrt{x^2}", "x").equal, false, "points of both signs are used");
});

Deno.test("mathEqual() compares tuples in order and sets in any order", () => {
  assert.equal(eq("(1, 2)", "(2, 1)").equal, false);
  assert.equal(eq("\\{1, 2\\}", "\\{2, 1\\}").equal, true);
  assert.equal(eq("10, 4, -2", "4, 10, -2").equal, false);
  assert.equal(mathEqual("10, 4, -2", "4, 10, -2", { unorderedLists: true }).equal, true);
});

Deno.test("mathEqual() compares intervals, equations and inequalities", () => {
  assert.equal(eq("[1, 2)", "[1, 2]").equal, false);
  assert.equal(eq("(3, \\infty)", "x > 3").equal, true);
  assert.equal(eq("x = 3", "3").equal, true);
  assert.equal(eq("a < 2", "2 > a").equal, true);
  assert.equal(eq("y = 2x + 1", "2x - y + 1 = 0").equal, true);
  assert.equal(eq("x + y - z + 2 = 0", "5x - 7y + 11z + 4 = 0").equal, false);
});

Deno.test("mathEqual() is symmetric on a sample of pairs", () => {
  const xs = ["1/2", "0.5", "(1,2)", "\\{1,2\\}", "x^2-1", "(x-1)(x+1)", "x=3", "3", "[1,2]", "C"];
  for (const a of xs) {
    for (const b of xs) assert.equal(eq(a, b).equal, eq(b, a).equal, `${a} ~ ${b}`);
  }
});

Deno.test("mathEqual() answers timeout when the budget is spent", () => {
  const r = mathEqual("\\binom{100000}{50000}", "\\binom{100000}{49999}", { budgetMs: 0 });
  assert.deepEqual(r, { equal: false, reason: "timeout" });
});

Deno.test("mathEqual() never throws on bad input", () => {
  assert.deepEqual(mathEqual(null as unknown as string, "1"), {
    equal: false,
    reason: "invalid-input",
  });
  assert.equal(mathEqual("\\frac{1}{", "\\frac{1}{").reason, "match-string");
  assert.equal(mathEqual("\\frac{1}{", "1").reason, "response-unparseable");
  assert.equal(mathEqual("", "").reason, "no-answer");
});
