/**
 * Rollouts: G samples of each prompt through the train backend's `generate`, with the sampler's
 * log-probs kept as old log-probs and the character offset of every response token in the
 * decoded response (from the generated ids, not by re-tokenising the text).
 *
 * The old log-probs are those of the policy the tokens were drawn from at temperature T,
 * `log_softmax(logits / T)[token]`: at T = 1 the generator's `modelLogprobs` (the untruncated
 * model's, whatever top-p/top-k), at T ≠ 1 its sampling-distribution `logprobs`, which are
 * `log_softmax(logits / T)` exactly when top-p is 1 and top-k is 0; with top-p/top-k at T ≠ 1
 * they are the truncated distribution's, and the RL loop recomputes the old log-probs with the
 * train backend's forward at T (`runRl`).
 *
 * @module
 */
import type { StopReason } from "../../model/generate.ts";
import type { Tokenizer } from "../../model/tokenizer.ts";
import type { TrainBackend } from "../backend.ts";
import { generateGroups } from "./generate_groups.ts";

/**
 * One sampled response to a prompt.
 *
 * @example Usage
 * ```ts
 * import type { Rollout } from "./rollout.ts";
 *
 * const rollout: Rollout = {
 *   group: 0, promptIds: [1, 2], tokens: [5, 6], oldLogprobs: new Float64Array([-0.1, -0.2]),
 *   text: "56", tokenOffsets: [0, 1], stopReason: "eos",
 * };
 * ```
 */
export interface Rollout {
  /** The group (prompt) it belongs to, numbered within the step. */
  group: number;
  /** The prompt's token ids. */
  promptIds: number[];
  /** The generated ids (a final EOS included). */
  tokens: number[];
  /**
   * The sampler's log-prob of each generated token under `softmax(logits / T)` at the sampling
   * temperature T (old log-probs; see the module doc), float64.
   */
  oldLogprobs: Float64Array;
  /** The decoded response, special tokens skipped (what the verifier reads). */
  text: string;
  /** Character offset in `text` where each generated token starts. */
  tokenOffsets: number[];
  /** Why generation ended (`"length"`: truncated). */
  stopReason: StopReason;
}

/**
 * Options of {@linkcode sampleGroups}.
 *
 * @example Usage
 * ```ts ignore
 * import type { SampleGroupsOptions } from "./rollout.ts";
 * declare const tokenizer: import("../../model/tokenizer.ts").Tokenizer;
 * const options: SampleGroupsOptions = {
 *   tokenizer, groupSize: 16, maxNewTokens: 64, temperature: 1, seed: 7, firstGroup: 0,
 * };
 * ```
 */
export interface SampleGroupsOptions {
  /** Decodes responses and maps tokens to characters. */
  tokenizer: Tokenizer;
  /** Samples per prompt (G). */
  groupSize: number;
  /** Most tokens per response. */
  maxNewTokens: number;
  /** Sampling temperature (> 0). */
  temperature: number;
  /** Nucleus sampling; default 1. */
  topP?: number;
  /** Top-k; default 0 (off). */
  topK?: number;
  /** Generation's `mergeAdapters`; default the backend's choice (on for a hardware adapter). */
  mergeAdapters?: boolean;
  /** Seed of the sampler (a call's draws are a pure function of it). */
  seed: number;
  /** EOS ids; default the model's. */
  eosTokenIds?: readonly number[];
  /**
   * Other ids that end a response (reason `"stop"`, the id kept as its last token): the run's
   * `rl.stopTokenIds` and the chat template's end of turn; default none.
   */
  stopTokenIds?: readonly number[];
  /** Group number of the first prompt (groups are numbered consecutively). */
  firstGroup: number;
  /**
   * Most prompts per `generate` call (the GPU memory budget's, `planRlGpuMemory`); default as
   * many as fit one storage binding. The samples do not depend on it.
   */
  maxPromptsPerCall?: number;
}

/**
 * Result of {@linkcode sampleGroups}.
 *
 * @example Usage
 * ```ts ignore
 * import type { SampledGroups } from "./rollout.ts";
 * declare const sampled: SampledGroups;
 * console.log(sampled.groups.length, sampled.generatedTokens);
 * ```
 */
export interface SampledGroups {
  /** One array of `groupSize` rollouts per prompt, in prompt order. */
  groups: Rollout[][];
  /** Generated tokens in all. */
  generatedTokens: number;
  /**
   * The policy version every group was sampled with (remote rollouts: the published adapter
   * version, = the step that published it); absent for the train backend's own sampler.
   */
  policyVersion?: number;
}

/**
 * Samples `groupSize` responses of every prompt through `backend.generate` (prompt `i`'s samples
 * are rows `i·G .. i·G + G − 1` of one batch, split into calls of whole prompts whose KV cache
 * fits one storage binding, and of at most `maxPromptsPerCall` prompts, with the samples of the
 * unsplit batch: see `generateGroups`),
 * decodes them with special tokens skipped, and records
 * where each generated token starts in the decoded text (`tokenizer.tokenOffsets` of the
 * generated ids).
 *
 * @param backend The train backend (its current parameters sample).
 * @param prompts Token ids of each prompt.
 * @param options Group size, sampling, seed, tokenizer.
 * @returns The groups.
 *
 * @example Two samples of one prompt on the fixture model
 * ```ts
 * import { sampleGroups } from "./rollout.ts";
 * import { createTrainBackend } from "../backend.ts";
 * import { loadModel } from "../../model/load_model.ts";
 * import { arithmeticTokenizerFiles } from "../../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../../model/tokenizer.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const { groups } = await sampleGroups(backend, [[1, 2, 3]], {
 *   tokenizer, groupSize: 2, maxNewTokens: 3, temperature: 1, seed: 1, firstGroup: 0,
 * });
 * strictEqual(groups[0].length, 2);
 * strictEqual(groups[0][0].tokens.length, groups[0][0].oldLogprobs.length);
 * ```
 */
export async function sampleGroups(
  backend: TrainBackend,
  prompts: readonly (readonly number[])[],
  options: SampleGroupsOptions,
): Promise<SampledGroups> {
  const G = options.groupSize;
  const sequences = await generateGroups(backend, prompts, G, {
    maxNewTokens: options.maxNewTokens,
    temperature: options.temperature,
    topP: options.topP ?? 1,
    topK: options.topK ?? 0,
    ...(options.mergeAdapters === undefined ? {} : { mergeAdapters: options.mergeAdapters }),
    seed: options.seed,
    eosTokenIds: options.eosTokenIds,
    ...(options.stopTokenIds === undefined ? {} : { stopTokenIds: options.stopTokenIds }),
    ...(options.maxPromptsPerCall === undefined
      ? {}
      : { maxPromptsPerCall: options.maxPromptsPerCall }),
    rowsKey: "rl.groupSize",
  });
  const decode = { skipSpecialTokens: true };
  const groups: Rollout[][] = prompts.map(() => []);
  let generatedTokens = 0;
  sequences.forEach((s, r) => {
    const p = Math.floor(r / G);
    generatedTokens += s.length;
    groups[p].push({
      group: options.firstGroup + p,
      promptIds: [...prompts[p]],
      tokens: [...s.tokens],
      // The tempered policy's log-probs (see the module doc): at T = 1 the raw model's.
      oldLogprobs: Float64Array.from(options.temperature === 1 ? s.modelLogprobs : s.logprobs),
      text: options.tokenizer.decode(s.tokens, decode),
      tokenOffsets: options.tokenizer.tokenOffsets(s.tokens, decode).map(([start]) => start),
      stopReason: s.stopReason,
    });
  });
  return { groups, generatedTokens };
}
