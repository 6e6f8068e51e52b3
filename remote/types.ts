/**
 * The engine-neutral rollout request and result of the remote rollout client, and the error every
 * remote failure throws.
 *
 * @module
 */

/**
 * One rollout request: `n` samples of one prompt given as token ids, with every sampling field
 * explicit (backends send each one, so no engine default or `generation_config.json` applies).
 *
 * @example Usage
 * ```ts
 * import type { RolloutRequest } from "./types.ts";
 *
 * const request: RolloutRequest = {
 *   promptIds: [1, 2, 3], n: 4, maxTokens: 16, temperature: 1, topP: 1, topK: 0, seed: 7,
 *   stopTokenIds: [], eosTokenIds: [54], adapter: null, policyVersion: 0,
 * };
 * ```
 */
export interface RolloutRequest {
  /** The prompt's token ids (halo's tokenizer and template are authoritative). */
  promptIds: readonly number[];
  /** Samples of the prompt (a group's G), sent as one request. */
  n: number;
  /** Most generated tokens per sample (≥ 1). */
  maxTokens: number;
  /** Sampling temperature (> 0). */
  temperature: number;
  /** Nucleus sampling in (0, 1]; 1 = off. */
  topP: number;
  /** Top-k; 0 = off. */
  topK: number;
  /** Seed of the request (sample `i` uses `seed + i` where the engine takes per-sample seeds). */
  seed: number;
  /** Ids that end a sample with reason `"stop"` (kept in the output). */
  stopTokenIds: readonly number[];
  /** Ids that end a sample with reason `"eos"` (halo's model config's). */
  eosTokenIds: readonly number[];
  /** The served LoRA adapter's name, or `null` for the base model. */
  adapter: string | null;
  /** The policy version the adapter (or base model) holds; copied to every choice. */
  policyVersion: number;
}

/** Why a sample ended: an EOS id, a stop id, or `maxTokens` (halo's `StopReason`). */
export type RolloutFinish = "eos" | "stop" | "length";

/**
 * One validated sample.
 *
 * @example Usage
 * ```ts
 * import type { RolloutChoice } from "./types.ts";
 *
 * const choice: RolloutChoice = {
 *   tokenIds: [5, 54], samplerLogprobs: [-0.1, -0.3], finish: "eos", policyVersion: 0,
 * };
 * ```
 */
export interface RolloutChoice {
  /** Generated ids from the response's token ids (a final EOS or stop id included). */
  tokenIds: number[];
  /** The sampler's log-prob of each generated token, as the engine reported it. */
  samplerLogprobs: number[];
  /** Why the sample ended. */
  finish: RolloutFinish;
  /** The request's policy version. */
  policyVersion: number;
}

/**
 * A choice as a backend parsed it from the engine's response, before validation.
 *
 * @example Usage
 * ```ts
 * import type { RawChoice } from "./types.ts";
 *
 * const raw: RawChoice = { tokenIds: [5], logprobs: [-0.1], finishReason: "length" };
 * ```
 */
export interface RawChoice {
  /** The generated ids the engine returned. */
  tokenIds: number[];
  /** One log-prob per generated token (or the wrong number: validation says so). */
  logprobs: number[];
  /** The engine's finish reason, normalised to `"stop"` (EOS or stop id), `"length"` or other. */
  finishReason: string;
}

/**
 * A failure talking to an inference server: the message names the server and what was wrong;
 * `retryable` says whether another attempt (or another server) may succeed.
 *
 * @example Catch a remote failure
 * ```ts
 * import { RemoteEngineError } from "./types.ts";
 *
 * const error = new RemoteEngineError("http://127.0.0.1:8000", "connection refused", {
 *   retryable: true,
 * });
 * console.log(error.message); // Server "http://127.0.0.1:8000": connection refused
 * ```
 */
export class RemoteEngineError extends Error {
  /** The server's base URL. */
  readonly server: string;
  /** Whether another attempt may succeed (network errors, timeouts, HTTP 5xx, bad choices). */
  readonly retryable: boolean;
  /** The HTTP status when the server answered with an error, else `undefined`. */
  readonly status?: number;

  /**
   * Makes the error.
   *
   * @param server The server's base URL.
   * @param what What went wrong.
   * @param options Whether it is retryable, the cause, the HTTP status.
   */
  constructor(
    server: string,
    what: string,
    options: { retryable: boolean; cause?: unknown; status?: number },
  ) {
    super(`Server "${server}": ${what}`, { cause: options.cause });
    this.name = "RemoteEngineError";
    this.server = server;
    this.retryable = options.retryable;
    if (options.status !== undefined) this.status = options.status;
  }
}
