// Copyright 2025 the halo authors. MIT license.
// verify()'s `problem` option: a plain-number answer followed by nouns of the problem
// ("#### 12 bananas") is that number; words that change the value never are; without a
// problem nothing changes. Measured on every GSM8K "How many <noun>" question.

import assert from "node:assert/strict";
import { prepareGold } from "./prepare_gold.ts";
import { stripProblemNouns } from "./problem_nouns.ts";
import { verify, verifyReadingNouns } from "./verify.ts";

interface Gsm8k {
  question: string;
  gold: string;
}

const GSM8K: Gsm8k[] = Deno.readTextFileSync(
  new URL("../tests/fixtures/verify_gsm8k.jsonl", import.meta.url),
).trim().split("\n").map((l) => {
  const r = JSON.parse(l);
  return { question: r.question, gold: r.answer.slice(r.answer.lastIndexOf("####") + 4).trim() };
});

/** "How many <noun>": the word after "how many", or after "how many more/fewer/…". */
function askedNoun(question: string): string | null {
  const m = /\bhow many ([A-Za-z]+)(?:\s+([A-Za-z]+))?/i.exec(question);
  if (m === null) return null;
  return /^(?:more|fewer|additional|extra|less|of|total|in|times)$/i.test(m[1]) && m[2]
    ? m[2]
    : m[1];
}

Deno.test("verify() reads GSM8K answers written with their problem's noun", () => {
  // Real GSM8K problems (test split, by line) with the noun each asks for.
  const cases: [number, string][] = [
    [81, "stickers"],
    [306, "loaves"],
    [435, "lollipops"],
    [535, "candies"],
    [565, "sandwiches"],
    [572, "roses"],
    [940, "children"],
    [1066, "pizzas"],
    [1210, "balloons"],
  ];
  for (const [line, noun] of cases) {
    const { question, gold } = GSM8K[line];
    assert.match(question, new RegExp(`How many ${noun}\\b`), `line ${line}`);
    for (
      const response of [
        `So that is it.\n#### ${gold} ${noun}`,
        `The final answer is ${gold} ${noun}.`,
        `Answer: ${gold} ${noun.toUpperCase()}`,
        `\\boxed{${gold} \\text{ ${noun}}}`,
      ]
    ) {
      assert.equal(verify(response, gold).correct, false, `without the problem: ${response}`);
      const r = verify(response, gold, { problem: question });
      assert.equal(r.correct, true, `line ${line}: ${response}: ${r.reason}`);
      // A wrong number with the same noun stays wrong.
      const wrong = response.replace(gold, String(Number(gold) + 1));
      assert.equal(verify(wrong, gold, { problem: question }).correct, false, wrong);
    }
  }
});

Deno.test("verify() with a problem rewards none of the review's wrong answers", () => {
  // Problem texts that do use each word, where that is plausible.
  const cases: [string, string][] = [
    ["12 reciprocal", "The reciprocal of x is 1/12. What is x? How many is it?"],
    ["12 less", "Ann has 12 less than Bob, who has 24. How many does Ann have?"],
    ["12 sixths", "A pie is cut into sixths. She eats 12 slices. How many pies is that?"],
    ["12 false", "True or false: there are 12 months. How many months are there?"],
    ["12 dozen", "Eggs come by the dozen. She buys 12 eggs. How many eggs?"],
    ["12 dozen eggs", "Eggs come by the dozen. She buys 12 eggs. How many eggs?"],
    ["12 pairs", "Socks come in pairs; she has 12 socks. How many socks?"],
    ["12 hundred", "He counts to a hundred 12 times. How many times?"],
    ["12 halves", "Cut 6 apples in halves. How many apples?"],
    ["12 quarters", "A quarter is 25 cents. She has 12 dollars. How many dollars?"],
    ["12 more", "Bob has 12 more than Ann. Ann has 12. How many does Ann have?"],
    ["12 squared", "What is 12 squared divided by 12? How many?"],
    ["12 and a half", "How many cakes and a half? 12 cakes."],
    ["12 not", "Is it 12 or not? How many?"],
    ["12 per day", "He eats 12 apples per day. How many apples per day?"],
    ["12 each", "They cost 12 dollars each. How much does each cost?"],
    ["12 or 13 bananas", "How many bananas or apples?"],
    ["12 x", "Let x be 12. How many x?"],
  ];
  // The review of the problem option (/tmp/review_merge/fp.ts): the right number with a word
  // of the problem that changes its meaning.
  cases.push(
    [
      "12 minutes early",
      "The bus is due at 8:00. It left the depot at 7:30 and the trip takes 42 minutes. " +
      "How many minutes early or late does it arrive?",
    ],
    [
      "12 steps left",
      "Sam starts at a lamp post, walks 20 steps to the right, then 8 steps to the left. " +
      "How many steps to the right of the lamp post is he?",
    ],
    [
      "12 feet underground",
      "A mole starts 20 feet underground and climbs 32 feet. How many feet above the ground is it?",
    ],
    [
      "12 sooner",
      "Ann needs 40 minutes and Bob needs 28 minutes. How many minutes sooner does Bob finish?",
    ],
    ["12 doz", "Eggs are $3 per doz. Mia buys 144 eggs. How many doz does she buy?"],
    ["12 googol", "A googol is 10^100. How many googol is 12 googol?"],
    [
      "12 milliliters",
      "A bottle of 12 liters is poured into cups of 250 milliliters. How many liters are in it?",
    ],
    ["12 added", "Jo had 5 marbles and 7 added. How many marbles does Jo have?"],
    ["12 overpaid", "Tim paid $50 for a $38 meal. By how many dollars was he overpaid?"],
    ["12 westward", "A ship sails 30 km eastward then 18 km westward. How many km east is it?"],
    ["12 BCE", "A king was born in 30 BCE and died 42 years later. In what year AD did he die?"],
  );
  for (const [answer, problem] of cases) {
    for (const response of [`#### ${answer}`, `\\boxed{${answer}}`, `Answer: ${answer}.`]) {
      const r = verify(response, "12", { problem });
      assert.equal(r.correct, false, `${response} (${r.reason}) for: ${problem}`);
    }
  }
  // Not this rule's: the unit-word list of the normaliser (verify/_units.ts) already strips
  // these after a number, with or without a problem (as the docs of `problem` say).
  for (const w of ["times", "percent", "square", "cents", "cubic", "sq", "min", "dollars"]) {
    const problem = `He has 12 ${w}. How many?`;
    assert.equal(verify(`#### 12 ${w}`, "12").correct, true, w);
    assert.deepEqual(verify(`#### 12 ${w}`, "12", { problem }), verify(`#### 12 ${w}`, "12"));
  }
});

