// vLLM's request/response mapping against bodies written from vLLM's protocol definitions
// (vllm/entrypoints/openai/completion/protocol.py: CompletionRequest, CompletionResponse,
// CompletionResponseChoice, CompletionLogProbs; ModelCard in vllm/entrypoints/openai/protocol.py),
// since no vLLM can run here.
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { vllmBackend } from "./vllm_backend.ts";
import type { RolloutRequest } from "./types.ts";
import { PROBE_REQUEST } from "./test_utils.ts";

const REQUEST: RolloutRequest = {
  promptIds: [151644, 872, 198],
  n: 2,
  maxTokens: 3,
  temperature: 0.7,
  topP: 0.9,
  topK: 0,
  seed: 42,
  stopTokenIds: [151643],
  eosTokenIds: [151645],
  adapter: null,
  policyVersion: 5,
};

/** A CompletionResponse as vLLM serialises it (pydantic model_dump of the protocol classes). */
function response(): Record<string, unknown> {
  return {
    id: "cmpl-5f1c0b5e9a8c4f0d",
    object: "text_completion",
    created: 1764800000,
    model: "Qwen/Qwen3-1.7B",
    choices: [
      {
        index: 1,
        text: "7",
        logprobs: {
          text_offset: [0, 1, 1],
          token_logprobs: [-2.5, -0.125, -1.0],
          tokens: ["token_id:22", "token_id:23", "token_id:24"],
          top_logprobs: [{ "token_id:22": -2.5 }, { "token_id:23": -0.125 }, {
            "token_id:24": -1.0,
          }],
        },
        finish_reason: "length",
        stop_reason: null,
        token_ids: [22, 23, 24],
        prompt_logprobs: null,
        prompt_token_ids: [151644, 872, 198],
      },
      {
        index: 0,
        text: "12",
        logprobs: {
          text_offset: [0, 1, 2],
          token_logprobs: [-0.25, -0.5, -0.0625],
          tokens: ["token_id:16", "token_id:17", "token_id:151645"],
          top_logprobs: null,
        },
        finish_reason: "stop",
        stop_reason: null,
        token_ids: [16, 17, 151645],
        prompt_logprobs: null,
        prompt_token_ids: [151644, 872, 198],
      },
    ],
    usage: { prompt_tokens: 3, total_tokens: 9, completion_tokens: 6, prompt_tokens_details: null },
    system_fingerprint: null,
    kv_transfer_params: null,
  };
}

Deno.test("vllmBackend.completionRequest() sends token ids and every sampling field", () => {
  const { path, body } = vllmBackend.completionRequest(REQUEST, "Qwen/Qwen3-1.7B");
  strictEqual(path, "/v1/completions");
  deepStrictEqual(body, {
    model: "Qwen/Qwen3-1.7B",
    prompt: [151644, 872, 198],
    n: 2,
    max_tokens: 3,
    min_tokens: 0,
    temperature: 0.7,
    top_p: 0.9,
    top_k: -1,
    min_p: 0,
    repetition_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    seed: 42,
    stop: [],
    stop_token_ids: [151645, 151643],
    ignore_eos: false,
    skip_special_tokens: false,
    include_stop_str_in_output: true,
    logprobs: 0,
    return_tokens_as_token_ids: true,
    return_token_ids: true,
    echo: false,
    stream: false,
  });
  const withAdapter = vllmBackend.completionRequest(
    { ...REQUEST, adapter: "halo-v5", topK: 20 },
    "Qwen/Qwen3-1.7B",
  ).body as Record<string, unknown>;
  strictEqual(withAdapter.model, "halo-v5");
  strictEqual(withAdapter.top_k, 20);
});

Deno.test("vllmBackend.parseCompletion() reads ids and log-probs in choice-index order", () => {
  const choices = vllmBackend.parseCompletion(response(), REQUEST);
  deepStrictEqual(choices, [
    { tokenIds: [16, 17, 151645], logprobs: [-0.25, -0.5, -0.0625], finishReason: "stop" },
    { tokenIds: [22, 23, 24], logprobs: [-2.5, -0.125, -1.0], finishReason: "length" },
  ]);
});

Deno.test("vllmBackend.parseCompletion() takes ids from logprobs.tokens without token_ids", () => {
  const json = response();
  const choices = json.choices as Record<string, unknown>[];
  delete choices[0].token_ids; // a vLLM before return_token_ids (PR #22587)
  const [, second] = vllmBackend.parseCompletion(json, REQUEST);
  deepStrictEqual(second, {
    tokenIds: [22, 23, 24],
    logprobs: [-2.5, -0.125, -1.0],
    finishReason: "length",
  });
});

