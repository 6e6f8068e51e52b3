/**
 * Held-out evaluation of an RL run: `k` sampled responses per prompt, verified in reward mode,
 * reported as avg@k (mean accuracy over all samples) and pass@k (a prompt counts when any of its
 * k samples is correct), with pass@1 equal to avg@k. A prompt whose gold the verifier cannot use
 * is left out of both and counted, as training leaves its groups out of `reward/accuracy`.
 *
 * @module
 */
import { scoreProblems } from "../../eval/mod.ts";
import type { Tokenizer } from "../../model/tokenizer.ts";
import { verify } from "../../verify/mod.ts";
import type { TrainBackend } from "../backend.ts";
import { generateGroups } from "./generate_groups.ts";

/**
 * Options of {@linkcode evaluateRl}.
 *
 * @example Usage
 * ```ts ignore
 * import type { EvaluateRlOptions } from "./eval_rl.ts";
 * declare const tokenizer: import("../../model/tokenizer.ts").Tokenizer;
 * const options: EvaluateRlOptions = {
 *   tokenizer, samples: 4, temperature: 1, maxNewTokens: 48, seed: 1, budgetMs: 0,
 * };
 * ```
 */
export interface EvaluateRlOptions {
  /** Decodes responses. */
  tokenizer: Tokenizer;
  /** Samples per prompt (k). */
  samples: number;
  /** Sampling temperature (`0`: greedy, one sample). */
  temperature: number;
  /** Most tokens per response. */
  maxNewTokens: number;
  /** Sampler seed (the same each evaluation, so evaluations differ only by the parameters). */
  seed: number;
  /** Verifier budget per call in ms; `0`: none. */
  budgetMs: number;
  /** Top-p of the sampler; default 1. */
  topP?: number;
  /** EOS ids; default the model's (`config.json`). */
  eosTokenIds?: readonly number[];
  /**
   * Other ids that end a sample (the run's stop ids, as for its rollouts: `rl.stopTokenIds` and
   * the chat template's end of turn); default none.
   */
  stopTokenIds?: readonly number[];
  /**
   * Most prompts per `generate` call (`rl.eval.batchPrompts`, or fewer where the GPU memory
   * budget needs smaller calls: `planRlGpuMemory`); default as many as fit (calls are always
   * split further to fit one storage binding). The results do not depend on it.
   */
  batchPrompts?: number;
  /**
   * Give the verifier each prompt's question (`VerifyOptions.problem`: `#### 12 bananas` is 12
   * for a problem about bananas), as the run's rewards do (`rl.reward.problemNouns`); default
   * `true`. `false` ablates the noun rule.
   */
  problemNouns?: boolean;
}

/**
 * Samples and scores the held-out prompts.
 *
 * @param backend The train backend (current parameters).
 * @param prompts Each prompt's ids and gold, and its question (the problem text the verifier
 *   reads nouns from, see `VerifyOptions.problem`) when known.
 * @param options Samples, sampling and verifier budget.
 * @returns Metrics `eval/avg@k`, `eval/pass@k`, `eval/accuracy` (= avg@k), over the prompts
 *   whose gold is usable (a sample of an unusable gold is `correct: null`, as a rollout's is in
 *   training), as is `eval/answered` (share of samples with an answer marker);
 *   `eval/response_length` over every sample; `eval/prompts` (all prompts) and
 *   `eval/unusable_gold` (how many of them have an unusable gold).
 * @throws {RangeError} When no prompt has a usable gold (there is no accuracy to report).
 *
 * @example Two greedy evaluations of one prompt agree
 * ```ts
 * import { evaluateRl } from "./eval_rl.ts";
 * import { createTrainBackend } from "../backend.ts";
 * import { loadModel } from "../../model/load_model.ts";
 * import { arithmeticTokenizerFiles } from "../../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../../model/tokenizer.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const options = {
 *   tokenizer, samples: 1, temperature: 0, maxNewTokens: 3, seed: 0, budgetMs: 0,
 * };
 * const prompts = [{ ids: [1, 2, 3], gold: "7" }];
 * deepStrictEqual(
 *   await evaluateRl(backend, prompts, options),
 *   await evaluateRl(backend, prompts, options),
 * );
 * ```
 */
export async function evaluateRl(
  backend: TrainBackend,
  prompts: readonly { ids: readonly number[]; gold: string; question?: string }[],
  options: EvaluateRlOptions,
): Promise<Record<string, number>> {
  return (await evaluateRlPrompts(backend, prompts, options)).metrics;
}

