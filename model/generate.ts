/**
 * Batched generation: prefill a batch of prompts, then decode with greedy or seeded sampling
 * (temperature, top-k, top-p, min-p) until every sequence stops or reaches `maxNewTokens`.
 *
 * On WebGPU the whole loop stays on the device (KV cache written in place, sampling on the GPU,
 * tokens read back every `readbackEvery` steps); on the CPU each step recomputes the prefix.
 * Both draw the same random numbers, so a seed gives the same tokens on either backend up to
 * float rounding.
 *
 * @module
 */
import type { Qwen3Config } from "./config.ts";
import type { Qwen3Model } from "./model.ts";
import type { ApplyChatTemplateOptions, ChatMessage, Tokenizer } from "./tokenizer.ts";
import { generateCpu } from "./generate_cpu.ts";
import { generateWebGpu } from "./generate_webgpu.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

/** Why a sequence ended: an EOS id, another stop id, or `maxNewTokens`. */
export type StopReason = "eos" | "stop" | "length";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** Token ids of each prompt (non-empty); prompts may differ in length. */
  prompts: readonly (readonly number[])[];
  /** Most tokens to generate per sequence (≥ 1); prompt + this must fit the context. */
  maxNewTokens: number;
  /**
   * `0` requests greedy decoding explicitly (the most likely token; `topK`, `topP`, `minP` and
   * `seed` are then ignored); otherwise sample from `softmax(logits / temperature)`, at least
   * `1e-6` (below that float32 `logits / T` risks overflow: use 0).
   */
  temperature: number;
  /** Nucleus sampling: keep the smallest top set holding this much probability, in (0, 1]; default 1 (off). */
  topP?: number;
  /** Keep only the `topK` most likely tokens; default 0 (off). */
  topK?: number;
  /** Keep tokens at least `minP` times as likely as the most likely one, in [0, 1); default 0 (off). */
  minP?: number;
  /**
   * Seed of the counter-based RNG (a non-negative safe integer; default 0). Sequence `i` at step
   * `t` always draws the same numbers, whatever the batch, backend or `readbackEvery`.
   */
  seed?: number;
  /** Ids that end a sequence with reason `"stop"` (the id is kept in the output); default none. */
  stopTokenIds?: readonly number[];
  /** Ids that end a sequence with reason `"eos"`; default the model config's `eos_token_id`. */
  eosTokenIds?: readonly number[];
  /**
   * Generate at least this many tokens (HuggingFace's `min_new_tokens`): while fewer have been
   * generated, the logits of the EOS ids (`eosTokenIds`, resolved) are set to −∞ before greedy
   * or sampled choice, so the sampling log-probs follow the masked distribution; the model
   * log-probs (`modelLogprobs`) stay those of the unmodified model. As in HuggingFace (whose
   * processor masks only `eos_token_id`), `stopTokenIds` are not masked: a stop id can still end
   * a sequence earlier. An integer in [0, `maxNewTokens`]; default 0 (off).
   */
  minNewTokens?: number;
  /** WebGPU: decode steps recorded per submission, the tokens read back after each; default 32. */
  readbackEvery?: number;
  /**
   * WebGPU: drop finished sequences from the batch at a readback once at least an eighth of the
   * rows has finished, moving their KV cache rows (same tokens, less work); default true.
   */
  compact?: boolean;
  /**
   * The index of `prompts[0]` in a larger batch split over calls: prompt `b` draws the sampler's
   * numbers of sequence `firstSequence + b` (on either backend), so the parts of a split batch,
   * each with its own first index and the same `seed`, sample exactly the unsplit batch's
   * tokens. A non-negative integer with `firstSequence + prompts.length ≤ 2^32`; default 0.
   */
  firstSequence?: number;
  /**
   * WebGPU with LoRA adapters: merge each plain LoRA adapter into a copy of its base weight
   * (`W + scale·B·A`, recomputed on the GPU at the start of every call, so adapters changed
   * between calls are always seen) and run the prefill and decode on the merged weights, 2
   * dispatches fewer per adapted projection and step, for as many extra bytes as those base
   * weights (f16 weights: an f16 copy, rounded once more than the unmerged path's f32 sum, so an
   * adapter update `s·B·A` below half an f16 spacing of `W` rounds away: early in training most
   * of it, measured on the fixture with B = ±1e-5; a merged value beyond the f16 range is an
   * error). HILO's routed adapters, base weights split into row blocks and f16 ones under several
   * unrouted experts keep the unmerged path (see `model/merge_adapters_webgpu.ts`). Default: on a
   * hardware adapter (where a decode step is bound by its dispatches) for f32 weights; off for
   * f16 weights (they merge only with `true`) and on a software adapter (`isFallbackAdapter`).
   */
  mergeAdapters?: boolean;
}