Deno.test("verify() with a problem needs a plain-number gold and words of the problem", () => {
  const problem = "Tom has 3 bananas and gets 9 more. How many bananas does he have?";
  const r = verify("#### 12 bananas", "12", { problem });
  assert.equal(r.correct, true);
  assert.equal(r.extracted, "12 bananas");
  assert.equal(r.normalized, "12", "the graded answer");
  assert.equal(verify("#### 13 bananas", "12", { problem }).normalized, "13bananas");
  assert.equal(verify("#### 12 bananas", "12.0", { problem }).correct, true);
  assert.equal(verify("#### $1,212 bananas", "1212", { problem }).correct, true);
  assert.equal(verify("#### 12 oranges", "12", { problem }).correct, false, "not in it");
  assert.equal(verify("#### 12 bananas he has now", "12", { problem }).correct, false, "> 3");
  for (const gold of ["x + 12", "12x", "\\frac{24}{2}", "24/2", "\\{12\\}", "(12, 1)", "12\\%"]) {
    assert.equal(verify("#### 12 bananas", gold, { problem }).correct, false, gold);
  }
  // Unusable gold: still skipped, whatever the problem.
  assert.equal(verify("#### 12 bananas", "", { problem }).correct, null);
  // A prepared gold and eval mode take the option too.
  assert.equal(verify("#### 12 bananas", prepareGold("12"), { problem }).correct, true);
  assert.equal(
    verify("So Tom has 12 bananas.\n#### 12 bananas", "12", { problem, mode: "eval" }).correct,
    true,
  );
  // A problem that is not a string is no problem.
  assert.equal(verify("#### 12 bananas", "12", { problem: 7 as unknown as string }).correct, false);
});

Deno.test("verify() without a problem decides exactly as before", () => {
  // Every response form above, with and without an empty or absent problem.
  const responses = ["#### 12 bananas", "\\boxed{12 \\text{ bananas}}", "Answer: 12 apples"];
  for (const response of responses) {
    for (const gold of ["12", "13", "x"]) {
      const before = verify(response, gold);
      assert.deepEqual(verify(response, gold, { problem: undefined }), before);
      assert.deepEqual(verify(response, gold, { problem: "" }), before);
      assert.deepEqual(verify(response, gold, { problem: "   " }), before);
    }
  }
  assert.equal(verify("#### 12 bananas", "12").correct, false);
  assert.equal(verify("Answer: 12 apples", "12").correct, true, "a unit word, as before");
});

Deno.test("verify() on GSM8K 'How many <noun>': accepted with the problem, never for another gold", () => {
  const items = GSM8K.flatMap((p) => {
    const noun = askedNoun(p.question);
    return noun === null ? [] : [{ ...p, noun }];
  });
  let without = 0;
  let withProblem = 0;
  for (const { question, gold, noun } of items) {
    const response = `#### ${gold} ${noun}`;
    const plain = verify(response, gold);
    const given = verify(response, gold, { problem: question });
    if (plain.correct === true) {
      without++;
      assert.deepEqual(given, plain, "a response accepted before is accepted the same way");
    }
    if (given.correct === true) withProblem++;
  }
  // Measured: 264/684 without the problem, 666/684 with it (rejected: "dozens", "pairs",
  // "quarters", "fourth", "kilowatts" in a problem that also uses watts, and words like
  // "is"/"do"/"aren" that are not nouns); 669/684 before words had to follow a count.
  assert.ok(items.length > 600, `expected > 600 "How many" questions, got ${items.length}`);
  assert.ok(without < items.length * 0.5, `without: ${without}/${items.length}`);
  assert.ok(withProblem >= items.length * 0.95, `with: ${withProblem}/${items.length}`);

  // The same responses against the gold and problem of another question never match.
  const flagged: string[] = [];
  let pairs = 0;
  for (let i = 0; i < items.length; i++) {
    for (const step of [1, 7, 101]) {
      const other = items[(i + step) % items.length];
      if (Number(items[i].gold.replace(/,/g, "")) === Number(other.gold.replace(/,/g, ""))) {
        continue;
      }
      pairs++;
      const response = `#### ${items[i].gold} ${other.noun}`;
      const r = verify(response, other.gold, { problem: other.question });
      if (r.correct !== false) flagged.push(`${response} vs ${other.gold}: ${r.reason}`);
    }
  }
  assert.ok(pairs > 1800, `expected > 1800 pairs, got ${pairs}`);
  assert.deepEqual(flagged, []);
});

