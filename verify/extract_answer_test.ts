// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { EVAL_EXTRACTORS, extractAnswer, REWARD_EXTRACTORS } from "./extract_answer.ts";

Deno.test("extractAnswer() takes the last well-formed \\boxed{} with nested braces", () => {
  const text = "First \\boxed{1}, then \\boxed{\\frac{a}{b^{2}}} and done.";
  const got = extractAnswer(text);
  assert.equal(got?.answer, "\\frac{a}{b^{2}}");
  assert.equal(got?.extractor, "boxed");
  assert.equal(got?.markerOffset, text.lastIndexOf("\\boxed"));
  assert.equal(text.slice(got!.start, got!.end), "\\frac{a}{b^{2}}");
});

Deno.test("extractAnswer() skips escaped braces when matching \\boxed{}", () => {
  assert.equal(extractAnswer("\\boxed{\\{1, 2\\}}")?.answer, "\\{1, 2\\}");
  assert.equal(extractAnswer("\\boxed{\\}}")?.answer, "\\}");
});

Deno.test("extractAnswer() handles \\fbox and brace-less \\boxed 5", () => {
  assert.equal(extractAnswer("\\fbox{3}")?.answer, "3");
  assert.equal(extractAnswer("so $\\boxed 5$.")?.answer, "5");
  assert.equal(extractAnswer("\\boxed\\pi")?.answer, "\\pi");
});

Deno.test("extractAnswer() ignores an unbalanced or empty box", () => {
  assert.equal(extractAnswer("\\boxed{2} and \\boxed{3")?.answer, "2");
  assert.equal(extractAnswer("\\boxed{}"), null);
  assert.equal(extractAnswer("\\boxed{"), null);
});

Deno.test("extractAnswer() reads DAPO's Answer: line, last match, case-insensitive", () => {
  const text = "answer: 1\nMore work.\nAnswer: 2 apples\n";
  const got = extractAnswer(text);
  assert.equal(got?.answer, "2 apples");
  assert.equal(got?.extractor, "answer_line");
  assert.equal(got?.markerOffset, text.lastIndexOf("Answer"));
});

Deno.test("extractAnswer() takes the next non-empty line after an empty Answer: line, as DAPO", () => {
  const text = "So she makes $18.\nAnswer:\n18";
  assert.deepEqual(extractAnswer(text), {
    answer: "18",
    extractor: "answer_line",
    markerOffset: text.indexOf("Answer"),
    start: text.length - 2,
    end: text.length,
  });
  const bold = "Work.\n**Answer:** \n\n  42 apples  \nThanks";
  const got = extractAnswer(bold);
  assert.equal(got?.answer, "42 apples");
  assert.equal(got?.markerOffset, bold.indexOf("Answer"));
  assert.equal(bold.slice(got!.start, got!.end), "42 apples");
  assert.equal(extractAnswer("Answer: 3\nAnswer:\n\n7")?.answer, "7");
  assert.equal(
    extractAnswer("Answer: 3\nAnswer:\n \n")?.answer,
    "3",
    "nothing after: earlier match",
  );
  assert.equal(extractAnswer("Answer:\n\n"), null);
  assert.equal(extractAnswer("Answer: 5**")?.answer, "5**", "a non-empty rest is kept as is");
});

Deno.test("extractAnswer() reads GSM8K's #### line", () => {
  const text = "48/2 = 24\n#### 72";
  const got = extractAnswer(text);
  assert.deepEqual(got, { answer: "72", extractor: "gsm8k", markerOffset: 10, start: 15, end: 17 });
});

Deno.test("extractAnswer() reads Minerva's final-answer sentence", () => {
  const text = "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.";
  const got = extractAnswer(text);
  assert.equal(got?.answer, "\\frac{1}{2}");
  assert.equal(got?.extractor, "minerva");
  assert.equal(got?.markerOffset, text.indexOf("The final"));
  assert.equal(extractAnswer("The final answer is 12. I hope it is correct.")?.answer, "12");
});

Deno.test("extractAnswer() uses the extractor priority, then the last match", () => {
  const text = "Answer: 3\n#### 4\n\\boxed{5}";
  assert.equal(extractAnswer(text)?.answer, "5");
  assert.equal(extractAnswer(text, { extractors: ["gsm8k", "answer_line"] })?.answer, "4");
  assert.equal(extractAnswer(text, { extractors: ["answer_line"] })?.answer, "3");
});

Deno.test("extractAnswer() needs a marker in reward mode", () => {
  assert.equal(extractAnswer("The answer is $7$."), null);
  assert.equal(extractAnswer("It is 7", { extractors: ["last_number", "latex", "plain"] }), null);
  assert.deepEqual(REWARD_EXTRACTORS, ["boxed", "minerva", "answer_line", "gsm8k"]);
});

