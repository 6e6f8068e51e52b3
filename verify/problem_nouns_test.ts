// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { goldTakesNouns, stripProblemNouns } from "./problem_nouns.ts";
import { prepareGold } from "./prepare_gold.ts";

const FRUIT = "Ann has 5 bananas, a box of apples and a puppy. How many bananas does she have?";

Deno.test("stripProblemNouns() drops the problem's nouns after a plain number", () => {
  const cases: [string, string][] = [
    ["12 bananas", "12"],
    ["12 Bananas.", "12"],
    ["12 banana", "12"], // singular of the problem's plural
    ["12 boxes", "12"], // plural of the problem's singular
    ["12 puppies", "12"],
    ["12 apple", "12"],
    ["$12 bananas", "$12"],
    ["\\$1,250.50 bananas", "\\$1,250.50"],
    ["-3 bananas", "-3"],
    ["0.5 bananas!", "0.5"],
    ["12 \\text{ bananas}", "12"],
    ["12\\text{bananas}", "12"],
    ["12\\,\\text{bananas}", "12"],
    ["12\\ bananas", "12"],
    ["12~bananas", "12"],
    ["12 \\mbox{ has bananas }", "12"],
    ["12 bananas does have", "12"], // three words
  ];
  for (const [answer, expected] of cases) {
    assert.equal(stripProblemNouns(answer, FRUIT), expected, answer);
  }
});

Deno.test("stripProblemNouns() matches simple and irregular plurals both ways", () => {
  const pairs: [string, string][] = [
    ["loaf", "loaves"],
    ["knife", "knives"],
    ["berry", "berries"],
    ["dish", "dishes"],
    ["tomato", "tomatoes"],
    ["child", "children"],
    ["goose", "geese"],
    ["woman", "women"],
  ];
  for (const [one, many] of pairs) {
    assert.equal(stripProblemNouns(`7 ${many}`, `There is one ${one} here.`), "7", many);
    assert.equal(stripProblemNouns(`7 ${one}`, `There are 9 ${many} here.`), "7", one);
  }
  // Not a variant: another word that merely shares letters.
  assert.equal(stripProblemNouns("7 notes", "It is not here."), null);
  assert.equal(stripProblemNouns("7 bananas", "A banal question."), null);
});

Deno.test("stripProblemNouns() keeps words the problem's prose does not use", () => {
  assert.equal(stripProblemNouns("12 oranges", FRUIT), null);
  assert.equal(stripProblemNouns("12 red bananas", FRUIT), null); // "red" is not in it
  // Words of the problem's math are not prose: $abc$, \sqrt, 3x.
  const math = "Let $abc$ be a number with $\\sqrt{abc} = 3xyz$ and \\text{apples}.";
  for (const w of ["abc", "sqrt", "xyz", "apples", "text"]) {
    assert.equal(stripProblemNouns(`12 ${w}`, math), null, w);
  }
  assert.equal(stripProblemNouns("12 number", math), "12", "the prose word is licensed");
});

Deno.test("stripProblemNouns() refuses other shapes", () => {
  const problem = `${FRUIT} The answer or the bananas and apples, with x and y.`;
  for (
    const answer of [
      "12 bananas bananas bananas bananas", // more than three words
      "12 bananas 3", // a digit
      "12 bananas + 1",
      "12 x", // one or two letters
      "12 or", //
      "12 \\pi bananas", // LaTeX
      "12 \\text{ bananas} \\text{ apples}", // two groups
      "12 bananas, apples",
      "12bananas", // no space
      "twelve bananas", // no number
      "12 / 3 bananas",
      "12.5.1 bananas",
      "1,25 bananas", // not a grouped number
      "12 ba-nanas",
      "12 banana's",
      "12 bananas?",
      "\\frac{1}{2} bananas", // not a plain number
      "12",
      "",
    ]
  ) {
    assert.equal(stripProblemNouns(answer, problem), null, answer);
  }
  assert.equal(stripProblemNouns("12 bananas", ""), null);
  assert.equal(stripProblemNouns("12 bananas", "   "), null);
  assert.equal(stripProblemNouns("12 bananas", null as unknown as string), null);
  assert.equal(stripProblemNouns(`12 ${"bananas ".repeat(40)}`, problem), null);
});

