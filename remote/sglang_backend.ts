/**
 * SGLang's native `POST /generate` protocol, as defined in
 * `python/sglang/srt/managers/io_struct.py` (`GenerateReqInput`: `input_ids`, `sampling_params`,
 * `return_logprob`, `logprob_start_len`, `top_logprobs_num`, `lora_path`) and
 * `python/sglang/srt/sampling/sampling_params.py` (`max_new_tokens`, `temperature`, `top_p`,
 * `top_k` with -1 = off, `min_p`, `stop_token_ids`, `ignore_eos`, `skip_special_tokens`,
 * `no_stop_trim`, `sampling_seed`); the response per sample has `output_ids` and
 * `meta_info.output_token_logprobs` as `[logprob, token_id, text|null]` triples and
 * `meta_info.finish_reason` as `{type: "stop"|"length"|"abort", matched?, length?}` (the way verl
 * reads it in `verl/workers/rollout/sglang_rollout/async_sglang_server.py`). `GET /v1/models` lists
 * the served models (the OpenAI layer, `entrypoints/openai/protocol.py`).
 *
 * A group of `n` goes as a batch of `n` copies of the prompt (SGLang's radix cache computes the
 * prefix once) with per-sample seeds `seed + i`, as vLLM's parallel sampling derives them; `n`
 * inside one `sampling_params` would give every sample the same seed. SGLang reads
 * `sampling_seed` only when the server runs with `--enable-deterministic-inference`
 * (`SamplingBatchInfo.from_schedule_batch` builds the seeds only then): without it the seeds are
 * ignored and SGLang rollouts are not reproducible from halo's seeds (sampling stays correct;
 * the flag selects slower, batch-invariant kernels).
 * SGLang builds older than the `sampling_seed` field refuse it inside `SamplingParams(**…)`,
 * which surfaces as HTTP 500 on every request (retried, then "all servers down"): use a build
 * that has it. SGLang's log-probs are after temperature (processed).
 *
 * @module
 */
import type { EngineBackend, EngineHttpRequest, ServedModels } from "./engine_backend.ts";
import type { RawChoice, RolloutRequest } from "./types.ts";
import { intArray, isRecord, show } from "./_json.ts";
import { vllmBackend } from "./vllm_backend.ts";

function completionRequest(request: RolloutRequest, _model: string): EngineHttpRequest {
  const params = (i: number) => ({
    max_new_tokens: request.maxTokens,
    min_new_tokens: 0,
    temperature: request.temperature,
    top_p: request.topP,
    top_k: request.topK === 0 ? -1 : request.topK,
    min_p: 0,
    repetition_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    stop: [],
    stop_token_ids: [...new Set([...request.eosTokenIds, ...request.stopTokenIds])],
    ignore_eos: false,
    skip_special_tokens: false,
    no_stop_trim: true,
    sampling_seed: request.seed + i,
  });
  const n = request.n;
  return {
    path: "/generate",
    body: {
      input_ids: Array.from({ length: n }, () => [...request.promptIds]),
      sampling_params: Array.from({ length: n }, (_, i) => params(i)),
      return_logprob: true,
      logprob_start_len: -1,
      top_logprobs_num: 0,
      ...(request.adapter === null ? {} : { lora_path: Array(n).fill(request.adapter) }),
      stream: false,
    },
  };
}

function parseSample(s: unknown): RawChoice | string {
  if (!isRecord(s)) return `expected a sample object: got ${show(s)}`;
  const meta = s.meta_info;
  if (!isRecord(meta)) return `expected "meta_info" in the sample: got ${show(meta)}`;
  const triples = meta.output_token_logprobs;
  if (!Array.isArray(triples)) {
    return `expected "meta_info.output_token_logprobs" (return_logprob): got ${show(triples)}`;
  }
  const logprobs: number[] = [];
  const fromTriples: number[] = [];
  for (const t of triples) {
    if (!Array.isArray(t) || typeof t[0] !== "number" || !Number.isInteger(t[1])) {
      return `expected [logprob, token_id, text] triples in "output_token_logprobs": got ${
        show(t)
      }`;
    }
    logprobs.push(t[0]);
    fromTriples.push(t[1]);
  }
  let ids = fromTriples;
  if (s.output_ids !== undefined && s.output_ids !== null) {
    const read = intArray(s.output_ids, `"output_ids"`);
    if (typeof read === "string") return read;
    if (read.join() !== fromTriples.join()) {
      return `expected "output_ids" to equal the ids of "output_token_logprobs": ` +
        `${show(read)} vs ${show(fromTriples)}`;
    }
    ids = read;
  }
  const finish = meta.finish_reason;
  const type = isRecord(finish) && typeof finish.type === "string" ? finish.type : show(finish);
  return { tokenIds: ids, logprobs, finishReason: type };
}

