/**
 * Held-out evaluation of an RL run: `k` sampled responses per prompt, verified in reward mode,
 * reported as avg@k (mean accuracy over all samples) and pass@k (a prompt counts when any of its
 * k samples is correct), with pass@1 equal to avg@k.
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
}

/**
 * Samples and scores the held-out prompts.
 *
 * @param backend The train backend (current parameters).
 * @param prompts Each prompt's ids and gold, and its question (the problem text the verifier
 *   reads nouns from, see `VerifyOptions.problem`) when known.
 * @param options Samples, sampling and verifier budget.
 * @returns Metrics `eval/avg@k`, `eval/pass@k`, `eval/accuracy` (= avg@k), `eval/answered`
 *   (share of samples with an answer marker), `eval/response_length`.
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
 * correct), for a paired comparison of two evaluations on the same prompts and sampling seeds.
 *
 * @param backend The train backend (current parameters).
 * @param prompts Each prompt's ids and gold, and its question (the problem text the verifier
 *   reads nouns from, see `VerifyOptions.problem`) when known.
 * @param options Samples, sampling and verifier budget.
 * @returns The metrics of {@linkcode evaluateRl} and `perPrompt` accuracies in prompt order.
 *
 * @example The mean of the per-prompt accuracies is avg@k
 * ```ts ignore
 * import { evaluateRlPrompts } from "./eval_rl.ts";
 * declare const backend: import("../backend.ts").TrainBackend;
 * declare const prompts: { ids: number[]; gold: string }[];
 * declare const options: import("./eval_rl.ts").EvaluateRlOptions;
 * const { metrics, perPrompt } = await evaluateRlPrompts(backend, prompts, options);
 * console.log(perPrompt.reduce((a, b) => a + b, 0) / perPrompt.length, metrics["eval/accuracy"]);
 * ```
 */
export async function evaluateRlPrompts(
  backend: TrainBackend,
  prompts: readonly { ids: readonly number[]; gold: string; question?: string }[],
  options: EvaluateRlOptions,
): Promise<{ metrics: Record<string, number>; perPrompt: number[] }> {
  const k = options.samples;
  const correct: boolean[][] = [];
  let answered = 0;
  let length = 0;
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
  prompts.forEach((p, i) => {
    const list: boolean[] = [];
    for (let j = 0; j < k; j++) {
      const s = sequences[i * k + j];
      const text = options.tokenizer.decode(s.tokens, { skipSpecialTokens: true });
      const v = verify(text, p.gold, {
        mode: "reward",
        budgetMs: options.budgetMs > 0 ? options.budgetMs : Infinity,
        ...(p.question === undefined ? {} : { problem: p.question }),
      });
      list.push(v.correct === true);
      if (v.markerOffset !== null) answered++;
      length += s.length;
    }
    correct.push(list);
  });
  const report = scoreProblems(correct.map((c) => ({ correct: c })), { ks: [1, k] });
  const n = prompts.length * k;
  const metrics = {
    [`eval/avg@${k}`]: report.avg.mean,
    [`eval/pass@${k}`]: report.passAtK[k].mean,
    "eval/accuracy": report.avg.mean,
    "eval/answered": answered / n,
    "eval/response_length": length / n,
    "eval/prompts": prompts.length,
  };
  const perPrompt = correct.map((list) => list.filter((c) => c).length / k);
  return { metrics, perPrompt };
}