/** The options after defaults and validation. */
export interface ResolvedGenerateOptions {
  /** Prompts as plain arrays. */
  prompts: number[][];
  /** Most new tokens per sequence. */
  maxNewTokens: number;
  /** `0` = greedy. */
  temperature: number;
  /** Top-p in (0, 1]. */
  topP: number;
  /** Top-k, 0 = off. */
  topK: number;
  /** Min-p in [0, 1). */
  minP: number;
  /** RNG seed. */
  seed: number;
  /** Stop ids (reason "stop"), without those already in `eosTokenIds`. */
  stopTokenIds: number[];
  /** EOS ids (reason "eos"). */
  eosTokenIds: number[];
  /** The EOS ids are banned while fewer than this many tokens have been generated. */
  minNewTokens: number;
  /** Decode steps per readback. */
  readbackEvery: number;
  /** Drop finished rows at readbacks. */
  compact: boolean;
  /** Merge plain LoRA adapters into the weights; undefined: by adapter (see `GenerateOptions`). */
  mergeAdapters?: boolean;
  /** Sequence index of `prompts[0]` (RNG streams only); default 0. */
  firstSequence?: number;
}

/** One generated continuation. */
export interface GeneratedSequence {
  /** Generated ids, without the prompt; a final EOS or stop id is included. */
  tokens: number[];
  /** Log-probability of each token under the sampling distribution (all 0 when greedy). */
  logprobs: Float32Array;
  /**
   * Log-probability of each token under the unmodified model, `log_softmax(logits)[token]` (the
   * old policy's log-probs for RL).
   */
  modelLogprobs: Float32Array;
  /** Why it ended. */
  stopReason: StopReason;
  /** Number of generated tokens (`tokens.length`). */
  length: number;
  /** Number of prompt tokens. */
  promptLength: number;
}

/** Counters of one {@linkcode generate} call. */
export interface GenerateStats {
  /** GPU→CPU readbacks (each costs ≥ 10 ms in Deno); on the CPU backend 0. */
  readbacks: number;
  /** Command buffer submissions. */
  submits: number;
  /** Sampling steps run over the batch. */
  steps: number;
  /** Prompt tokens (without padding). */
  promptTokens: number;
  /** Generated tokens, summed over sequences. */
  generatedTokens: number;
  /** Rows × decode steps actually computed (less than sequences × steps once rows are dropped). */
  rowSteps: number;
  /** Wall-clock seconds. */
  seconds: number;
}

/** Result of {@linkcode generate}. */
export interface GenerateResult {
  /** One entry per prompt, in order. */
  sequences: GeneratedSequence[];
  /** Counters. */
  stats: GenerateStats;
}

function fail(message: string, type: typeof RangeError | typeof TypeError = RangeError): never {
  throw new type(`Cannot generate: ${message}`);
}

function tokenIds(ids: unknown, name: string, vocab: number): number[] {
  if (!Array.isArray(ids)) {
    fail(`${name} must be an array of token ids: current value is ${ids}`, TypeError);
  }
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      fail(`${name}[${i}] must be a token id in [0, ${vocab}): current value is ${id}`);
    }
  });
  return [...ids];
}

/**
 * Applies defaults and checks generation options against a model config.
 *
 * @param config The model config (vocabulary, context length, EOS ids).
 * @param options The options.
 * @returns The resolved options.
 * @throws {TypeError} If prompts are not arrays of arrays.
 * @throws {RangeError} If a prompt is empty or too long, a token id is outside the vocabulary,
 * prompt + `maxNewTokens` exceeds `max_position_embeddings`, a sampling parameter is out of
 * range, `minNewTokens` is not an integer in [0, `maxNewTokens`], or it bans every token (the EOS
 * ids cover the vocabulary).
 *
 * @example Greedy defaults
 * ```ts
 * import { resolveGenerateOptions } from "./generate.ts";
 * const config = { vocabSize: 10, maxPositionEmbeddings: 32, eosTokenIds: [9] } as
 *   import("./config.ts").Qwen3Config;
 * const o = resolveGenerateOptions(config, { prompts: [[1, 2]], maxNewTokens: 4, temperature: 0 });
 * console.log(o.eosTokenIds, o.topP, o.readbackEvery); // [9] 1 32
 * ```
 */
