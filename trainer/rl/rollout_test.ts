import { deepStrictEqual } from "node:assert/strict";
import type { GenerateOptions } from "../../model/generate.ts";
import { loadModel } from "../../model/load_model.ts";
import { loadTokenizer } from "../../model/tokenizer.ts";
import { createTrainBackend, type TrainBackend } from "../backend.ts";
import { promptIds } from "./prompt_template.ts";
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

Deno.test("sampleGroups() on the CPU ends a response at a stop id that is not an EOS, keeping it", async () => {
  const dir = "models/arithmetic-tiny";
  const tokenizer = await loadTokenizer(dir);
  const model = await loadModel(dir, { backend: "cpu", warn: false });
  try {
    const backend = createTrainBackend(model, { mode: "full" });
    const prompt = promptIds(tokenizer, "What is 12 + 30?", { template: "task" });
    const options = {
      tokenizer,
      groupSize: 4,
      maxNewTokens: 10,
      temperature: 1.5,
      seed: 11,
      firstGroup: 0,
    };
    const free = (await sampleGroups(backend, [prompt], options)).groups[0];
    // The old log-probs are the tempered policy's, log softmax(z / 1.5) (the train forward at
    // T = 1.5, itself checked against a float64 reference in tests/temperature_test.ts), not the
    // raw model's: the sampler keeps them in float32, so 1e-5 absolute.
    for (const r of free) {
      const P = r.promptIds.length;
      const ids = [...r.promptIds, ...r.tokens];
      const want = (await backend.forward({ inputIds: [ids] }, { temperature: 1.5 })).logprobs;
      r.oldLogprobs.forEach((lp, j) => {
        const d = Math.abs(lp - want[P + j - 1]);
        if (!(d <= 1e-5)) throw new Error(`token ${j}: ${lp} vs ${want[P + j - 1]} (T = 1.5)`);
      });
    }
    // A token of the first response that is not its first one, nor an EOS.
    const eos = model.config.eosTokenIds;
    const tokens = free[0].tokens;
    const at = tokens.findIndex((id, i) => i > 0 && !eos.includes(id) && tokens.indexOf(id) === i);
    if (at < 0) throw new Error(`no usable stop id in ${tokens}`);
    const stop = tokens[at];
    const stopped = (await sampleGroups(backend, [prompt], { ...options, stopTokenIds: [stop] }))
      .groups[0];
    let cut = 0;
    free.forEach((r, i) => {
      const s = stopped[i];
      const first = r.tokens.indexOf(stop);
      if (first < 0) {
        deepStrictEqual([s.tokens, s.stopReason], [r.tokens, r.stopReason]);
        return;
      }
      cut++;
      deepStrictEqual(s.tokens, r.tokens.slice(0, first + 1));
      deepStrictEqual(s.stopReason, "stop");
      deepStrictEqual([...s.oldLogprobs], [...r.oldLogprobs.slice(0, first + 1)]);
    });
    deepStrictEqual(stopped[0].tokens.length, at + 1);
    deepStrictEqual(cut >= 1, true);
  } finally {
    model.dispose();
  }
});
