/**
 * Held-out evaluation of an SFT model on the arithmetic task or the multi-task suite: the
 * token-mean NLL of the reference completions (teacher forcing) and the exact-answer accuracy of
 * greedy completions, each scored by its task's own answer check (`suiteAnswerCorrect`).
 *
 * @module
 */
import type { Tokenizer } from "../model/tokenizer.ts";
import { suiteAnswerCorrect, type SuiteTask } from "../data/task_suite.ts";
import type { TrainBackend } from "./backend.ts";
import { collateSft, tokenizeSft } from "./sft_batch.ts";
import { sftLoss } from "./sft_loss.ts";

/**
 * One held-out problem: the rendered prompt, the reference completion, the answer and the task
 * whose check scores it.
 *
 * @example Usage
 * ```ts
 * import type { EvalExample } from "./eval_sft.ts";
 *
 * const example: EvalExample = {
 *   prompt: "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n",
 *   completion: "1 + 2 = 3\nAnswer: 3<|im_end|>",
 *   answer: "3",
 * };
 * ```
 */
export interface EvalExample {
  /** The prompt as the model sees it. */
  prompt: string;
  /** The reference completion (its NLL is `eval/loss`). */
  completion: string;
  /** The answer: an integer in decimal for arithmetic, the task's answer text otherwise. */
  answer: string;
  /**
   * The suite task whose answer check scores the completion (`suiteAnswerCorrect`: integers
   * compared as numbers for `"arithmetic"`, the answer text exactly for `"sort"`, `"count"` and
   * `"base"`); default `"arithmetic"`.
   */
  task?: SuiteTask;
}

/**
 * Options of {@linkcode evaluateSft}.
 *
 * @example Usage
 * ```ts ignore
 * import type { EvaluateSftOptions } from "./eval_sft.ts";
 * declare const tokenizer: import("../model/tokenizer.ts").Tokenizer;
 * const options: EvaluateSftOptions = {
 *   tokenizer, examples: [], maxNewTokens: 32, batchSize: 32, padId: 52, eosTokenIds: [54],
 * };
 * ```
 */
export interface EvaluateSftOptions {
  /** The model's tokenizer. */
  tokenizer: Tokenizer;
  /** The held-out problems. */
  examples: readonly EvalExample[];
  /** Most tokens generated per problem (cut to fit the context). */
  maxNewTokens: number;
  /** Problems per forward pass / generation batch. */
  batchSize: number;
  /** Padding id for the teacher-forced batches. */
  padId: number;
  /** Ids that end a generated completion. */
  eosTokenIds: readonly number[];
}

/**
 * One greedy completion and its verdict.
 *
 * @example Usage
 * ```ts
 * import type { EvalSample } from "./eval_sft.ts";
 *
 * const sample: EvalSample = { answer: "3", completion: "1 + 2 = 3\nAnswer: 3", correct: true };
 * ```
 */
export interface EvalSample {
  /** The reference answer. */
  answer: string;
  /** The task whose check scored it (`"arithmetic"` when the example named none). */
  task?: SuiteTask;
  /** The decoded greedy completion (special tokens dropped). */
  completion: string;
  /** Whether its answer equals the reference. */
  correct: boolean;
}

/**
 * Result of {@linkcode evaluateSft}.
 *
 * @example Usage
 * ```ts
 * import type { EvaluateSftResult } from "./eval_sft.ts";
 *
 * const result: EvaluateSftResult = {
 *   metrics: { "eval/loss": 0.4, "eval/accuracy": 0.5, "eval/correct": 1, "eval/samples": 2 },
 *   samples: [],
 * };
 * ```
 */
export interface EvaluateSftResult {
  /**
   * `"eval/loss"` (token-mean NLL of the reference completions), `"eval/accuracy"` (share of
   * exact answers), `"eval/correct"` and `"eval/samples"` (counts), `"eval/answered"` (share of
   * completions with a parseable `Answer:`: an integer after it for arithmetic, any text on its
   * line for the other tasks).
   */
  metrics: Record<string, number>;
  /** Every problem's greedy completion, in order. */
  samples: EvalSample[];
}

/**
 * The integer a completion gives after its last `Answer:` marker, or `null` when there is none
 * (no marker, or no integer right after it).
 *
 * @param completion The decoded completion.
 * @returns The answer as a canonical decimal string (`"-7"`, `"0"`), or `null`.
 *
 * @example The last marker counts
 * ```ts
 * import { extractArithmeticAnswer } from "./eval_sft.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(extractArithmeticAnswer("Answer: 4\nAnswer: -012"), "-12");
 * strictEqual(extractArithmeticAnswer("7 * 3 = 21"), null);
 * ```
 */
export function extractArithmeticAnswer(completion: string): string | null {
  const at = completion.lastIndexOf("Answer:");
  if (at === -1) return null;
  const match = /^[ \t]*(-?)(\d+)/.exec(completion.slice(at + "Answer:".length));
  if (match === null) return null;
  const value = BigInt(match[2]);
  return value === 0n ? "0" : `${match[1]}${value}`;
}

