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
  // The deadline applies only past CLOCK_AFTER_STEPS counted steps: a 60-element set
  // against itself reversed takes about 64,000 (equal when nothing stops it).
  const xs = Array.from({ length: 60 }, (_, i) => `x+${i + 1}`);
  const a = `\\{${xs.join(",")}\\}`;
  const b = `\\{${xs.toReversed().join(",")}\\}`;
  assert.deepEqual(mathEqual(a, b, { budgetMs: 0 }), { equal: false, reason: "timeout" });
  assert.deepEqual(mathEqual(a, b, { budgetSteps: 20_000, budgetMs: Infinity }), {
    equal: false,
    reason: "timeout",
  });
  assert.equal(mathEqual(a, b, { budgetMs: Infinity }).equal, true);
  // A small answer is decided even with a spent deadline: it never reaches the threshold.
  assert.equal(mathEqual("\\binom{10}{5}", "252", { budgetMs: 0 }).equal, true);
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

Deno.test("mathEqual() never calls values equal that float64 under- or overflows", () => {
  assert.deepEqual(eq("\\frac{1}{2004!}", "\\frac{1}{2006!}"), {
    equal: false,
    reason: "undecided",
  });
  assert.deepEqual(eq("e^{-1000}", "e^{-1001}"), { equal: false, reason: "undecided" });
  assert.equal(eq("2^{-2000}", "2^{-2001}").equal, false);
  assert.equal(eq("e^{-1000x}", "e^{-1001x}").equal, false);
  assert.equal(eq("e^{-1000}", "e^{-1000}").equal, true);
  assert.equal(eq("\\frac{1}{2004!}", "\\frac{1}{2004 !}").equal, true);
});

Deno.test("mathEqual() separates closed forms that float64 can tell apart", () => {
  assert.equal(eq("\\sqrt{2}+10^{-12}", "\\sqrt{2}").equal, false);
  assert.equal(eq("\\pi+10^{-13}", "\\pi").equal, false);
  assert.equal(eq("e^{-40}", "0").equal, false);
  assert.deepEqual(eq("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt2}"), {
    equal: true,
    reason: "match-numeric",
  });
  assert.equal(eq("\\sin\\pi", "0").equal, true);
  assert.equal(eq("\\sqrt{2}", "1.4142135624").equal, true);
  assert.equal(eq("\\sqrt{2}", "1.41421").equal, false);
});

Deno.test("mathEqual() accepts a decimal that is the exact gold rounded", () => {
  assert.deepEqual(eq("0.1667", "\\frac16"), { equal: true, reason: "match-rounded" });
  assert.equal(eq("1.4286", "\\frac{10}{7}").equal, true);
  assert.equal(eq("-0.1667", "-\\frac16").equal, true);
  assert.equal(eq("0.1666", "\\frac16").equal, false);
  assert.equal(eq("0.17", "\\frac16").equal, false);
  assert.equal(eq("0.13", "\\frac18").equal, false);
  assert.equal(eq("(0.6667, 2)", "(\\frac23, 2)").equal, true);
  assert.equal(eq("(2, 0.6667)", "(\\frac23, 2)").equal, false);
  assert.equal(mathEqual("0.1667", "\\frac16", { roundedDigits: Infinity }).equal, false);
  assert.equal(mathEqual("0.167", "\\frac16", { roundedDigits: 3 }).equal, true);
});

Deno.test("mathEqual() reads labelled answers", () => {
  assert.equal(eq("(a,b)=(4,-1)", "(4,-1)").equal, true);
  assert.equal(eq("(a,b)=(4,-1)", "(-1,4)").equal, false);
  assert.equal(eq("b_2 = 5, b_7 = 11", "b_7 = 11, b_2 = 5").equal, true);
  assert.equal(eq("b_2 = 5, b_7 = 11", "b_7 = 5, b_2 = 11").equal, false);
  assert.equal(eq("m+n=31", "31").equal, true);
  assert.equal(eq("P(A)=\\frac16", "\\frac16").equal, true);
  assert.equal(eq("2x=6", "6").equal, false);
  assert.equal(eq("x^2=4", "4").equal, false);
});

Deno.test("mathEqual() compares solution sets in any order", () => {
  assert.equal(eq("(5,2,1),(2,5,1)", "(2,5,1),(5,2,1)").equal, true);
  assert.equal(eq("(5,2,1),(2,5,1)", "(2,5,1),(5,1,2)").equal, false);
  assert.equal(eq("x = -2 \\text{ or } x = 7", "7, -2").equal, true);
  assert.equal(eq("x = -2 \\text{ or } x = 7", "7, -3").equal, false);
  assert.equal(eq("-2, 1\\pm\\sqrt3", "1+\\sqrt3, 1-\\sqrt3, -2").equal, true);
  assert.equal(eq("1; -3", "\\{-3, 1\\}").equal, true);
  assert.equal(eq("10, 4, -2", "4, 10, -2").equal, false);
});

Deno.test("mathEqual() reads |L| bounds as intervals and merges unions", () => {
  assert.equal(eq("2 \\le |w| \\le 5", "[-5,-2] \\cup [2,5]").equal, true);
  assert.equal(eq("2 < |w| \\le 5", "[-5,-2] \\cup [2,5]").equal, false);
  assert.equal(eq("|2x-1| \\le 3", "[-1,2]").equal, true);
  assert.equal(eq("|2x-1| \\le 3", "[-1,3]").equal, false);
  assert.equal(eq("|x| > 1", "(-\\infty,-1)\\cup(1,\\infty)").equal, true);
  assert.equal(eq("[0,2] \\cup [2,5]", "[0,5]").equal, true);
  assert.equal(eq("[0,2) \\cup (2,5]", "[0,5]").equal, false);
  assert.equal(eq("(-\\infty,1) \\cup [1,3]", "(-\\infty,3]").equal, true);
});

