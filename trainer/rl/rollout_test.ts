import { deepStrictEqual } from "node:assert/strict";
import type { GenerateOptions } from "../../model/generate.ts";
import { loadTokenizer } from "../../model/tokenizer.ts";
import type { TrainBackend } from "../backend.ts";
import { sampleGroups } from "./rollout.ts";

Deno.test("sampleGroups() hands rl.mergeAdapters to generation only when it is set", async () => {
  const seen: (boolean | undefined)[] = [];
  const backend = {
    generate(options: GenerateOptions) {
      seen.push(options.mergeAdapters);
      const sequences = options.prompts.map(() => ({
        tokens: [],
        logprobs: new Float32Array(),
        modelLogprobs: new Float32Array(),
        stopReason: "length",
        length: 0,
        promptLength: 1,
      }));
      return Promise.resolve({ sequences, stats: {} });
    },
  } as unknown as TrainBackend;
  const tokenizer = await loadTokenizer("models/arithmetic-tiny");
  const base = { tokenizer, groupSize: 2, maxNewTokens: 1, temperature: 1, seed: 0, firstGroup: 0 };
  for (const mergeAdapters of [undefined, false, true]) {
    await sampleGroups(backend, [[1]], {
      ...base,
      ...(mergeAdapters === undefined ? {} : { mergeAdapters }),
    });
  }
  deepStrictEqual(seen, [undefined, false, true]);
});