export function resolveGenerateOptions(
  config: Qwen3Config,
  options: GenerateOptions,
): ResolvedGenerateOptions {
  const vocab = config.vocabSize;
  const maxPos = config.maxPositionEmbeddings;
  const { prompts, maxNewTokens, temperature } = options;
  if (!Array.isArray(prompts) || prompts.length === 0) {
    fail(
      `prompts must be a non-empty array of token id arrays: current value is ${prompts}`,
      TypeError,
    );
  }
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 1) {
    fail(`maxNewTokens must be a positive integer: current value is ${maxNewTokens}`);
  }
  const resolved = prompts.map((p, b) => {
    if (!Array.isArray(p)) {
      fail(`prompts[${b}] must be an array of token ids: current value is ${p}`, TypeError);
    }
    if (p.length === 0) fail(`prompts[${b}] is empty: every prompt needs at least one token`);
    if (p.length > maxPos) {
      fail(
        `prompts[${b}] has ${p.length} tokens, longer than the context ` +
          `(max_position_embeddings = ${maxPos})`,
      );
    }
    if (p.length + maxNewTokens > maxPos) {
      fail(
        `prompts[${b}] (${p.length} tokens) + maxNewTokens (${maxNewTokens}) must fit the context ` +
          `max_position_embeddings = ${maxPos}: current total is ${p.length + maxNewTokens}`,
      );
    }
    return tokenIds(p, `prompts[${b}]`, vocab);
  });
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    fail(
      `temperature must be 0 (greedy) or a positive finite number: current value is ${temperature}`,
    );
  }
  if (temperature > 0 && temperature < 1e-6) {
    fail(
      `temperature must be at least 1e-6 for sampling (use 0 for greedy): current value is ${temperature}`,
    );
  }
  const topP = options.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) fail(`topP must be in (0, 1]: current value is ${topP}`);
  const topK = options.topK ?? 0;
  if (!Number.isSafeInteger(topK) || topK < 0) {
    fail(`topK must be a non-negative integer (0 = off): current value is ${topK}`);
  }
  const minP = options.minP ?? 0;
  if (!(minP >= 0 && minP < 1)) fail(`minP must be in [0, 1): current value is ${minP}`);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    fail(`seed must be a non-negative safe integer: current value is ${seed}`);
  }
  const firstSequence = options.firstSequence ?? 0;
  if (
    !Number.isSafeInteger(firstSequence) || firstSequence < 0 ||
    firstSequence + resolved.length > 2 ** 32
  ) {
    fail(
      `firstSequence must be a non-negative integer with firstSequence + prompts (` +
        `${resolved.length}) ≤ 2^32: current value is ${firstSequence}`,
    );
  }
  const readbackEvery = options.readbackEvery ?? 32;
  if (!Number.isSafeInteger(readbackEvery) || readbackEvery < 1) {
    fail(`readbackEvery must be a positive integer: current value is ${readbackEvery}`);
  }
  const eosTokenIds = [
    ...new Set(tokenIds(options.eosTokenIds ?? config.eosTokenIds, "eosTokenIds", vocab)),
  ];
  const stopTokenIds = [...new Set(tokenIds(options.stopTokenIds ?? [], "stopTokenIds", vocab))]
    .filter((id) => !eosTokenIds.includes(id));
  const minNewTokens = options.minNewTokens ?? 0;
  if (!Number.isSafeInteger(minNewTokens) || minNewTokens < 0 || minNewTokens > maxNewTokens) {
    fail(
      `minNewTokens must be an integer in [0, maxNewTokens = ${maxNewTokens}]: current value is ` +
        `${minNewTokens}`,
    );
  }
  if (minNewTokens > 0 && eosTokenIds.length >= vocab) {
    fail(
      `minNewTokens (${minNewTokens}) would ban every token: the ${eosTokenIds.length} EOS ids ` +
        `cover the vocabulary`,
    );
  }
  return {
    prompts: resolved,
    maxNewTokens,
    temperature,
    topP,
    topK,
    minP,
    seed,
    stopTokenIds,
    eosTokenIds,
    minNewTokens,
    readbackEvery,
    compact: options.compact ?? true,
    ...(options.mergeAdapters === undefined ? {} : { mergeAdapters: options.mergeAdapters }),
    ...(firstSequence === 0 ? {} : { firstSequence }),
  };
}