Deno.test("verify() on GSM8K: a value word the problem itself uses is never dropped", () => {
  // For every GSM8K question, each value-changing word it contains, after its own gold.
  const words =
    /\b(more|less|fewer|times|twice|half|halves|third|thirds|quarter|quarters|dozen|dozens|pairs?|percent|each|per|hundred|thousand|million|double|triple|extra|minus|plus|than|not|only|off|discount|profit|loss|lost|daily|weekly|every|square|squared)\b/gi;
  const accepted: string[] = [];
  let checked = 0;
  for (const { question, gold } of GSM8K) {
    for (const m of new Set([...question.matchAll(words)].map((x) => x[1]))) {
      checked++;
      for (const response of [`#### ${gold} ${m}`, `#### ${gold} ${m} apples`]) {
        const r = verify(response, gold, { problem: `${question} apples` });
        // "times", "percent", "square" after a number are the normaliser's unit words,
        // stripped without a problem too (see the test above): this rule adds nothing.
        if (r.correct === true && verify(response, gold).correct !== true) {
          accepted.push(`${response}: ${question.slice(0, 60)}`);
        }
      }
    }
  }
  assert.ok(checked > 800, `expected > 800 (question, word) pairs, got ${checked}`);
  assert.deepEqual(accepted, []);
});

Deno.test("verify() with a problem decides answers without trailing words as without it", () => {
  // MATH-500 and GSM8K golds, each as the answer to the next problems, in two markers:
  // given that problem's text, every decision is the one made without it.
  const math = Deno.readTextFileSync(
    new URL("../tests/fixtures/verify_math500.jsonl", import.meta.url),
  ).trim().split("\n").map((l) => {
    const r = JSON.parse(l);
    return { question: r.problem as string, gold: r.answer as string };
  });
  const changed: string[] = [];
  let accepted = 0;
  for (const set of [math, GSM8K.slice(0, 500)]) {
    for (let i = 0; i < set.length; i++) {
      for (const step of [0, 1, 13]) {
        const other = set[(i + step) % set.length];
        for (const response of [`\\boxed{${set[i].gold}}`, `#### ${set[i].gold}`]) {
          const plain = verify(response, other.gold, { budgetMs: Infinity });
          const given = verify(response, other.gold, {
            budgetMs: Infinity,
            problem: other.question,
          });
          if (plain.correct === true) accepted++;
          if (JSON.stringify(given) !== JSON.stringify(plain)) changed.push(response);
        }
      }
    }
  }
  assert.ok(accepted >= 2000, `the control: same-problem pairs accepted, got ${accepted}`);
  assert.deepEqual(changed, []);
});

Deno.test("verifyReadingNouns() returns verify()'s result and the noun rule's reading where verify() ran it", () => {
  let tried = 0;
  let read = 0;
  for (const { question, gold } of GSM8K.slice(0, 300)) {
    const noun = askedNoun(question) ?? "apples";
    const wrong = String(Number(gold.replace(/,/g, "")) + 1);
    for (const mode of ["reward", "eval"] as const) {
      const prepared = prepareGold(gold, { mode });
      for (
        const response of [
          `#### ${gold} ${noun}`,
          `#### ${wrong} ${noun}`,
          `#### ${gold}`,
          `#### ${gold} dozen`,
          `\\boxed{${wrong}\\text{ ${noun}}}`,
          "no answer",
        ]
      ) {
        // No wall-clock deadline (eval mode's 100 ms): both calls must decide alike under load.
        const base = { mode, budgetMs: Infinity };
        for (const options of [base, { ...base, problem: question }]) {
          const both = verifyReadingNouns(response, prepared, options);
          assert.deepEqual(both.result, verify(response, prepared, options), response);
          if (both.nouns === undefined) continue;
          tried++;
          assert.ok("problem" in options, `${response}: read without a problem`);
          assert.notEqual(both.result.extracted, null);
          assert.equal(both.nouns, stripProblemNouns(both.result.extracted!, question), response);
          if (both.nouns !== null) read++;
        }
      }
    }
  }
  // Both readings occur: a number read from "<n> <noun>", and null for "<n> dozen".
  assert.ok(tried > 1000 && read > 500 && read < tried, `tried ${tried}, read ${read}`);
});
