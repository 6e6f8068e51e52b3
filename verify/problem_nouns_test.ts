// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { goldTakesNouns, stripProblemNouns } from "./problem_nouns.ts";
import { prepareGold } from "./prepare_gold.ts";

const FRUIT = "Ann has 5 bananas, 2 boxes of apples and one puppy. How many bananas does she have?";

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
    ["12 \\mbox{ bananas does }", "12"],
    ["12 bananas does she", "12"], // three words
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
  const math =
    "Let $abc$ be a number with $\\sqrt{abc} = 3xyz$ and \\text{apples}. How many numbers?";
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
  // found by the review of the problem option: signs, directions, comparatives, changes,
  // scale words, data and prefixed units, coins of another value, rates
  "early",
  "late",
  "westward",
  "eastwards",
  "northward",
  "backwards",
  "uphill",
  "downhill",
  "upstream",
  "downstream",
  "underground",
  "overpaid",
  "underpaid",
  "underweight",
  "overcharged",
  "bce",
  "negatively",
  "sooner",
  "quicker",
  "newer",
  "added",
  "subtracted",
  "deducted",
  "withdrawn",
  "declined",
  "decline",
  "grew",
  "shrank",
  "doz",
  "mln",
  "bln",
  "googol",
  "milliliters",
  "micrograms",
  "kilowatts",
  "tonnes",
  "gigabits",
  "gib",
  "mib",
  "kib",
  "petabytes",
  "exabytes",
  "mbps",
  "kbps",
  "mebibytes",
  "nibbles",
  "centimes",
  "shillings",
  "farthings",
  "kopecks",
  "paise",
  "biennially",
  "everyday",
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
  const problem =
    "She has 2 squares, 3 cubes, 4 logs, 5 roses, 6 months, 7 miles, 8 notes and 9 drops.";
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

Deno.test("stripProblemNouns() drops only words the problem writes after a count", () => {
  // After a number (or number word), "how many", "how much" or "number of", up to three
  // words, to punctuation: "5 red apples" licenses "red apples"; "left" as a direction does
  // not license "12 steps left" (a review's wrong-sign answer), "left" as "remaining" does.
  const walk = "Sam walks 20 steps to the right, then 8 steps to the left. " +
    "How many steps to the right of the lamp post is he?";
  assert.equal(stripProblemNouns("12 steps", walk), "12");
  assert.equal(stripProblemNouns("12 steps left", walk), null);
  assert.equal(stripProblemNouns("12 left", walk), null);
  const rest = "Ann had 20 apples. She ate 8 of them. How many apples are left?";
  assert.equal(stripProblemNouns("12 left", rest), "12");
  assert.equal(stripProblemNouns("12 apples left", rest), "12");
  assert.equal(stripProblemNouns("12 ate", rest), null, "not after a count");
  const red = "The red barn has 5 apples and 7 red pears; twelve green plums.";
  assert.equal(stripProblemNouns("12 apples", red), "12");
  assert.equal(stripProblemNouns("12 red pears", red), "12");
  assert.equal(stripProblemNouns("12 green plums", red), "12");
  assert.equal(stripProblemNouns("12 barn", red), null, "in the prose, after no count");
  assert.equal(stripProblemNouns("12 red apples", red), null, "red only before the barn");
  for (const lead of ["How much money", "the number of coins", "How many coins"]) {
    const problem = `Jo saves coins and money. What is ${lead} she has?`;
    const noun = lead.split(" ").at(-1);
    assert.equal(stripProblemNouns(`12 ${noun}`, problem), "12", lead);
  }
  // A window ends at punctuation or math: "5 apples, pears" licenses apples only.
  assert.equal(stripProblemNouns("12 pears", "She has 5 apples, pears and $x$ plums."), null);
  assert.equal(stripProblemNouns("12 plums", "She has $5 x$ plums."), null);
});

Deno.test("stripProblemNouns() drops a prefixed unit only where the problem asks in it alone", () => {
  const asked = "A cup holds 250 milliliters. How many milliliters do 3 cups hold?";
  assert.equal(stripProblemNouns("750 milliliters", asked), "750");
  assert.equal(stripProblemNouns("750 milliliter", asked), "750");
  assert.equal(
    stripProblemNouns("750 milliliters", "A cup holds 250 milliliters. How much do 3 hold?"),
    null,
    "not asked in milliliters",
  );
  // Another scale of the same unit in the problem: the answer's unit may be the wrong one.
  for (
    const problem of [
      "A 12 liters bottle fills cups of 250 milliliters. How many milliliters are in it?",
      "A 12 kiloliters tank fills cups of 250 milliliters. How many milliliters are in it?",
      "It uses 900 watts for 8 hours, that is 7 kilowatts. How many kilowatts is that?",
    ]
  ) {
    for (const unit of ["milliliters", "kilowatts"]) {
      assert.equal(stripProblemNouns(`12 ${unit}`, problem), null, `${unit}: ${problem}`);
    }
  }
  // Nouns that merely start like a prefix, and -ward/over-/under- nouns, are nouns.
  const nouns = [
    "exams",
    "petals",
    "centipedes",
    "microwaves",
    "megaphones",
    "kilns",
    "decks",
    "awards",
    "rewards",
    "stewards",
    "cowards",
    "wards",
    "overalls",
    "undershirts",
    "overcoats",
  ];
  const problem = `She has ${nouns.map((w) => `2 ${w}`).join(", ")}.`;
  for (const w of nouns) assert.equal(stripProblemNouns(`4 ${w}`, problem), "4", w);
});
