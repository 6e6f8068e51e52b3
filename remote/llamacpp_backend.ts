/**
 * llama.cpp's `llama-server` through its OpenAI-compatible `POST /v1/completions` (llama.cpp
 * `tools/server/README.md`, `server-schema.cpp`; the source ships in npm `node-llama-cpp` as
 * `llama/gitRelease.bundle`): a token-id `prompt`, `n` (alias of `n_cmpl`, at most the server's
 * `--parallel`), `max_tokens`, `seed`, `logprobs` (alias of `n_probs`), and the sampler chain's
 * parameters. Choices carry chat-style `logprobs.content[{id, token, logprob, …}]`, so the ids come
 * with the log-probs, and `finish_reason` "stop"/"length".
 *
 * llama.cpp's defaults are temperature 0.8, top_k 40, top_p 0.95, min_p 0.05 (and repetition,
 * DRY, XTC, typical-p, mirostat samplers): every one is sent neutral. Its log-probs are raw (before
 * the sampler chain). It has no stop-id parameter: it stops on the vocabulary's end-of-generation
 * ids, so a request with stop ids other than EOS ids is refused here. It also treats every token
 * whose text reads like an end of turn (`<|im_end|>`, `<|endoftext|>`, …) as end-of-generation,
 * whatever the model's EOS ids: a sample ending on one halo does not count as EOS fails
 * validation and is re-requested.
 *
 * The models route reports the slot context as `meta.n_ctx`, read as the max length. Tested
 * against a real llama-server (`tests/llamacpp_server_test.ts`): for log-probs within 1e-4 of
 * halo's float64 model, start it with `--cache-type-k f32 --cache-type-v f32 --flash-attn off`
 * (its defaults, an f16 KV cache and flash attention "auto", gave differences up to 2.6e-2 on
 * the bundled model), and `--parallel` at least
 * the group size and the preflight probe's 8 samples.
 *
 * @module
 */
import type { EngineBackend, EngineHttpRequest, ServedModels } from "./engine_backend.ts";
import type { RawChoice, RolloutRequest } from "./types.ts";
import { isRecord, show } from "./_json.ts";
import { vllmBackend } from "./vllm_backend.ts";

function completionRequest(request: RolloutRequest, model: string): EngineHttpRequest {
  const eos = new Set(request.eosTokenIds);
  const extra = request.stopTokenIds.filter((id) => !eos.has(id));
  if (extra.length > 0) {
    throw new RangeError(
      `Cannot send stop ids to llama.cpp (it stops only on end-of-generation ids): ` +
        `stop ids ${extra.join(", ")} are not EOS ids`,
    );
  }
  if (request.adapter !== null) {
    throw new RangeError(
      `Cannot choose adapter "${request.adapter}" per request on llama.cpp: its LoRA adapters ` +
        `are set server-wide (POST /lora-adapters)`,
    );
  }
  return {
    path: "/v1/completions",
    body: {
      model,
      prompt: [...request.promptIds],
      n: request.n,
      max_tokens: request.maxTokens,
      temperature: request.temperature,
      top_k: request.topK,
      top_p: request.topP,
      min_p: 0,
      typical_p: 1,
      repeat_penalty: 1,
      repeat_last_n: 0,
      presence_penalty: 0,
      frequency_penalty: 0,
      dry_multiplier: 0,
      xtc_probability: 0,
      top_n_sigma: -1,
      mirostat: 0,
      seed: request.seed,
      ignore_eos: false,
      logprobs: 1,
      post_sampling_probs: false,
      return_tokens: true,
      cache_prompt: true,
      stream: false,
    },
  };
}

