/**
 * vLLM's OpenAI-compatible completions protocol (`POST /v1/completions`, `GET /v1/models`), as
 * defined in `vllm/entrypoints/openai/completion/protocol.py` (`CompletionRequest`,
 * `CompletionResponseChoice`, `CompletionLogProbs`) and `vllm/entrypoints/openai/protocol.py`
 * (`ModelCard.max_model_len`).
 *
 * The prompt goes as token ids; every sampling field is sent (vLLM's `generation_config: auto`
 * would otherwise fill omitted ones from the checkpoint's `generation_config.json`);
 * `stop_token_ids` holds the EOS and stop ids, so the server stops where halo's config says.
 * Completion ids come from `choice.token_ids` (`return_token_ids`, vLLM ≥ 0.10.2) and/or from
 * `logprobs.tokens` as `"token_id:N"` (`return_tokens_as_token_ids`); when both are present they
 * must agree. `logprobs: 0` returns the sampled token's log-prob only; whether it is raw or
 * processed depends on the server's `--logprobs-mode` (see the preflight probe).
 *
 * @module
 */
import type { EngineBackend, EngineHttpRequest, ServedModels } from "./engine_backend.ts";
import type { RawChoice, RolloutRequest } from "./types.ts";
import { intArray, isRecord, numberArray, show } from "./_json.ts";

const TOKEN_ID = /^token_id:(\d+)$/;

function completionRequest(request: RolloutRequest, model: string): EngineHttpRequest {
  return {
    path: "/v1/completions",
    body: {
      model: request.adapter ?? model,
      prompt: [...request.promptIds],
      n: request.n,
      max_tokens: request.maxTokens,
      min_tokens: 0,
      temperature: request.temperature,
      top_p: request.topP,
      top_k: request.topK === 0 ? -1 : request.topK,
      min_p: 0,
      repetition_penalty: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      seed: request.seed,
      stop: [],
      stop_token_ids: [...new Set([...request.eosTokenIds, ...request.stopTokenIds])],
      ignore_eos: false,
      skip_special_tokens: false,
      include_stop_str_in_output: true,
      logprobs: 0,
      return_tokens_as_token_ids: true,
      return_token_ids: true,
      echo: false,
      stream: false,
    },
  };
}

function parseChoice(c: unknown): RawChoice | string {
  if (!isRecord(c)) return `expected a choice object: got ${show(c)}`;
  const lp = c.logprobs;
  if (!isRecord(lp)) return `expected "logprobs" in the choice: got ${show(lp)}`;
  const logprobs = numberArray(lp.token_logprobs, `"logprobs.token_logprobs"`);
  if (typeof logprobs === "string") return logprobs;
  let fromTokens: number[] | null = null;
  if (Array.isArray(lp.tokens)) {
    fromTokens = [];
    for (const t of lp.tokens) {
      const m = typeof t === "string" ? TOKEN_ID.exec(t) : null;
      if (m === null) {
        return `expected "logprobs.tokens" as "token_id:N" (return_tokens_as_token_ids): ` +
          `got ${show(t)}`;
      }
      fromTokens.push(Number(m[1]));
    }
  }
  let ids: number[];
  if (c.token_ids !== undefined && c.token_ids !== null) {
    const read = intArray(c.token_ids, `"token_ids"`);
    if (typeof read === "string") return read;
    ids = read;
    if (fromTokens !== null && fromTokens.join() !== ids.join()) {
      return `expected "token_ids" to equal the ids of "logprobs.tokens": ` +
        `${show(ids)} vs ${show(fromTokens)}`;
    }
  } else if (fromTokens !== null) ids = fromTokens;
  else return `expected "token_ids" or "logprobs.tokens" in the choice: got neither`;
  const finish = c.finish_reason;
  return {
    tokenIds: ids,
    logprobs,
    finishReason: typeof finish === "string" ? finish : show(finish),
  };
}

