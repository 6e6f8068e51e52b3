// Copyright 2025 the halo authors. MIT license.
// Property tests (fast-check): the verifier never throws, equivalence is reflexive and
// symmetric on parsed answers, and the time budget holds on adversarial inputs.

import assert from "node:assert/strict";
import fc from "fast-check";
import { extractAnswer, mathEqual, normalizeAnswer, parseAnswer, verify } from "./mod.ts";
import { compareParsed } from "./_decide.ts";
import { Budget } from "./_budget.ts";

const SEED = 20250101;

/** Random LaTeX-ish soup: valid and invalid token sequences. */
const TOKENS = [
  "0",
  "1",
  "2",
  "7",
  "13",
  ".5",
  "-",
  "+",
  "*",
  "/",
  "^",
  "_",
  "=",
  "<",
  ">",
  ",",
  ".",
  " ",
  "x",
  "y",
  "i",
  "e",
  "{",
  "}",
  "(",
  ")",
  "[",
  "]",
  "\\{",
  "\\}",
  "\\frac",
  "\\dfrac",
  "\\sqrt",
  "\\pi",
  "\\infty",
  "\\pm",
  "\\cdot",
  "\\times",
  "\\left(",
  "\\right)",
  "\\text{",
  "\\boxed{",
  "$",
  "\\(",
  "\\)",
  "\\\\",
  "&",
  "\\begin{pmatrix}",
  "\\end{pmatrix}",
  "\\%",
  "^\\circ",
  "Answer: ",
  "#### ",
  "\\cup",
  "\\in",
  "\\le",
  "!",
  "\\binom",
  "\\log",
  "\\sin",
  "\n",
  "π",
  "−",
];
const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(""));
const anyText = fc.oneof(
  soup,
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

/** Well-formed answers from a small grammar. */
const { answer } = fc.letrec((tie) => ({
  atom: fc.oneof(
    fc.integer({ min: -50, max: 50 }).map(String),
    fc.tuple(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 1, max: 9 })).map(([a, b]) =>
      `${a}.${b}`
    ),
    fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 })).map(([a, b]) =>
      `\\frac{${a}}{${b}}`
    ),
    fc.integer({ min: 2, max: 50 }).map((n) => `\\sqrt{${n}}`),
    fc.constantFrom("x", "y", "\\pi", "e", "i", "a"),
  ),
  expr: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    tie("atom") as fc.Arbitrary<string>,
    fc.tuple(
      tie("expr") as fc.Arbitrary<string>,
      fc.constantFrom("+", "-", "\\cdot "),
      tie("expr") as fc.Arbitrary<string>,
    )
      .map(([a, op, b]) => `${a}${op}${b}`),
    fc.tuple(tie("expr") as fc.Arbitrary<string>, fc.integer({ min: 2, max: 3 })).map(([a, n]) =>
      `(${a})^{${n}}`
    ),
  ),
  answer: fc.oneof(
    tie("expr") as fc.Arbitrary<string>,
    fc.array(tie("expr") as fc.Arbitrary<string>, { minLength: 2, maxLength: 3 }).map((xs) =>
      `(${xs.join(",")})`
    ),
    fc.array(tie("atom") as fc.Arbitrary<string>, { minLength: 1, maxLength: 3 }).map((xs) =>
      `\\{${xs.join(",")}\\}`
    ),
    fc.tuple(tie("atom") as fc.Arbitrary<string>, tie("atom") as fc.Arbitrary<string>, fc.boolean())
      .map(([a, b, o]) => `${o ? "(" : "["}${a},${b}]`),
    fc.tuple(
      fc.constantFrom("x", "y"),
      fc.constantFrom("=", "<", "\\le"),
      tie("atom") as fc.Arbitrary<string>,
    )
      .map(([v, op, a]) => `${v}${op}${a}`),
    tie("atom").map((a) => `${a}\\pm 1`),
  ),
}));

Deno.test("verify() and friends never throw on arbitrary input", () => {
  fc.assert(
    fc.property(anyText, anyText, (response, gold) => {
      const r = verify(response, gold);
      assert.ok(r.correct === true || r.correct === false || r.correct === null);
      assert.equal(typeof r.reason, "string");
      const e = mathEqual(response, gold);
      assert.equal(typeof e.equal, "boolean");
      normalizeAnswer(response);
      extractAnswer(response, { mode: "eval", extractors: ["latex", "plain", "last_number"] });
      parseAnswer(gold);
    }),
    { numRuns: 400, seed: SEED },
  );
});

