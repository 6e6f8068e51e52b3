import { deepStrictEqual, ok } from "node:assert/strict";
import { loadModel } from "../../model/load_model.ts";
import { loadTokenizer } from "../../model/tokenizer.ts";
import { createTrainBackend } from "../backend.ts";
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