/**
 * Generates continuations of a batch of prompts on the model's backend.
 *
 * WebGPU: prompts are **left-padded** to the longest one (pad slots masked out of attention, each
 * token's RoPE position counted from its own first real token), prefilled, then decoded with the
 * KV cache written in place; sampling, stop checks and the next step's inputs stay on the GPU, and
 * tokens are read back once per `readbackEvery` steps (and the loop ends early once every
 * sequence has stopped). CPU: each step recomputes the whole prefix (slow; for small models and as
 * a reference). Both apply the LoRA adapters set on the model (`setAdapters`) on top of its base
 * weights.
 *
 * @param model A loaded model (`backend` `"webgpu"` or `"cpu"`).
 * @param options Prompts, length, sampling and stopping.
 * @returns Per-sequence tokens, log-probs and stop reasons, and counters.
 * @throws {TypeError|RangeError} On bad options (see {@linkcode resolveGenerateOptions}).
 *
 * @example Greedy continuation of one prompt on the bundled tiny model
 * ```ts
 * import { loadModel } from "./load_model.ts";
 * import { generate } from "./generate.ts";
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const { sequences } = await generate(model, { prompts: [[1, 2, 3]], maxNewTokens: 4, temperature: 0 });
 * console.log(sequences[0].tokens.length <= 4); // true
 * ```
 */
export function generate(model: Qwen3Model, options: GenerateOptions): Promise<GenerateResult> {
  try {
    const resolved = resolveGenerateOptions(model.config, options);
    if (model.backend === "webgpu") return generateWebGpu(model as WebGpuQwen3, resolved);
    if (model.backend === "cpu") return generateCpu(model, resolved);
    fail(`model.backend must be "webgpu" or "cpu": current value is "${model.backend}"`, TypeError);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Options of {@linkcode generateText}. */
export interface GenerateTextOptions extends Omit<GenerateOptions, "prompts"> {
  /** Conversations, each rendered with the chat template (give this or `prompts`). */
  messages?: readonly (readonly ChatMessage[])[];
  /** User messages, each rendered as a one-message conversation (give this or `messages`). */
  prompts?: readonly string[];
  /** Chat template options; default adds the generation prompt, thinking on (Qwen3's default). */
  chat?: ApplyChatTemplateOptions;
  /** Drop special tokens (e.g. `<|im_end|>`) from the decoded text; default true. */
  skipSpecialTokens?: boolean;
}

/** Result of {@linkcode generateText}. */
export interface GenerateTextResult extends GenerateResult {
  /** The decoded continuation of each prompt. */
  texts: string[];
  /** The token ids of each rendered prompt. */
  promptIds: number[][];
}

/**
 * Generates text for chat prompts: renders each conversation with the tokenizer's chat template,
 * generates (EOS ids are the model's and the tokenizer's), and decodes the continuations.
 *
 * @param model A loaded model.
 * @param tokenizer The model's tokenizer.
 * @param options Conversations or user prompts, plus {@linkcode GenerateOptions} without `prompts`.
 * @returns The texts, the rendered prompt ids and the {@linkcode GenerateResult}.
 * @throws {TypeError} Unless exactly one of `messages` and `prompts` is a non-empty array.
 *
 * @example Answer a question
 * ```ts ignore
 * import { loadModel } from "./load_model.ts";
 * import { loadTokenizer } from "./tokenizer.ts";
 * import { generateText } from "./generate.ts";
 * const model = await loadModel("checkpoints/qwen3-0.6b");
 * const tokenizer = await loadTokenizer("checkpoints/qwen3-0.6b");
 * const { texts } = await generateText(model, tokenizer, {
 *   prompts: ["What is 3 + 4?"], maxNewTokens: 64, temperature: 0, chat: { enableThinking: false },
 * });
 * console.log(texts[0]);
 * ```
 */
export async function generateText(
  model: Qwen3Model,
  tokenizer: Tokenizer,
  options: GenerateTextOptions,
): Promise<GenerateTextResult> {
  const { messages, prompts, chat, skipSpecialTokens, ...rest } = options;
  const hasMessages = Array.isArray(messages) && messages.length > 0;
  const hasPrompts = Array.isArray(prompts) && prompts.length > 0;
  if (hasMessages === hasPrompts) {
    fail(
      "give exactly one of messages (conversations) and prompts (user messages) as a non-empty " +
        `array: current values are ${hasMessages ? "both" : "neither"}`,
      TypeError,
    );
  }
  const conversations = hasMessages
    ? messages!
    : prompts!.map((content) => [{ role: "user", content } as ChatMessage]);
  const promptIds = conversations.map((m) => tokenizer.encodeChat(m, chat));
  const eos = [...(options.eosTokenIds ?? model.config.eosTokenIds)];
  if (options.eosTokenIds === undefined && tokenizer.eosTokenId !== null) {
    eos.push(tokenizer.eosTokenId);
  }
  const result = await generate(model, { ...rest, prompts: promptIds, eosTokenIds: eos });
  const texts = result.sequences.map((s) =>
    tokenizer.decode(s.tokens, { skipSpecialTokens: skipSpecialTokens ?? true })
  );
  return { ...result, texts, promptIds };
}