/**
 * Scores one completion of a held-out problem with its task's answer check.
 *
 * @param example The problem's answer and task (default `"arithmetic"`).
 * @param completion The decoded completion.
 * @returns `correct` (the task's exact-answer check, `suiteAnswerCorrect`) and `answered` (an
 * answer could be read: an integer after the last `Answer:` for arithmetic, non-empty text on its
 * line for the other tasks).
 *
 * @example A sorted list and a base-2 answer are not integers
 * ```ts
 * import { scoreEvalCompletion } from "./eval_sft.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(
 *   scoreEvalCompletion({ answer: "2, 5, 9", task: "sort" }, "Answer: 2, 5, 9"),
 *   { correct: true, answered: true },
 * );
 * deepStrictEqual(
 *   scoreEvalCompletion({ answer: "0101", task: "base" }, "Answer: 101"),
 *   { correct: false, answered: true },
 * );
 * ```
 */
export function scoreEvalCompletion(
  example: Pick<EvalExample, "answer" | "task">,
  completion: string,
): { correct: boolean; answered: boolean } {
  const task = example.task ?? "arithmetic";
  let answered: boolean;
  if (task === "arithmetic") {
    answered = extractArithmeticAnswer(completion) !== null;
  } else {
    const at = completion.lastIndexOf("Answer:");
    answered = at !== -1 &&
      completion.slice(at + "Answer:".length).split("\n")[0].replace(/<\|im_end\|>.*$/, "")
          .trim() !== "";
  }
  return { correct: suiteAnswerCorrect(task, completion, example.answer), answered };
}

/**
 * Evaluates a model on held-out problems: teacher-forced NLL of the reference completions (the
 * SFT loss, token mean over all problems) and greedy generation (`backend.generate`, temperature 0)
 * scored by each problem's task check ({@linkcode scoreEvalCompletion}).
 *
 * @param backend The backend holding the model.
 * @param options Problems, tokenizer, lengths and batch size.
 * @returns Metrics and per-problem completions.
 * @throws {RangeError} When a prompt leaves no room in the context for a single new token.
 *
 * @example Evaluate a fresh model on two problems
 * ```ts
 * import { evaluateSft } from "./eval_sft.ts";
 * import { createTrainBackend } from "./backend.ts";
 * import { initQwen3Weights } from "../model/init.ts";
 * import { CpuQwen3 } from "../model/qwen3_cpu.ts";
 * import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
 * import { createTokenizer } from "../model/tokenizer.ts";
 * import { ok } from "node:assert/strict";
 *
 * const files = arithmeticTokenizerFiles();
 * const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
 * const config = {
 *   vocabSize: 56, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
 *   numAttentionHeads: 2, numKeyValueHeads: 1, headDim: 4, rmsNormEps: 1e-6, ropeTheta: 1e4,
 *   maxPositionEmbeddings: 64, tieWordEmbeddings: true, eosTokenIds: [54], bosTokenId: null,
 *   padTokenId: 52,
 * };
 * const backend = createTrainBackend(
 *   new CpuQwen3(config, initQwen3Weights(config, { seed: 0 })),
 *   { mode: "full" },
 * );
 * const { metrics } = await evaluateSft(backend, {
 *   tokenizer,
 *   examples: [
 *     { prompt: "What is 1 + 2?", completion: "Answer: 3<|im_end|>", answer: "3" },
 *     { prompt: "What is 2 + 2?", completion: "Answer: 4<|im_end|>", answer: "4" },
 *   ],
 *   maxNewTokens: 4, batchSize: 2, padId: 52, eosTokenIds: [54],
 * });
 * ok(metrics["eval/loss"] > 3 && metrics["eval/samples"] === 2);
 * ```
 */
export async function evaluateSft(
  backend: TrainBackend,
  options: EvaluateSftOptions,
): Promise<EvaluateSftResult> {
  const { tokenizer, examples, batchSize, padId } = options;
  const context = backend.model.config.maxPositionEmbeddings;
  let nll = 0;
  let lossTokens = 0;
  const samples: EvalSample[] = [];
  let answered = 0;
  for (let start = 0; start < examples.length; start += batchSize) {
    const chunk = examples.slice(start, start + batchSize);
    const sequences = chunk.map((e) => tokenizeSft(tokenizer, e));
    const batch = collateSft(sequences, { padId, maxLength: context });
    const outputs = await backend.forward({
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
    });
    const loss = sftLoss({ logprobs: outputs.logprobs, lossMask: batch.lossMask });
    nll += loss.value * batch.lossTokens;
    lossTokens += batch.lossTokens;

    const prompts = sequences.map((s) => s.ids.slice(0, s.promptLength));
    const longest = Math.max(...prompts.map((p) => p.length));
    const maxNewTokens = Math.min(options.maxNewTokens, context - longest);
    if (maxNewTokens < 1) {
      throw new RangeError(
        `Cannot evaluate: a prompt of ${longest} tokens leaves no room for an answer in the ` +
          `context of ${context} tokens`,
      );
    }
    const { sequences: generated } = await backend.generate({
      prompts,
      maxNewTokens,
      temperature: 0,
      eosTokenIds: options.eosTokenIds,
    });
    generated.forEach((g, i) => {
      const completion = tokenizer.decode(g.tokens, { skipSpecialTokens: true });
      const example = chunk[i];
      const score = scoreEvalCompletion(example, completion);
      if (score.answered) answered++;
      samples.push({
        answer: example.answer,
        task: example.task ?? "arithmetic",
        completion,
        correct: score.correct,
      });
    });
  }
  const correct = samples.filter((s) => s.correct).length;
  const n = samples.length;
  return {
    metrics: {
      "eval/loss": lossTokens > 0 ? nll / lossTokens : 0,
      "eval/accuracy": n > 0 ? correct / n : 0,
      "eval/answered": n > 0 ? answered / n : 0,
      "eval/correct": correct,
      "eval/samples": n,
    },
    samples,
  };
}
