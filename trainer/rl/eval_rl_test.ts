import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import type { GenerateOptions } from "../../model/generate.ts";
import { loadModel } from "../../model/load_model.ts";
import { loadTokenizer, type Tokenizer } from "../../model/tokenizer.ts";
import { createTrainBackend, type TrainBackend } from "../backend.ts";
import { evaluateRlPrompts } from "./eval_rl.ts";
import { promptIds } from "./prompt_template.ts";

Deno.test("evaluateRlPrompts() stops samples at the run's EOS and stop ids", async () => {
  const dir = "models/arithmetic-tiny"; // vocabulary of 64 ids, EOS 54
  const tokenizer = await loadTokenizer(dir);
  const model = await loadModel(dir, { backend: "cpu", warn: false });
  try {
    const backend = createTrainBackend(model, { mode: "full" });
    const prompts = [{
      ids: promptIds(tokenizer, "What is 12 + 30?", { template: "task" }),
      gold: "42",
    }];
    const options = {
      tokenizer,
      samples: 3,
      temperature: 1.5,
      maxNewTokens: 6,
      seed: 3,
      budgetMs: 0,
    };
    const length = async (extra: { eosTokenIds?: number[]; stopTokenIds?: number[] }) =>
      (await evaluateRlPrompts(backend, prompts, { ...options, ...extra })).metrics[
        "eval/response_length"
      ];
    const free = await length({});
    ok(free > 1, `free samples of ${free} tokens`);
    // Every id but the EOS stops: each sample is one token long.
    const all = Array.from({ length: 64 }, (_, i) => i);
    deepStrictEqual(await length({ stopTokenIds: all.filter((id) => id !== 54) }), 1);
    deepStrictEqual(await length({ eosTokenIds: all }), 1);
  } finally {
    model.dispose();
  }
});

/**
 * A backend whose sample of row r (over all the evaluation's rows) is the one token r, and a
 * tokenizer that decodes token r to `texts[r]`: the evaluation of written responses.
 */
function writtenResponses(texts: readonly string[]): {
  backend: TrainBackend;
  tokenizer: Tokenizer;
} {
  const backend = {
    kind: "cpu",
    generate: (options: GenerateOptions) =>
      Promise.resolve({
        sequences: options.prompts.map((prompt, i) => {
          const row = (options.firstSequence ?? 0) + i;
          return {
            tokens: [row],
            logprobs: new Float32Array(1),
            modelLogprobs: new Float32Array(1),
            stopReason: "eos",
            length: 1,
            promptLength: prompt.length,
          };
        }),
      }),
  } as unknown as TrainBackend;
  const tokenizer = { decode: (ids: readonly number[]) => texts[ids[0]] } as unknown as Tokenizer;
  return { backend, tokenizer };
}

const written = { samples: 2, temperature: 1, maxNewTokens: 4, seed: 0, budgetMs: 0 };

Deno.test("evaluateRlPrompts() leaves a prompt with an unusable gold out of its accuracies and counts it", async () => {
  const { backend, tokenizer } = writtenResponses([
    "Answer: 7", // prompt 0, gold 7
    "Answer: 8",
    "Answer: 1", // prompt 1, an unusable gold
    "no answer",
    "Answer: 3", // prompt 2, gold 3
    "Answer: 3",
  ]);
  const prompts = [
    { ids: [1], gold: "7" },
    { ids: [2], gold: "\\frac{1}{" },
    { ids: [3], gold: "3" },
  ];
  const { metrics, perPrompt } = await evaluateRlPrompts(backend, prompts, {
    tokenizer,
    ...written,
  });
  // The same accuracies as the evaluation of the usable prompts alone.
  const alone = writtenResponses(["Answer: 7", "Answer: 8", "Answer: 3", "Answer: 3"]);
  const usable = await evaluateRlPrompts(alone.backend, [prompts[0], prompts[2]], {
    ...written,
    tokenizer: alone.tokenizer,
  });
  deepStrictEqual(usable.perPrompt, [0.5, 1]);
  for (const key of ["eval/avg@2", "eval/pass@2", "eval/accuracy"]) {
    deepStrictEqual(metrics[key], usable.metrics[key], key);
  }
  deepStrictEqual(usable.metrics["eval/unusable_gold"], 0);
  deepStrictEqual(perPrompt, [0.5, null, 1]);
  deepStrictEqual(metrics, {
    "eval/avg@2": 0.75,
    "eval/pass@2": 1,
    "eval/accuracy": 0.75,
    "eval/answered": 1, // of the usable prompts (the verifier stops at an unusable gold)
    "eval/response_length": 1,
    "eval/prompts": 3,
    "eval/unusable_gold": 1,
  });
});

Deno.test("evaluateRlPrompts() refuses prompts none of whose golds is usable", async () => {
  const { backend, tokenizer } = writtenResponses(["Answer: 1", "Answer: 2"]);
  await rejects(
    evaluateRlPrompts(backend, [{ ids: [1], gold: "" }], { tokenizer, ...written }),
    (error: unknown) => {
      ok(error instanceof RangeError);
      ok(/none of the 1 has a gold usable/.test(error.message), error.message);
      return true;
    },
  );
});

Deno.test("evaluateRlPrompts() reads the problem's nouns after the answer unless problemNouns is false", async () => {
  const { backend, tokenizer } = writtenResponses(["Answer: 12 bananas", "Answer: 12"]);
  const prompts = [{
    ids: [1],
    gold: "12",
    question: "Tom has 5 bananas and buys 7 more. How many bananas does he have?",
  }];
  const accuracy = async (problemNouns?: boolean) =>
    (await evaluateRlPrompts(backend, prompts, {
      tokenizer,
      ...written,
      ...(problemNouns === undefined ? {} : { problemNouns }),
    })).metrics["eval/accuracy"];
  deepStrictEqual(await accuracy(), 1);
  deepStrictEqual(await accuracy(true), 1);
  deepStrictEqual(await accuracy(false), 0.5);
});