Deno.test("vllmBackend.parseCompletion() reports malformed choices and refuses a bad envelope", () => {
  const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ["ids disagree", (c) => (c.token_ids = [16, 18, 151645]), /to equal the ids of/],
    ["null log-prob", (c) => {
      (c.logprobs as { token_logprobs: unknown[] }).token_logprobs[1] = null;
    }, /entry 1 is null/],
    ["no logprobs", (c) => (c.logprobs = null), /expected "logprobs"/],
    ["text tokens, no ids", (c) => {
      delete c.token_ids;
      (c.logprobs as { tokens: string[] }).tokens = ["1", "2", "<|im_end|>"];
    }, /token_id:N/],
    ["float id", (c) => (c.token_ids = [16, 17.5, 151645]), /entry 1 is 17.5/],
  ];
  for (const [name, spoil, pattern] of cases) {
    const json = response();
    spoil((json.choices as Record<string, unknown>[])[1]);
    const [first, second] = vllmBackend.parseCompletion(json, REQUEST);
    strictEqual(typeof first, "string", name);
    ok(pattern.test(first as string), `${name}: ${first}`);
    strictEqual(typeof second, "object", name);
  }
  const duplicate = response();
  (duplicate.choices as Record<string, unknown>[])[0].index = 0;
  const parsed = vllmBackend.parseCompletion(duplicate, REQUEST);
  ok(parsed.some((c) => typeof c === "string" && /each once/.test(c)));
  throws(
    () => vllmBackend.parseCompletion({ object: "error", message: "boom" }, REQUEST),
    /expected "choices"/,
  );
});

Deno.test("vllmBackend.parseModels() reads ids and max_model_len", () => {
  const json = {
    object: "list",
    data: [
      {
        id: "Qwen/Qwen3-1.7B",
        object: "model",
        created: 1764800000,
        owned_by: "vllm",
        root: "Qwen/Qwen3-1.7B",
        parent: null,
        max_model_len: 40960,
        permission: [],
      },
      {
        id: "halo-v3",
        object: "model",
        created: 1764800000,
        owned_by: "vllm",
        root: "/adapters/halo-v3",
        parent: "Qwen/Qwen3-1.7B",
        max_model_len: null,
        permission: [],
      },
    ],
  };
  deepStrictEqual(vllmBackend.parseModels(json), {
    models: ["Qwen/Qwen3-1.7B", "halo-v3"],
    maxModelLen: 40960,
  });
  throws(() => vllmBackend.parseModels({ data: [{ name: "x" }] }), /expected entries with "id"/);
});

Deno.test("vllmBackend: a lost adapter is HTTP 404 naming it; an unknown unload is HTTP 404", () => {
  const lost = `{"object":"error","message":"The model \`halo-v3\` does not exist.","code":404}`;
  strictEqual(vllmBackend.lostAdapter(404, lost, "halo-v3"), true);
  strictEqual(vllmBackend.lostAdapter(404, lost, "halo-v4"), false);
  strictEqual(vllmBackend.lostAdapter(400, lost, "halo-v3"), false);
  strictEqual(vllmBackend.unknownAdapter(404, "cannot be found", "halo-v1"), true);
  strictEqual(vllmBackend.unknownAdapter(503, "busy", "halo-v1"), false);
});

Deno.test("vllmBackend's probe asks for logprobs: k and reads top_logprobs[0]", () => {
  const { body } = vllmBackend.probeRequest(
    PROBE_REQUEST,
    "base",
    5,
  );
  const b = body as { logprobs: number; return_tokens_as_token_ids: boolean; n: number };
  deepStrictEqual([b.logprobs, b.return_tokens_as_token_ids, b.n], [5, true, 1]);
  const json = {
    choices: [{ logprobs: { top_logprobs: [{ "token_id:7": -0.1, "token_id:3": -9999 }] } }],
  };
  deepStrictEqual(vllmBackend.parseProbe(json), new Map([[7, -0.1], [3, -9999]]));
  ok(/"token_id:N": logprob entries/.test(String(vllmBackend.parseProbe({
    choices: [{ logprobs: { top_logprobs: [{ "a": -1 }] } }],
  }))));
});