/**
 * {@linkcode evaluateRl} with each prompt's accuracy (the share of its k samples that are
 * correct; `null` for a prompt whose gold is unusable, which the metrics leave out), for a paired
 * comparison of two evaluations on the same prompts and sampling seeds.
 *
 * @param backend The train backend (current parameters).
 * @param prompts Each prompt's ids and gold, and its question (the problem text the verifier
 *   reads nouns from, see `VerifyOptions.problem`) when known.
 * @param options Samples, sampling and verifier budget.
 * @returns The metrics of {@linkcode evaluateRl} and `perPrompt` accuracies in prompt order.
 * @throws {RangeError} When no prompt has a usable gold.
 *
 * @example The mean of the usable prompts' accuracies is avg@k
 * ```ts ignore
 * import { evaluateRlPrompts } from "./eval_rl.ts";
 * declare const backend: import("../backend.ts").TrainBackend;
 * declare const prompts: { ids: number[]; gold: string }[];
 * declare const options: import("./eval_rl.ts").EvaluateRlOptions;
 * const { metrics, perPrompt } = await evaluateRlPrompts(backend, prompts, options);
 * const usable = perPrompt.filter((x) => x !== null);
 * console.log(usable.reduce((a, b) => a + b, 0) / usable.length, metrics["eval/accuracy"]);
 * ```
 */
export async function evaluateRlPrompts(
  backend: TrainBackend,
  prompts: readonly { ids: readonly number[]; gold: string; question?: string }[],
  options: EvaluateRlOptions,
): Promise<{ metrics: Record<string, number>; perPrompt: (number | null)[] }> {
  const k = options.samples;
  // Per prompt, its samples' correctness; `null` for a prompt with an unusable gold.
  const correct: (boolean[] | null)[] = [];
  let answered = 0;
  let length = 0;
  let usableSamples = 0;
  // Prompt i's samples are rows i·k … of one batch (the same draws however it is split).
  const sequences = await generateGroups(backend, prompts.map((p) => p.ids), k, {
    maxNewTokens: options.maxNewTokens,
    temperature: options.temperature,
    topP: options.topP ?? 1,
    seed: options.seed,
    maxPromptsPerCall: options.batchPrompts,
    ...(options.eosTokenIds === undefined ? {} : { eosTokenIds: options.eosTokenIds }),
    ...(options.stopTokenIds === undefined ? {} : { stopTokenIds: options.stopTokenIds }),
    rowsKey: "rl.eval.samples",
  });
  const nouns = options.problemNouns ?? true;
  prompts.forEach((p, i) => {
    const list: (boolean | null)[] = [];
    let marked = 0;
    for (let j = 0; j < k; j++) {
      const s = sequences[i * k + j];
      const text = options.tokenizer.decode(s.tokens, { skipSpecialTokens: true });
      const v = verify(text, p.gold, {
        mode: "reward",
        budgetMs: options.budgetMs > 0 ? options.budgetMs : Infinity,
        ...(p.question === undefined || !nouns ? {} : { problem: p.question }),
      });
      list.push(v.correct);
      if (v.markerOffset !== null) marked++;
      length += s.length;
    }
    // As a training group with a `null` sample is skipped (`groupKind`), the prompt is out (the
    // verifier stops at an unusable gold, before it looks for the response's marker).
    const out = list.some((c) => c === null);
    correct.push(out ? null : list.map((c) => c === true));
    if (!out) {
      answered += marked;
      usableSamples += k;
    }
  });
  const usable = correct.filter((c) => c !== null);
  if (usable.length === 0) {
    throw new RangeError(
      `Cannot evaluate the held-out prompts: none of the ${prompts.length} has a gold usable ` +
        `by the reward verifier (empty or unparseable): no accuracy to report`,
    );
  }
  const report = scoreProblems(usable.map((c) => ({ correct: c })), { ks: [1, k] });
  const n = prompts.length * k;
  const metrics = {
    [`eval/avg@${k}`]: report.avg.mean,
    [`eval/pass@${k}`]: report.passAtK[k].mean,
    "eval/accuracy": report.avg.mean,
    "eval/answered": answered / usableSamples,
    "eval/response_length": length / n,
    "eval/prompts": prompts.length,
    "eval/unusable_gold": prompts.length - usable.length,
  };
  const perPrompt = correct.map((list) => list === null ? null : list.filter((c) => c).length / k);
  return { metrics, perPrompt };
}
