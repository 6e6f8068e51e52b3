import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { validateChoice } from "./validate_choice.ts";
import type { RolloutRequest } from "./types.ts";

const REQUEST: RolloutRequest = {
  promptIds: [1, 2],
  n: 1,
  maxTokens: 3,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: 0,
  stopTokenIds: [60],
  eosTokenIds: [54],
  adapter: null,
  policyVersion: 7,
};

Deno.test("validateChoice() maps stop/length to eos, stop and length", () => {
  const check = (ids: number[], finishReason: string) =>
    validateChoice({ tokenIds: ids, logprobs: ids.map(() => -1), finishReason }, REQUEST, {
      vocabSize: 64,
    });
  strictEqual((check([5, 54], "stop") as { finish: string }).finish, "eos");
  strictEqual((check([5, 60], "stop") as { finish: string }).finish, "stop");
  deepStrictEqual(check([5, 6, 7], "length"), {
    tokenIds: [5, 6, 7],
    samplerLogprobs: [-1, -1, -1],
    finish: "length",
    policyVersion: 7,
  });
  // An EOS drawn as the last allowed token is an EOS, whatever the engine calls it.
  strictEqual((check([5, 6, 54], "length") as { finish: string }).finish, "eos");
});

Deno.test("validateChoice() names what is wrong with a bad choice", () => {
  const cases: [number[], number[], string, RegExp][] = [
    [[], [], "stop", /at least 1 generated token/],
    [[5, 6, 7, 8], [-1, -1, -1, -1], "length", /at most 3 tokens/],
    [[5, 64], [-1, -1], "stop", /\[0, 64\): token 1 is 64/],
    [[5, -1], [-1, -1], "stop", /token 1 is -1/],
    [[5, 54], [-1], "stop", /one log-prob per token \(2\): got 1/],
    [[5, 54], [-1, NaN], "stop", /token 1's is NaN$/],
    // A positive value is a logit: the message names vLLM's logits modes.
    [
      [5, 54],
      [-1, 0.5],
      "stop",
      /token 1's is 0.5 \(a logit, .*--logprobs-mode raw_logits or processed_logits .*use raw_logprobs/,
    ],
    [[54, 5, 54], [-1, -1, -1], "stop", /before the last token: token 0 is 54/],
    [[5, 6], [-1, -1], "stop", /to end on an EOS or stop id \(54, 60\): the last token is 6/],
    [[5, 6], [-1, -1], "length", /"length" after 3 tokens: got 2/],
    [[5, 54], [-1, -1], "abort", /"stop" or "length": got "abort"/],
  ];
  for (const [ids, lps, finish, pattern] of cases) {
    const out = validateChoice(
      { tokenIds: ids, logprobs: lps, finishReason: finish },
      REQUEST,
      { vocabSize: 64 },
    );
    strictEqual(typeof out, "string", `${ids} ${finish}`);
    ok(pattern.test(out as string), `${ids} ${finish}: ${out}`);
  }
  // At the server's context length a short "length" finish is fine.
  const atContext = validateChoice(
    { tokenIds: [5, 6], logprobs: [-1, -1], finishReason: "length" },
    REQUEST,
    { vocabSize: 64, maxModelLen: 4 },
  );
  strictEqual((atContext as { finish: string }).finish, "length");
});
