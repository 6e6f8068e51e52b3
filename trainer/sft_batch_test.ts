import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { collateSft, tokenizeSft } from "./sft_batch.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { formatExample } from "../data/arithmetic_task.ts";
import { createTokenizer } from "../model/tokenizer.ts";

const files = arithmeticTokenizerFiles();
const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);

Deno.test("tokenizeSft() puts the loss on exactly the completion tokens", () => {
  const text = formatExample({
    prompt: "What is 12 + 7?",
    solution: "12 + 7 = 19\nAnswer: 19",
    answer: "19",
  });
  const s = tokenizeSft(tokenizer, text);
  strictEqual(tokenizer.decode(s.ids.slice(0, s.promptLength)), text.prompt);
  strictEqual(tokenizer.decode(s.ids.slice(s.promptLength)), text.completion);
  // The completion ends with the EOS token <|im_end|> (id 54), so the model learns to stop.
  strictEqual(s.ids.at(-1), 54);
});

Deno.test("collateSft() pads on the right and masks prompt and padding targets", () => {
  const batch = collateSft([
    { ids: [7, 8, 9], promptLength: 2 },
    { ids: [1, 2, 3, 4, 5], promptLength: 1 },
  ], { padId: 52 });
  deepStrictEqual(batch.inputIds, [[7, 8, 9, 52, 52], [1, 2, 3, 4, 5]]);
  deepStrictEqual(batch.attentionMask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]);
  // Row 0 predicts 9 at position 1 only; row 1 predicts 2, 3, 4, 5 at positions 0..3.
  deepStrictEqual([...batch.lossMask], [0, 1, 0, 0, 1, 1, 1, 1]);
  strictEqual(batch.lossTokens, 5);
  strictEqual(batch.tokens, 8);
  strictEqual(batch.seqLen, 5);
});

Deno.test("collateSft() names a sequence that does not fit", () => {
  throws(() => collateSft([{ ids: [1, 2, 3], promptLength: 1 }], { padId: 0, maxLength: 2 }), {
    name: "RangeError",
    message: /sequence 0 must be at most 2 tokens \(the model's context\): current length is 3/,
  });
  throws(() => collateSft([{ ids: [1, 2], promptLength: 2 }], { padId: 0 }), {
    name: "RangeError",
    message: /sequence 0 must have a prompt length in \[1, 1\]: current value is 2/,
  });
  throws(() => collateSft([], { padId: 0 }), { name: "RangeError" });
});
