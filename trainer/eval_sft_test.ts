import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { type EvalExample, evaluateSft, scoreEvalCompletion } from "./eval_sft.ts";
import { createTrainBackend, type TrainBackend } from "./backend.ts";
import { initQwen3Weights } from "../model/init.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";

Deno.test("scoreEvalCompletion() scores non-integer answers with the task's own check", () => {
  const cases: [Pick<EvalExample, "answer" | "task">, string, boolean, boolean][] = [
    // Sort: the whole list must match; the integer reading ("2" = "2") would call it right.
    [{ answer: "2, 5, 9", task: "sort" }, "2 then 5\nAnswer: 2, 5, 9<|im_end|>", true, true],
    [{ answer: "2, 5, 9", task: "sort" }, "Answer: 2, 4, 9", false, true],
    // Base conversion: digits exactly (a leading zero is wrong), letters allowed.
    [{ answer: "1011", task: "base" }, "Answer: 1011", true, true],
    [{ answer: "1011", task: "base" }, "Answer: 01011", false, true],
    [{ answer: "1a", task: "base" }, "Answer: 1a\n", true, true],
    [{ answer: "3", task: "count" }, "Answer: 3", true, true],
    // No answer text on the marker's line.
    [{ answer: "3", task: "count" }, "Answer: \n3", false, false],
    [{ answer: "2, 5", task: "sort" }, "2, 5", false, false],
    // Arithmetic (the default): integers compared as numbers.
    [{ answer: "-12" }, "Answer: -012", true, true],
    [{ answer: "7", task: "arithmetic" }, "Answer: 8", false, true],
    [{ answer: "7" }, "Answer: x", false, false],
  ];
  for (const [example, completion, correct, answered] of cases) {
    deepStrictEqual(
      scoreEvalCompletion(example, completion),
      { correct, answered },
      `${JSON.stringify(example)} ${JSON.stringify(completion)}`,
    );
  }
});

Deno.test("evaluateSft() scores a sorting and a base-conversion completion by their tasks", async () => {
  const files = arithmeticTokenizerFiles();
  const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
  const config = {
    vocabSize: 56,
    hiddenSize: 8,
    intermediateSize: 16,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 4,
    rmsNormEps: 1e-6,
    ropeTheta: 1e4,
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: true,
    eosTokenIds: [54],
    bosTokenId: null,
    padTokenId: 52,
  };
  const real = createTrainBackend(new CpuQwen3(config, initQwen3Weights(config, { seed: 0 })), {
    mode: "full",
  });
  const examples: EvalExample[] = [
    {
      prompt: "sort 9 2 5",
      completion: "Answer: 2, 5, 9<|im_end|>",
      answer: "2, 5, 9",
      task: "sort",
    },
    { prompt: "sort 4 1", completion: "Answer: 1, 4<|im_end|>", answer: "1, 4", task: "sort" },
    { prompt: "11 in base 2", completion: "Answer: 1011<|im_end|>", answer: "1011", task: "base" },
    { prompt: "What is 1 + 2?", completion: "Answer: 3<|im_end|>", answer: "3" },
  ];
  // The model's own forward (the NLL), and fixed greedy completions in place of its generation.
  const completions = ["Answer: 2, 5, 9", "Answer: 1, 5", "Answer: 1011", "Answer: 4"];
  let next = 0;
  const backend = {
    kind: real.kind,
    mode: real.mode,
    model: real.model,
    params: real.params,
    forward: (input: Parameters<TrainBackend["forward"]>[0]) => real.forward(input),
    generate: (o: { prompts: number[][] }) =>
      Promise.resolve({
        sequences: o.prompts.map(() => ({ tokens: tokenizer.encode(completions[next++]) })),
      }),
  } as unknown as TrainBackend;
  const { metrics, samples } = await evaluateSft(backend, {
    tokenizer,
    examples,
    maxNewTokens: 8,
    batchSize: 3,
    padId: 52,
    eosTokenIds: [54],
  });
  deepStrictEqual(samples.map((s) => s.completion), completions);
  deepStrictEqual(samples.map((s) => s.correct), [true, false, true, false]);
  deepStrictEqual(samples.map((s) => s.task), ["sort", "sort", "base", "arithmetic"]);
  strictEqual(metrics["eval/correct"], 2);
  strictEqual(metrics["eval/accuracy"], 0.5);
  strictEqual(metrics["eval/answered"], 1);
  strictEqual(metrics["eval/samples"], 4);
});