function parseChoice(c: unknown): RawChoice | string {
  if (!isRecord(c)) return `expected a choice object: got ${show(c)}`;
  const lp = c.logprobs;
  if (!isRecord(lp) || !Array.isArray(lp.content)) {
    return `expected "logprobs.content" in the choice: got ${show(lp)}`;
  }
  const ids: number[] = [];
  const logprobs: number[] = [];
  for (const t of lp.content) {
    if (!isRecord(t) || !Number.isInteger(t.id) || typeof t.logprob !== "number") {
      return `expected {id, logprob} entries in "logprobs.content": got ${show(t)}`;
    }
    ids.push(t.id as number);
    logprobs.push(t.logprob);
  }
  const finish = c.finish_reason;
  return {
    tokenIds: ids,
    logprobs,
    finishReason: typeof finish === "string" ? finish : show(finish),
  };
}

function parseCompletion(json: unknown, request: RolloutRequest): (RawChoice | string)[] {
  if (!isRecord(json) || !Array.isArray(json.choices)) {
    throw new TypeError(
      `Cannot read the llama.cpp completion: expected "choices": got ${show(json)}`,
    );
  }
  const out: (RawChoice | string)[] = [];
  json.choices.forEach((c, i) => {
    const index = isRecord(c) && Number.isInteger(c.index) ? c.index as number : i;
    if (index < 0 || index >= request.n || out[index] !== undefined) {
      out.push(`expected choice indices 0..${request.n - 1}, each once: got ${index}`);
    } else out[index] = parseChoice(c);
  });
  return Array.from(
    { length: out.length },
    (_, i) => out[i] ?? `expected a choice with index ${i}: none came`,
  );
}

function parseModels(json: unknown): ServedModels {
  const served = vllmBackend.parseModels(json);
  // llama-server reports each slot's context as `meta.n_ctx` (`--ctx-size` / `--parallel`,
  // capped at the model's training context): a sample that fills it ends with "length".
  if (served.maxModelLen === undefined && isRecord(json) && Array.isArray(json.data)) {
    for (const m of json.data) {
      const nCtx = isRecord(m) && isRecord(m.meta) ? m.meta.n_ctx : undefined;
      if (Number.isInteger(nCtx) && (nCtx as number) > 0) {
        return { ...served, maxModelLen: nCtx as number };
      }
    }
  }
  return served;
}

function probeRequest(request: RolloutRequest, model: string, top: number): EngineHttpRequest {
  const { path, body } = completionRequest({ ...request, n: 1 }, model);
  return { path, body: { ...(body as object), logprobs: top } };
}

/** `choices[0].logprobs.content[0].top_logprobs`: `{id, logprob}` entries (raw, pre-sampling). */
function parseProbe(json: unknown): Map<number, number> | string {
  const choice = isRecord(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const lp = isRecord(choice) ? choice.logprobs : undefined;
  const first = isRecord(lp) && Array.isArray(lp.content) ? lp.content[0] : undefined;
  const top = isRecord(first) ? first.top_logprobs : undefined;
  if (!Array.isArray(top)) {
    return `expected "choices[0].logprobs.content[0].top_logprobs" (n_probs > 0): got ${show(top)}`;
  }
  const out = new Map<number, number>();
  for (const t of top) {
    if (!isRecord(t) || !Number.isInteger(t.id) || typeof t.logprob !== "number") {
      return `expected {id, logprob} entries in "top_logprobs": got ${show(t)}`;
    }
    out.set(t.id as number, t.logprob);
  }
  return out;
}

/**
 * The llama.cpp backend.
 *
 * @example Every sampler neutral
 * ```ts
 * import { llamacppBackend } from "./llamacpp_backend.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { body } = llamacppBackend.completionRequest({
 *   promptIds: [1, 2], n: 3, maxTokens: 8, temperature: 1, topP: 1, topK: 0, seed: 5,
 *   stopTokenIds: [], eosTokenIds: [54], adapter: null, policyVersion: 0,
 * }, "model.gguf");
 * strictEqual((body as { min_p: number }).min_p, 0);
 * ```
 */
export const llamacppBackend: EngineBackend = {
  kind: "llamacpp",
  completionRequest,
  parseCompletion,
  modelsPath: "/v1/models",
  parseModels,
  probeRequest,
  parseProbe,
  // Adapters are server-wide (no per-name loads): no answer means a lost adapter.
  lostAdapter: () => false,
  unknownAdapter: () => false,
};
