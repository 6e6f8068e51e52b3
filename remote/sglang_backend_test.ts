// SGLang's /generate mapping against bodies written from SGLang's definitions
// (python/sglang/srt/managers/io_struct.py GenerateReqInput; sampling/sampling_params.py; the
// response's meta_info as verl reads it in verl/workers/rollout/sglang_rollout/
// async_sglang_server.py), since no SGLang can run here.
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { sglangBackend } from "./sglang_backend.ts";
import type { RolloutRequest } from "./types.ts";
import { PROBE_REQUEST } from "./test_utils.ts";

const REQUEST: RolloutRequest = {
  promptIds: [151644, 872],
  n: 2,
  maxTokens: 2,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: 9,
  stopTokenIds: [],
  eosTokenIds: [151645],
  adapter: "halo-v1",
  policyVersion: 1,
};

function sample(ids: number[], lps: number[], finish: Record<string, unknown>) {
  return {
    text: "x",
    output_ids: ids,
    meta_info: {
      id: "b3c1",
      finish_reason: finish,
      prompt_tokens: 2,
      completion_tokens: ids.length,
      cached_tokens: 0,
      e2e_latency: 0.05,
      input_token_logprobs: [],
      output_token_logprobs: ids.map((id, i) => [lps[i], id, null]),
    },
  };
}

Deno.test("sglangBackend.completionRequest() sends n prompt copies with seeds seed + i", () => {
  const { path, body } = sglangBackend.completionRequest(REQUEST, "Qwen/Qwen3-1.7B");
  strictEqual(path, "/generate");
  const params = {
    max_new_tokens: 2,
    min_new_tokens: 0,
    temperature: 1,
    top_p: 1,
    top_k: -1,
    min_p: 0,
    repetition_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    stop: [],
    stop_token_ids: [151645],
    ignore_eos: false,
    skip_special_tokens: false,
    no_stop_trim: true,
  };
  deepStrictEqual(body, {
    input_ids: [[151644, 872], [151644, 872]],
    sampling_params: [{ ...params, sampling_seed: 9 }, { ...params, sampling_seed: 10 }],
    return_logprob: true,
    logprob_start_len: -1,
    top_logprobs_num: 0,
    lora_path: ["halo-v1", "halo-v1"],
    stream: false,
  });
  const base = sglangBackend.completionRequest({ ...REQUEST, adapter: null }, "m").body;
  ok(!("lora_path" in (base as object)));
});

Deno.test("sglangBackend.parseCompletion() reads output_ids, triples and finish_reason.type", () => {
  const json = [
    sample([5, 151645], [-0.5, -0.25], { type: "stop", matched: 151645 }),
    sample([6, 7], [-1, -2], { type: "length", length: 2 }),
  ];
  deepStrictEqual(sglangBackend.parseCompletion(json, REQUEST), [
    { tokenIds: [5, 151645], logprobs: [-0.5, -0.25], finishReason: "stop" },
    { tokenIds: [6, 7], logprobs: [-1, -2], finishReason: "length" },
  ]);
});

Deno.test("sglangBackend.parseCompletion() reports malformed samples", () => {
  const disagree = sample([5, 6], [-0.5, -0.25], { type: "length", length: 2 });
  disagree.output_ids = [5, 9];
  const noLogprobs = sample([5, 6], [-0.5, -0.25], { type: "length", length: 2 });
  (noLogprobs.meta_info as Record<string, unknown>).output_token_logprobs = undefined;
  const badTriple = sample([5, 6], [-0.5, -0.25], { type: "length", length: 2 });
  (badTriple.meta_info.output_token_logprobs[0] as unknown[])[0] = null;
  const abort = sample([5], [-0.5], { type: "abort", message: "preempted" });
  const parsed = sglangBackend.parseCompletion([disagree, noLogprobs, badTriple, abort], {
    ...REQUEST,
    n: 4,
  });
  ok(/to equal the ids/.test(parsed[0] as string), String(parsed[0]));
  ok(/return_logprob/.test(parsed[1] as string), String(parsed[1]));
  ok(/triples/.test(parsed[2] as string), String(parsed[2]));
  deepStrictEqual(parsed[3], { tokenIds: [5], logprobs: [-0.5], finishReason: "abort" });
  throws(() => sglangBackend.parseCompletion({ error: "x" }, REQUEST), /array of 2 samples/);
});

Deno.test("sglangBackend tells a lost adapter and an unknown unload from other HTTP 400s", () => {
  const lost = `POST /generate answered HTTP 400: {"error":{"message":"The following requested ` +
    `LoRA adapters are not loaded: halo-v3\\nLoaded adapters: odict_keys([])."}}`;
  strictEqual(sglangBackend.lostAdapter(400, lost, "halo-v3"), true);
  strictEqual(sglangBackend.lostAdapter(400, lost, "halo-v4"), false);
  strictEqual(sglangBackend.lostAdapter(404, lost, "halo-v3"), false);
  strictEqual(
    sglangBackend.lostAdapter(400, "max_new_tokens too large: halo-v3", "halo-v3"),
    false,
  );
  const unknown = `{"success":false,"error_message":"LoRA with name halo-v1 does not exist. ` +
    `Loaded LoRAs: odict_keys(['halo-v2'])"}`;
  strictEqual(sglangBackend.unknownAdapter(400, unknown, "halo-v1"), true);
  strictEqual(sglangBackend.unknownAdapter(400, unknown, "halo-v2"), false);
  strictEqual(sglangBackend.unknownAdapter(500, unknown, "halo-v1"), false);
});

Deno.test("sglangBackend's probe asks for top_logprobs_num and reads output_top_logprobs", () => {
  const { body } = sglangBackend.probeRequest(
    PROBE_REQUEST,
    "base",
    5,
  );
  const b = body as { top_logprobs_num: number; input_ids: number[][] };
  deepStrictEqual([b.top_logprobs_num, b.input_ids], [5, [[1, 2]]]);
  const sample = {
    output_ids: [7],
    meta_info: {
      output_token_logprobs: [[-0.1, 7, null]],
      output_top_logprobs: [[[-0.1, 7, null], [-2.5, 3, null]]],
      finish_reason: { type: "length", length: 1 },
    },
  };
  deepStrictEqual(sglangBackend.parseProbe([sample]), new Map([[7, -0.1], [3, -2.5]]));
  ok(/expected "meta_info.output_top_logprobs\[0\]"/.test(String(sglangBackend.parseProbe([{}]))));
});
