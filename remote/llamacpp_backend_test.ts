// llama.cpp server's /v1/completions mapping against bodies written from its README and
// server-schema.cpp (the llama.cpp source in npm node-llama-cpp@3.21.1, llama/gitRelease.bundle):
// chat-style logprobs.content[{id, token, bytes, logprob, top_logprobs}] and finish_reason.
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { llamacppBackend } from "./llamacpp_backend.ts";
import type { RolloutRequest } from "./types.ts";
import { PROBE_REQUEST } from "./test_utils.ts";

const REQUEST: RolloutRequest = {
  promptIds: [1, 2, 3],
  n: 2,
  maxTokens: 2,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: 3,
  stopTokenIds: [],
  eosTokenIds: [54],
  adapter: null,
  policyVersion: 0,
};

function choice(index: number, ids: number[], lps: number[], finish: string) {
  return {
    text: "",
    index,
    logprobs: {
      content: ids.map((id, i) => ({
        id,
        token: `t${id}`,
        bytes: [116],
        logprob: lps[i],
        top_logprobs: [{ id, token: `t${id}`, bytes: [116], logprob: lps[i] }],
      })),
    },
    finish_reason: finish,
  };
}

Deno.test("llamacppBackend.completionRequest() neutralises every sampler of the chain", () => {
  const { path, body } = llamacppBackend.completionRequest(REQUEST, "arith.gguf");
  strictEqual(path, "/v1/completions");
  const b = body as Record<string, unknown>;
  deepStrictEqual(b.prompt, [1, 2, 3]);
  for (
    const [key, value] of Object.entries({
      n: 2,
      max_tokens: 2,
      temperature: 1,
      top_k: 0,
      top_p: 1,
      min_p: 0,
      typical_p: 1,
      repeat_penalty: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      dry_multiplier: 0,
      xtc_probability: 0,
      mirostat: 0,
      seed: 3,
      logprobs: 1,
      post_sampling_probs: false,
    })
  ) strictEqual(b[key], value, key);
  throws(
    () => llamacppBackend.completionRequest({ ...REQUEST, stopTokenIds: [7] }, "m"),
    /stop ids 7 are not EOS ids/,
  );
  throws(
    () => llamacppBackend.completionRequest({ ...REQUEST, adapter: "a" }, "m"),
    /server-wide/,
  );
});

Deno.test("llamacppBackend.parseCompletion() reads ids from logprobs.content", () => {
  const json = {
    id: "chatcmpl-x",
    object: "text_completion",
    created: 1,
    model: "arith.gguf",
    choices: [choice(1, [9, 10], [-1, -2], "length"), choice(0, [8, 54], [-0.5, -0.1], "stop")],
    usage: { completion_tokens: 4, prompt_tokens: 3, total_tokens: 7 },
  };
  deepStrictEqual(llamacppBackend.parseCompletion(json, REQUEST), [
    { tokenIds: [8, 54], logprobs: [-0.5, -0.1], finishReason: "stop" },
    { tokenIds: [9, 10], logprobs: [-1, -2], finishReason: "length" },
  ]);
  const bad = choice(0, [8], [-0.5], "stop");
  (bad.logprobs.content[0] as Record<string, unknown>).logprob = undefined;
  const parsed = llamacppBackend.parseCompletion({ choices: [bad] }, { ...REQUEST, n: 1 });
  ok(/\{id, logprob\}/.test(parsed[0] as string), String(parsed[0]));
  throws(() => llamacppBackend.parseCompletion({ content: "x" }, REQUEST), /expected "choices"/);
});

Deno.test("llamacppBackend.parseModels() reads the slot context from meta.n_ctx", () => {
  // llama-server's /v1/models (tools/server; captured from the real server on the bundled model).
  const json = {
    object: "list",
    data: [{
      id: "arithmetic-tiny",
      aliases: ["arithmetic-tiny"],
      tags: [],
      object: "model",
      created: 1796350251,
      owned_by: "llamacpp",
      meta: { vocab_type: true, n_vocab: 64, n_ctx: 128, n_ctx_train: 128, n_params: 102784 },
    }],
  };
  deepStrictEqual(llamacppBackend.parseModels(json), {
    models: ["arithmetic-tiny"],
    maxModelLen: 128,
  });
  deepStrictEqual(llamacppBackend.parseModels({ data: [{ id: "m" }] }), { models: ["m"] });
});

Deno.test("llamacppBackend's probe asks for n_probs and reads content[0].top_logprobs", () => {
  const { body } = llamacppBackend.probeRequest(
    PROBE_REQUEST,
    "m",
    5,
  );
  const b = body as { logprobs: number; post_sampling_probs: boolean };
  deepStrictEqual([b.logprobs, b.post_sampling_probs], [5, false]);
  const json = {
    choices: [{
      index: 0,
      logprobs: {
        content: [{
          id: 7,
          logprob: -0.1,
          top_logprobs: [{ id: 7, token: "a", logprob: -0.1 }, { id: 3, token: "b", logprob: -2 }],
        }],
      },
    }],
  };
  deepStrictEqual(llamacppBackend.parseProbe(json), new Map([[7, -0.1], [3, -2]]));
  ok(/top_logprobs" \(n_probs > 0\)/.test(String(llamacppBackend.parseProbe({ choices: [] }))));
});
