import { strictEqual } from "node:assert/strict";
import { questionText } from "./problem_fields.ts";
import { renderTemplate } from "./prompt_templates.ts";

/** Occurrences of `part` in `text`. */
const count = (text: string, part: string): number => text.split(part).length - 1;

Deno.test("renderTemplate() 'dapo' on a DAPO-Math-17k row holds the instruction once", () => {
  // A row as DAPO-Math-17k writes it: the instruction is part of the user message.
  const row = {
    prompt: [{
      role: "user",
      content: "Solve the following math problem step by step. The last line of your response " +
        "should be of the form Answer: $Answer (without quotes) where $Answer is the answer to " +
        "the problem.\n\nFind $x$ if $2x = 6$.\n\nRemember to put your answer on its own line " +
        'after "Answer:".',
    }],
  };
  const question = questionText(row.prompt)!;
  const message = renderTemplate(question, "dapo");
  strictEqual(count(message, "Solve the following math problem"), 1);
  strictEqual(count(message, "Remember to put your answer"), 1);
  strictEqual(message, question);
  // A bare question is wrapped once.
  const bare = renderTemplate("Find $x$ if $2x = 6$.", "dapo");
  strictEqual(count(bare, "Solve the following math problem"), 1);
  strictEqual(count(bare, "Find $x$ if $2x = 6$."), 1);
});

Deno.test("renderTemplate() 'boxed' does not append its instruction twice", () => {
  const once = renderTemplate("1 + 1?", "boxed");
  strictEqual(count(renderTemplate(once, "boxed"), "\\boxed{}"), 1);
  // Another template's instruction does not stop the wrapping.
  strictEqual(count(renderTemplate(once, "dapo"), "Solve the following math problem"), 1);
});