// Written independently of the deny list in problem_nouns.ts: words that change the value
// or the meaning of the number before them. Each is tested in a problem that uses it.
const VALUE_WORDS = [
  // the review of d25e67f
  "reciprocal",
  "less",
  "sixths",
  "false",
  // comparatives
  "more",
  "fewer",
  "greater",
  "larger",
  "smaller",
  "older",
  "younger",
  "cheaper",
  "than",
  "extra",
  "additional",
  "least",
  "most",
  // operations and powers
  "times",
  "plus",
  "minus",
  "divided",
  "over",
  "per",
  "squared",
  "cubed",
  "square",
  "cube",
  "inverse",
  "negative",
  "opposite",
  "factorial",
  "percent",
  "percentage",
  "repeating",
  // multipliers and scale
  "dozen",
  "dozens",
  "score",
  "scores",
  "pair",
  "pairs",
  "couple",
  "couples",
  "gross",
  "hundred",
  "hundreds",
  "thousand",
  "thousands",
  "million",
  "millions",
  "billion",
  "billions",
  "grand",
  "double",
  "twice",
  "triple",
  "tenfold",
  "decades",
  "centuries",
  "kilobytes",
  // fractions and ordinals
  "half",
  "halves",
  "third",
  "thirds",
  "quarter",
  "quarters",
  "fourths",
  "fifths",
  "sevenths",
  "eighths",
  "ninths",
  "tenths",
  "twelfths",
  "hundredths",
  "thousandths",
  "twentieths",
  "fifth",
  // coins of another value
  "pennies",
  "nickels",
  "dimes",
  // number words
  "zero",
  "one",
  "ten",
  "tens",
  "ones",
  "twelve",
  "twenty",
  "twenties",
  // truth and negation
  "true",
  "not",
  "none",
  "never",
  "wrong",
  "incorrect",
  // rates, signs, directions, change
  "each",
  "every",
  "apiece",
  "daily",
  "weekly",
  "below",
  "under",
  "above",
  "west",
  "behind",
  "ago",
  "loss",
  "lost",
  "profit",
  "discount",
  "off",
  "short",
  "increase",
  "decrease",
  // connectives and hedges
  "and",
  "with",
  "from",
  "approximately",
  "about",
  "nearly",
  "only",
  // which amount, and negation glued
  "excluding",
  "including",
  "senior",
  "complement",
  "pence",
  "hundredweight",
  "something",
  "isnt",
  "cannot",
  // functions and constants
  "log",
  "sin",
  "exp",
  "tau",
  "theta",
];

Deno.test("stripProblemNouns() never drops a word that changes the value", () => {
  const accepted: string[] = [];
  for (const w of VALUE_WORDS) {
    // The problem uses the word, as a reviewer would write it.
    const problem = `Tom has 12 ${w} and 3 bananas. What is ${w} of it? How many bananas?`;
    for (
      const answer of [
        `12 ${w}`,
        `12 ${w.toUpperCase()}`,
        `12 bananas ${w}`,
        `12 ${w} bananas`,
        `12 \\text{ ${w}}`,
      ]
    ) {
      if (stripProblemNouns(answer, problem) !== null) accepted.push(answer);
    }
  }
  assert.deepEqual(accepted, []);
  // The control: the same problems do license a plain noun.
  assert.equal(stripProblemNouns("12 bananas", "Tom has 12 less and 3 bananas."), "12");
});

Deno.test("stripProblemNouns() keeps nouns that look like denied words", () => {
  const problem = "She has squares, cubes, logs, roses, months, miles, notes and drops.";
  for (const w of ["squares", "cubes", "logs", "roses", "months", "miles", "notes", "drops"]) {
    assert.equal(stripProblemNouns(`4 ${w}`, problem), "4", w);
  }
});

Deno.test("goldTakesNouns(): plain-number golds with an exact value only", () => {
  for (const gold of ["12", "-3.5", "1,250", "12.0", "\\$12", "0.5", "#### 12"]) {
    for (const mode of ["reward", "eval"] as const) {
      assert.equal(goldTakesNouns(prepareGold(gold, { mode })), true, `${gold} (${mode})`);
    }
  }
  for (
    const gold of [
      "1{,}250",
      "\\frac{24}{2}",
      "24/2",
      "12\\%",
      "12x",
      "x",
      "(1, 2)",
      "",
      "\\frac{1}{",
    ]
  ) {
    for (const mode of ["reward", "eval"] as const) {
      assert.equal(goldTakesNouns(prepareGold(gold, { mode })), false, `${gold} (${mode})`);
    }
  }
});
