/**
 * The contract between the rollout client and one inference engine's HTTP protocol: how a
 * {@linkcode RolloutRequest} becomes a request body, how the response becomes choices, and how
 * the models list reads.
 *
 * @module
 */
import type { RawChoice, RolloutRequest } from "./types.ts";

/** The engines halo speaks to. */
export type EngineKind = "vllm" | "sglang" | "llamacpp";

/**
 * What a server's models route says.
 *
 * @example Usage
 * ```ts
 * import type { ServedModels } from "./engine_backend.ts";
 *
 * const served: ServedModels = { models: ["Qwen/Qwen3-1.7B", "halo-v3"], maxModelLen: 4096 };
 * ```
 */
export interface ServedModels {
  /** Served model ids (base model and loaded adapters). */
  models: string[];
  /** The context length, when the route reports it. */
  maxModelLen?: number;
}

/**
 * An HTTP request to send: a path below the server's base URL and a JSON body (`null`: GET).
 *
 * @example Usage
 * ```ts
 * import type { EngineHttpRequest } from "./engine_backend.ts";
 *
 * const request: EngineHttpRequest = { path: "/v1/models", body: null };
 * ```
 */
export interface EngineHttpRequest {
  /** The path, e.g. `"/v1/completions"`. */
  path: string;
  /** The JSON body of a POST, or `null` for a GET. */
  body: unknown;
}

/**
 * One engine's protocol.
 *
 * @example Usage
 * ```ts
 * import type { EngineBackend } from "./engine_backend.ts";
 * import { vllmBackend } from "./vllm_backend.ts";
 *
 * const backend: EngineBackend = vllmBackend;
 * console.log(backend.kind); // "vllm"
 * ```
 */
export interface EngineBackend {
  /** Which engine. */
  readonly kind: EngineKind;
  /**
   * The completion request for `request`, every sampling field explicit.
   *
   * @param request The rollout request.
   * @param model The served base model's id (used when `request.adapter` is `null`).
   * @returns Path and body.
   */
  completionRequest(request: RolloutRequest, model: string): EngineHttpRequest;
  /**
   * The choices of a completion response, in sample order; a choice that cannot be read is a
   * string saying why (the client retries it).
   *
   * @param json The parsed response body.
   * @param request The request it answers.
   * @returns Raw choices or problems.
   * @throws {TypeError} When the response's envelope is malformed (no choices at all).
   */
  parseCompletion(json: unknown, request: RolloutRequest): (RawChoice | string)[];
  /** The models route (GET). */
  readonly modelsPath: string;
  /**
   * Reads the models route's response.
   *
   * @param json The parsed response body.
   * @returns The served models.
   * @throws {TypeError} When the response is malformed.
   */
  parseModels(json: unknown): ServedModels;
  /**
   * The preflight probe's request: `request`'s completion request (one sample of one token)
   * asking also for the log-probs of the `top` most likely tokens at that position (vLLM
   * `logprobs: top`, SGLang `top_logprobs_num`, llama.cpp `n_probs`).
   *
   * @param request The probe's rollout request (`n` 1, `maxTokens` 1).
   * @param model The served base model's id.
   * @param top How many of the most likely tokens.
   * @returns Path and body.
   */
  probeRequest(request: RolloutRequest, model: string, top: number): EngineHttpRequest;
  /**
   * Reads the probe's answer: the log-probs of the most likely tokens at the first completion
   * position (raw or processed, as the server reports its log-probs).
   *
   * @param json The parsed response body.
   * @returns Token id → log-prob, or a string saying why they cannot be read.
   */
  parseProbe(json: unknown): Map<number, number> | string;
  /**
   * Whether an HTTP error answer to a completion request for adapter `name` means the server
   * does not hold that adapter (a restarted server lost it): the pool then routes the request
   * to a server that holds it and loads it again here. vLLM answers 404 "The model `<name>` does
   * not exist."; SGLang answers 400 "The following requested LoRA adapters are not loaded:
   * <name>…".
   *
   * @param status The HTTP status.
   * @param message The error's message (it holds the start of the answer's body).
   * @param name The adapter's served name.
   * @returns Whether the server lost the adapter.
   */
  lostAdapter(status: number, message: string, name: string): boolean;
  /**
   * Whether an HTTP error answer to unloading adapter `name` means the server does not hold it
   * (it restarted since it loaded it), so there is nothing to unload. vLLM answers 404 "The lora
   * adapter '<name>' cannot be found."; SGLang answers 400 "LoRA with name <name> does not exist.".
   *
   * @param status The HTTP status.
   * @param message The error's message (it holds the start of the answer's body).
   * @param name The adapter's served name.
   * @returns Whether the server does not hold the adapter.
   */
  unknownAdapter(status: number, message: string, name: string): boolean;
}