Deno.test("extractAnswer() reads LaTeX blocks and the last line in eval mode", () => {
  const eval_ = { mode: "eval" as const };
  assert.equal(extractAnswer("so $x=1$ and then $y = 2$.", eval_)?.answer, "y = 2");
  assert.equal(extractAnswer("then \\(\\frac12\\)", eval_)?.answer, "\\frac12");
  assert.equal(extractAnswer("then \\[ 3 \\]", eval_)?.answer, "3");
  assert.equal(extractAnswer("costs \\$5 then $$7$$", eval_)?.answer, "7");
  const plain = extractAnswer("Work\nThe answer is 13.\n\n", eval_);
  assert.equal(plain?.answer, "13");
  assert.equal(plain?.extractor, "plain");
  assert.ok(EVAL_EXTRACTORS.includes("latex"));
});

Deno.test("extractAnswer() offers an opt-in last-number fallback for evaluation", () => {
  const text = "We had 1,200 apples and sold -3.5 of them";
  const got = extractAnswer(text, { mode: "eval", extractors: ["last_number"] });
  assert.equal(got?.answer, "-3.5");
  assert.equal(got?.markerOffset, text.indexOf("-3.5"));
  assert.equal(extractAnswer(text, { mode: "eval" })?.extractor, "plain");
});

Deno.test("extractAnswer() never throws and stays fast on adversarial input", () => {
  const inputs = [
    "\\boxed{".repeat(20000),
    "$".repeat(20001),
    "\\(".repeat(20000),
    "Answer:" + " ".repeat(50000),
    "#### ".repeat(10000),
    "",
    undefined as unknown as string,
  ];
  for (const s of inputs) {
    const t = performance.now();
    extractAnswer(s, { mode: "eval", extractors: [...EVAL_EXTRACTORS, "last_number"] });
    assert.ok(performance.now() - t < 500, "extraction should be linear-time");
  }
});

Deno.test("extractAnswer() reads adjacent boxes as one answer list", () => {
  const text = "The roots are \\boxed{4}, \\boxed{9} and \\(\\boxed{-1}\\).";
  const got = extractAnswer(text);
  assert.equal(got?.answer, "4, 9, -1");
  assert.equal(got?.markerOffset, text.indexOf("\\boxed"));
  // Boxes joined only by "or" are alternatives (compared as a set).
  assert.equal(extractAnswer("\\boxed{4} \\text{ or } \\boxed{9}")?.answer, "4 \\text{ or } 9");
  // One joiner with "or" and a comma makes a list, not alternatives.
  assert.equal(extractAnswer("\\boxed{4}, or \\boxed{9}")?.answer, "4, 9");
  // A repeated box is one answer.
  assert.equal(extractAnswer("\\[\\boxed{5}\\]\n\\[\\boxed{5}\\]")?.answer, "5");
});

Deno.test("extractAnswer() keeps only the last box when words separate the boxes", () => {
  assert.equal(extractAnswer("\\boxed{4}, so y = \\boxed{9}")?.answer, "9");
  assert.equal(extractAnswer("Try \\boxed{3}. Wait, no: \\boxed{5}")?.answer, "5");
});

Deno.test("extractAnswer() keeps the labels of adjacent boxes when each has one", () => {
  assert.equal(
    extractAnswer("Thus $x=\\boxed{2}$ or $x=\\boxed{-3}$.")?.answer,
    "x = 2 \\text{ or } x = -3",
  );
  assert.equal(extractAnswer("x = \\boxed{2} and \\boxed{-3}")?.answer, "2, -3");
});

Deno.test("extractAnswer() stays linear on long lines full of markers", () => {
  // A quadratic scan took seconds on the first input (one regex match per "answer:",
  // each reading to the end of the line).
  for (
    const text of [
      "x answer:".repeat(20000),
      "So Answer: 1. ".repeat(10000),
      "\\boxed{".repeat(5000) + "7" + "}".repeat(5000),
      "$5 for apples and ".repeat(10000),
      ", the final answer is ".repeat(10000),
      "the answer is ".repeat(10000),
    ]
  ) {
    for (const mode of ["reward", "eval"] as const) {
      const t = performance.now();
      extractAnswer(text, { mode });
      const ms = performance.now() - t;
      assert.ok(
        ms < 500,
        `${JSON.stringify(text.slice(0, 20))}… (${mode}) took ${ms.toFixed(0)} ms`,
      );
    }
  }
});

Deno.test("extractAnswer() reads Answer: only as a word of its own, and skips empty #### lines", () => {
  // "Subanswer:" is not the marker: the answer stays 5 (the last real marker).
  assert.equal(extractAnswer("Answer: 5\nSubanswer: 7")?.answer, "5");
  // A later "####" with nothing after it does not replace the earlier answer.
  const got = extractAnswer("#### 12\n####   \n");
  assert.equal(got?.answer, "12");
  assert.equal(got?.extractor, "gsm8k");
});