Deno.test("mathEqual() reads a percentage as a proportion in both directions", () => {
  assert.equal(eq("25\\%", "0.25").equal, true);
  assert.equal(eq("0.25", "25\\%").equal, true);
  assert.equal(eq("25\\%", "25").equal, true);
  assert.equal(eq("25\\%", "0.35").equal, false);
  assert.equal(eq("25", "0.25").equal, false);
});

Deno.test("mathEqual() does not call equal what float64 rounding absorbs", () => {
  assert.deepEqual(eq("\\sqrt{2}+10^{-20}", "\\sqrt2"), { equal: false, reason: "undecided" });
  assert.equal(eq("x^2+10^{-20}", "x^2").equal, false);
  assert.equal(eq("y = x + 10^{-20}", "y = x").equal, false);
  assert.equal(eq("y = e^{-1000x}", "y = e^{-1001x}").equal, false);
  assert.equal(eq("1+\\sin\\pi", "1").equal, true);
  assert.equal(eq("y=2x+1", "2x-y+1=0").equal, true);
});

Deno.test("mathEqual() tolerances are relative at every magnitude", () => {
  // An equation times 3·10⁹√2: the ratio of the two sides' differences is ~4·10⁹ at every
  // point, with float64 rounding far above 1e-8 in absolute terms but ~1e-16 relative.
  const big = "3000000000\\sqrt{2}y = 3000000000\\sqrt{2}x + \\pi";
  const small = "y = x + \\frac{\\pi}{3000000000\\sqrt{2}}";
  assert.equal(eq(big, small).equal, true);
  assert.equal(eq(small, big).equal, true);
  // 10¹²√2 = √(2·10²⁴): values ~1.4e12 whose error bound (~1e-4) is small only relatively.
  assert.equal(eq("1000000000000\\sqrt{2}", "\\sqrt{2000000000000000000000000}").equal, true);
  // The random-point tolerance is 1e-8 relative: curves that differ by 1e-7 or x/10⁶ at points
  // with |x| in [0.5, 2.5) differ by more than that.
  assert.equal(eq("y = x^2 + \\pi", "y = x^2 + \\pi + \\frac{1}{10^7}").equal, false);
  assert.equal(eq("y = x^2", "y = x^2 + \\frac{x}{10^6}").equal, false);
});

Deno.test("mathEqual() tells equations apart by a term ~1e-9 of the others", () => {
  // d₁/d₂ ≈ 1 within 1e-9 at every point; moving x alone changes d₁ half as much as d₂.
  for (
    const [a, b] of [
      ["y = 0.000000001x", "y = 0.000000002x"],
      ["y = 10^{-9}x", "y = 2 \\cdot 10^{-9} x"],
    ]
  ) {
    assert.equal(eq(a, b).equal, false, `${a} vs ${b}`);
    assert.equal(eq(b, a).equal, false, `${b} vs ${a}`);
  }
  // The same equations scaled, including by 10⁹, stay equal.
  for (
    const [a, b] of [
      ["y = 2x + 1", "2y = 4x + 2"],
      ["x^2 + y^2 = 1", "2x^2 + 2y^2 = 2"],
      ["y = 10^{-9}x", "10^9 y = x"],
      ["x > 10^{-9}", "10^9 x > 1"],
      ["y = \\sin x + 10^{-9}z", "10^9 y = 10^9 \\sin x + z"],
      ["\\frac{1}{x} + \\frac{1}{y} = 1", "\\frac{3}{x} + \\frac{3}{y} = 3"],
    ]
  ) {
    assert.equal(eq(a, b).equal, true, `${a} vs ${b}`);
    assert.equal(eq(b, a).equal, true, `${b} vs ${a}`);
  }
});

Deno.test("mathEqual() normalises \\leq, \\cfrac, an answer prefix and 3-digit separators", () => {
  assert.equal(eq("x \\leq 3", "x \\le 3").equal, true);
  assert.equal(eq("x \\leq 3", "x \\ge 3").equal, false);
  assert.equal(eq("\\cfrac{1}{2}", "\\frac12").equal, true);
  assert.equal(eq("The final answer is 5", "5").equal, true);
  // ",\!" is a thousands separator only before a group of exactly three digits.
  assert.equal(eq("12,\\!345", "12345").equal, true);
  assert.equal(eq("1,\\!2345", "12345").equal, false);
});

Deno.test("mathEqual() evaluates tan's argument once: 10 nested tan against twice it fit the budget", () => {
  // tan, cot, sec and csc once evaluated their argument again for sin and for cos (3^depth
  // evaluations): with the equation check's per-variable point pairs, 8 nested tan spent the
  // 200,000-step budget and came out "timeout".
  let nested = "x";
  for (let i = 0; i < 10; i++) nested = `\\tan(${nested})`;
  const result = eq(`${nested} = y`, `2${nested} = 2y`);
  assert.deepEqual(result, { equal: true, reason: "match-random-points" });
  assert.equal(eq(`${nested} = y`, `${nested} = 2y`).equal, false);
});