function parseCompletion(json: unknown, request: RolloutRequest): (RawChoice | string)[] {
  const samples = Array.isArray(json) ? json : request.n === 1 && isRecord(json) ? [json] : null;
  if (samples === null) {
    throw new TypeError(
      `Cannot read the SGLang /generate response: expected an array of ${request.n} samples: ` +
        `got ${show(json)}`,
    );
  }
  return samples.slice(0, request.n).map(parseSample);
}

function parseModels(json: unknown): ServedModels {
  return vllmBackend.parseModels(json);
}

function probeRequest(request: RolloutRequest, model: string, top: number): EngineHttpRequest {
  const { path, body } = completionRequest({ ...request, n: 1 }, model);
  return { path, body: { ...(body as object), top_logprobs_num: top } };
}

/** The first sample's `meta_info.output_top_logprobs[0]`: `[logprob, token_id, text]` triples. */
function parseProbe(json: unknown): Map<number, number> | string {
  const sample = Array.isArray(json) ? json[0] : json;
  const meta = isRecord(sample) ? sample.meta_info : undefined;
  const top = isRecord(meta) && Array.isArray(meta.output_top_logprobs)
    ? meta.output_top_logprobs[0]
    : undefined;
  if (!Array.isArray(top)) {
    return `expected "meta_info.output_top_logprobs[0]" (top_logprobs_num > 0): got ${show(top)}`;
  }
  const out = new Map<number, number>();
  for (const t of top) {
    if (!Array.isArray(t) || typeof t[0] !== "number" || !Number.isInteger(t[1])) {
      return `expected [logprob, token_id, text] triples in "output_top_logprobs": got ${show(t)}`;
    }
    out.set(t[1], t[0]);
  }
  return out;
}

/**
 * SGLang's answer for a `lora_path` it does not hold: `LoRARegistry.acquire` raises
 * `ValueError("The following requested LoRA adapters are not loaded: <name>\nLoaded adapters:
 * …")` (older builds: `TokenizerManager._validate_lora_adapters`, the same words with a set of
 * names), and `http_server.py`'s `_create_error_response` answers it with HTTP 400
 * `{"error": {"message": …}}`.
 */
function lostAdapter(status: number, message: string, name: string): boolean {
  return status === 400 && message.includes("requested LoRA adapters are not loaded") &&
    message.includes(name);
}

/**
 * SGLang's unload of a name it does not hold: `LoRARegistry.unregister` raises
 * `ValueError("LoRA with name <name> does not exist. Loaded LoRAs: …")`, which
 * `/unload_lora_adapter` answers with HTTP 400 `{"success": false, "error_message": …}`.
 */
function unknownAdapter(status: number, message: string, name: string): boolean {
  return status === 400 && message.includes(`LoRA with name ${name} does not exist`);
}

/**
 * The SGLang backend.
 *
 * @example The request body of a group of 2
 * ```ts
 * import { sglangBackend } from "./sglang_backend.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const { body } = sglangBackend.completionRequest({
 *   promptIds: [1, 2], n: 2, maxTokens: 8, temperature: 1, topP: 1, topK: 0, seed: 5,
 *   stopTokenIds: [], eosTokenIds: [54], adapter: null, policyVersion: 0,
 * }, "base");
 * const params = (body as { sampling_params: { sampling_seed: number }[] }).sampling_params;
 * deepStrictEqual(params.map((p) => p.sampling_seed), [5, 6]);
 * ```
 */
export const sglangBackend: EngineBackend = {
  kind: "sglang",
  completionRequest,
  parseCompletion,
  modelsPath: "/v1/models",
  parseModels,
  probeRequest,
  parseProbe,
  lostAdapter,
  unknownAdapter,
};