function parseCompletion(json: unknown, request: RolloutRequest): (RawChoice | string)[] {
  if (!isRecord(json) || !Array.isArray(json.choices)) {
    throw new TypeError(`Cannot read the vLLM completion: expected "choices": got ${show(json)}`);
  }
  const out: (RawChoice | string)[] = [];
  const seen = new Set<number>();
  for (const c of json.choices) {
    const index = isRecord(c) && Number.isInteger(c.index) ? c.index as number : out.length;
    if (index < 0 || index >= request.n || seen.has(index)) {
      out.push(`expected choice indices 0..${request.n - 1}, each once: got ${index}`);
      continue;
    }
    seen.add(index);
    out[index] = parseChoice(c);
  }
  return Array.from(
    { length: Math.max(out.length, 0) },
    (_, i) => out[i] ?? `expected a choice with index ${i}: none came`,
  );
}

function parseModels(json: unknown): ServedModels {
  if (!isRecord(json) || !Array.isArray(json.data)) {
    throw new TypeError(`Cannot read the models list: expected "data": got ${show(json)}`);
  }
  const models: string[] = [];
  let maxModelLen: number | undefined;
  for (const m of json.data) {
    if (!isRecord(m) || typeof m.id !== "string") {
      throw new TypeError(
        `Cannot read the models list: expected entries with "id": got ${show(m)}`,
      );
    }
    models.push(m.id);
    if (Number.isInteger(m.max_model_len) && maxModelLen === undefined) {
      maxModelLen = m.max_model_len as number;
    }
  }
  return maxModelLen === undefined ? { models } : { models, maxModelLen };
}

function probeRequest(request: RolloutRequest, model: string, top: number): EngineHttpRequest {
  const { path, body } = completionRequest({ ...request, n: 1 }, model);
  return { path, body: { ...(body as object), logprobs: top } };
}

/**
 * `choices[0].logprobs.top_logprobs[0]`: `{"token_id:N": logprob}` (with
 * `return_tokens_as_token_ids`; vLLM clamps the log-probs at -9999).
 */
function parseProbe(json: unknown): Map<number, number> | string {
  const choice = isRecord(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
  const lp = isRecord(choice) ? choice.logprobs : undefined;
  const top = isRecord(lp) && Array.isArray(lp.top_logprobs) ? lp.top_logprobs[0] : undefined;
  if (!isRecord(top)) {
    return `expected "choices[0].logprobs.top_logprobs[0]" (logprobs > 0): got ${show(top)}`;
  }
  const out = new Map<number, number>();
  for (const [key, value] of Object.entries(top)) {
    const m = TOKEN_ID.exec(key);
    if (m === null || typeof value !== "number") {
      return `expected "token_id:N": logprob entries in "top_logprobs": got ${
        show({ [key]: value })
      }`;
    }
    out.set(Number(m[1]), value);
  }
  return out;
}

/**
 * vLLM's answer for a model name it does not serve: HTTP 404 "The model `<name>` does not
 * exist."; `message` must name the adapter.
 */
function lostAdapter(status: number, message: string, name: string): boolean {
  return status === 404 && message.includes(name);
}

/** vLLM's unload of a name it does not hold: HTTP 404 "The lora adapter '<name>' cannot be found." */
function unknownAdapter(status: number, _message: string, _name: string): boolean {
  return status === 404;
}

/**
 * The vLLM backend.
 *
 * @example The request body of a group of 4
 * ```ts
 * import { vllmBackend } from "./vllm_backend.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { path, body } = vllmBackend.completionRequest({
 *   promptIds: [1, 2], n: 4, maxTokens: 8, temperature: 1, topP: 1, topK: 0, seed: 5,
 *   stopTokenIds: [], eosTokenIds: [54], adapter: "halo-v2", policyVersion: 2,
 * }, "base");
 * strictEqual(path, "/v1/completions");
 * strictEqual((body as { model: string }).model, "halo-v2");
 * ```
 */
export const vllmBackend: EngineBackend = {
  kind: "vllm",
  completionRequest,
  parseCompletion,
  modelsPath: "/v1/models",
  parseModels,
  probeRequest,
  parseProbe,
  lostAdapter,
  unknownAdapter,
};
