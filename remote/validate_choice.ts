/**
 * Checks one engine choice against its request: ids are integers below the vocabulary size, one
 * finite log-prob ≤ 0 per token, and the finish reason agrees with the ids (a `"stop"` ends on an
 * EOS or stop id and no such id comes earlier; a `"length"` has `maxTokens` tokens).
 *
 * @module
 */
import type { RawChoice, RolloutChoice, RolloutRequest } from "./types.ts";

/**
 * Options of {@linkcode validateChoice}.
 *
 * @example Usage
 * ```ts
 * import type { ValidateChoiceOptions } from "./validate_choice.ts";
 *
 * const options: ValidateChoiceOptions = { vocabSize: 64 };
 * ```
 */
export interface ValidateChoiceOptions {
  /** The model's vocabulary size (halo's config): every id must be below it. */
  vocabSize: number;
  /**
   * The server's context length, when known: a `"length"` finish may then also end at
   * `prompt + tokens = maxModelLen`.
   */
  maxModelLen?: number;
}

/**
 * Validates a parsed choice.
 *
 * @param raw The choice as the backend parsed it.
 * @param request The request it answers.
 * @param options The vocabulary size (and the server's context length).
 * @returns The choice with halo's finish reason, or a string saying what was wrong.
 *
 * @example A sample that ends on EOS
 * ```ts
 * import { validateChoice } from "./validate_choice.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const request = {
 *   promptIds: [1], n: 1, maxTokens: 4, temperature: 1, topP: 1, topK: 0, seed: 0,
 *   stopTokenIds: [], eosTokenIds: [54], adapter: null, policyVersion: 3,
 * };
 * const raw = { tokenIds: [7, 54], logprobs: [-0.5, -0.1], finishReason: "stop" };
 * deepStrictEqual(validateChoice(raw, request, { vocabSize: 64 }), {
 *   tokenIds: [7, 54], samplerLogprobs: [-0.5, -0.1], finish: "eos", policyVersion: 3,
 * });
 * ```
 */
export function validateChoice(
  raw: RawChoice,
  request: RolloutRequest,
  options: ValidateChoiceOptions,
): RolloutChoice | string {
  const ids = raw.tokenIds;
  const n = ids.length;
  if (n === 0) return "expected at least 1 generated token: got 0";
  if (n > request.maxTokens) {
    return `expected at most ${request.maxTokens} tokens (max tokens): got ${n}`;
  }
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= options.vocabSize) {
      return `expected token ids in [0, ${options.vocabSize}): token ${i} is ${id}`;
    }
  }
  if (raw.logprobs.length !== n) {
    return `expected one log-prob per token (${n}): got ${raw.logprobs.length}`;
  }
  for (let i = 0; i < n; i++) {
    const lp = raw.logprobs[i];
    if (typeof lp !== "number" || !Number.isFinite(lp) || lp > 1e-6) {
      // A positive value is a logit: a vLLM started with --logprobs-mode raw_logits or
      // processed_logits (caught by the preflight probe, unless rl.rollout.preflight is false).
      return `expected finite log-probs ≤ 0: token ${i}'s is ${lp}` +
        (typeof lp === "number" && lp > 1e-6 && Number.isFinite(lp)
          ? ` (a logit, not a log-prob? a vLLM started with --logprobs-mode raw_logits or ` +
            `processed_logits returns logits: use raw_logprobs or processed_logprobs)`
          : "");
    }
  }
  const eos = new Set(request.eosTokenIds);
  const stop = new Set(request.stopTokenIds);
  const ends = (id: number) => eos.has(id) || stop.has(id);
  for (let i = 0; i < n - 1; i++) {
    if (ends(ids[i])) {
      return `expected no EOS or stop id before the last token: token ${i} is ${ids[i]}`;
    }
  }
  const last = ids[n - 1];
  let finish: RolloutChoice["finish"];
  if (raw.finishReason === "stop") {
    if (!ends(last)) {
      return `expected finish reason "stop" to end on an EOS or stop id ` +
        `(${[...eos, ...stop].join(", ")}): the last token is ${last}`;
    }
    finish = eos.has(last) ? "eos" : "stop";
  } else if (raw.finishReason === "length") {
    const atContext = options.maxModelLen !== undefined &&
      request.promptIds.length + n >= options.maxModelLen;
    if (n !== request.maxTokens && !atContext) {
      return `expected finish reason "length" after ${request.maxTokens} tokens: got ${n}`;
    }
    if (ends(last)) {
      // An engine that reports "length" for an EOS sampled as the last allowed token.
      finish = eos.has(last) ? "eos" : "stop";
    } else finish = "length";
  } else {
    return `expected finish reason "stop" or "length": got "${raw.finishReason}"`;
  }
  return {
    tokenIds: [...ids],
    samplerLogprobs: [...raw.logprobs],
    finish,
    policyVersion: request.policyVersion,
  };
}