Deno.test("mathEqual() is reflexive on parsed answers", () => {
  fc.assert(
    fc.property(answer, (a) => {
      const n = normalizeAnswer(a);
      const p1 = parseAnswer(n);
      const p2 = parseAnswer(n);
      fc.pre(p1.ok && p2.ok);
      if (!p1.ok || !p2.ok) return;
      // Two separately parsed trees, compared without the string fast path.
      const d = compareParsed(p1.node, p2.node, `${n} `, n, {
        options: {},
        budget: new Budget(Infinity),
      });
      assert.equal(d.equal, true, `${a} (${n}) is not equal to itself: ${d.reason}`);
    }),
    { numRuns: 300, seed: SEED },
  );
});

Deno.test("mathEqual() is symmetric on parsed answers", () => {
  const related = fc.oneof(
    fc.tuple(answer, answer),
    // pairs that are often equal: the same answer re-spaced or with \dfrac
    answer.map((a) =>
      [a, ` ${a.replace(/\\frac/g, "\\dfrac").replace(/,/g, ", ")} `] as [string, string]
    ),
  );
  fc.assert(
    fc.property(related, ([a, b]) => {
      const opts = { budgetMs: Infinity };
      const ab = mathEqual(a, b, opts).equal;
      const ba = mathEqual(b, a, opts).equal;
      assert.equal(ab, ba, `${a} vs ${b}`);
    }),
    { numRuns: 300, seed: SEED },
  );
});

// The parser is the one step that cannot be pre-empted; inputs are size-guarded before it
// so that it stays far below this slack even on a slow CI machine.
const SLACK_MS = 300;

Deno.test("verify() holds its time budget on adversarial inputs", () => {
  const nasty = fc.oneof(
    fc.integer({ min: 1, max: 5000 }).map((d) => "{".repeat(d) + "1" + "}".repeat(d)),
    fc.integer({ min: 1, max: 5000 }).map((d) => "(".repeat(d)),
    fc.integer({ min: 1, max: 3000 }).map((d) => "\\frac{".repeat(d)),
    fc.integer({ min: 1, max: 200 }).map((d) => "\\sqrt{".repeat(d) + "x" + "}".repeat(d)),
    fc.string({ minLength: 10000, maxLength: 10000 }),
    soup.map((s) => s.repeat(Math.ceil(10000 / Math.max(1, s.length))).slice(0, 10000)),
    fc.constantFrom(
      "ab".repeat(5000),
      "x+".repeat(5000) + "1",
      "\\binom{10^{9}}{5\\cdot10^{8}}",
      "100000!",
      "10^{10^{10}}",
      "(x+1)^{100000}",
      "\\{" + Array.from({ length: 300 }, (_, i) => `\\sqrt{${i}}`).join(",") + "\\}",
    ),
  );
  fc.assert(
    fc.property(nasty, fc.constantFrom("\\boxed{%}", "Answer: %", "%"), (a, wrap) => {
      const response = wrap.replace("%", () => a);
      const budgetMs = 100;
      for (const gold of ["5", "x^2+1", "\\{1,2\\}", a.slice(0, 300)]) {
        let t = performance.now();
        verify(response, gold, { budgetMs });
        let ms = performance.now() - t;
        assert.ok(ms <= budgetMs + SLACK_MS, `verify() took ${ms.toFixed(1)} ms`);
        t = performance.now();
        mathEqual(a, gold, { budgetMs });
        ms = performance.now() - t;
        assert.ok(ms <= budgetMs + SLACK_MS, `mathEqual() took ${ms.toFixed(1)} ms`);
      }
    }),
    { numRuns: 60, seed: SEED },
  );
});

Deno.test("verify() with a problem: nouns never make a wrong number right", () => {
  const NOUNS = ["bananas", "apple", "boxes", "puppy", "cookies", "loaves", "children"];
  const VALUE = ["dozen", "less", "more", "sixths", "half", "false", "pairs", "hundred", "per"];
  const word = fc.constantFrom(...NOUNS, ...VALUE, "x", "\\pi", "2", "or");
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 0, max: 2000 }),
      fc.array(word, { minLength: 1, maxLength: 4 }),
      fc.constantFrom("#### %", "\\boxed{%}", "Answer: %.", "The final answer is %"),
      (a, b, words, wrap) => {
        const problem = `Sam has ${words.join(" and ")} in a box. How many does he have?`;
        const response = wrap.replace("%", () => `${a} ${words.join(" ")}`);
        const given = verify(response, String(b), { problem });
        if (a !== b) assert.equal(given.correct, false, `${response} vs ${b}`);
        // Accepted only for nouns of the problem (or as the verifier already did without it).
        const onlyNouns = words.length <= 3 && words.every((w) => NOUNS.includes(w));
        if (given.correct === true && !onlyNouns) {
          assert.equal(verify(response, String(b)).correct, true, response);
        }
        if (a === b && onlyNouns) assert.equal(given.correct, true, response);
      },
    ),
    { numRuns: 400, seed: SEED },
  );
});
