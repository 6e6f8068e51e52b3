import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadModel } from "../model/load_model.ts";
import { generate } from "../model/generate.ts";
import { createTokenizer } from "../model/tokenizer.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTrainBackend } from "../trainer/backend.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
import { remoteSampleGroups } from "./remote_sample_groups.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { RolloutClient } from "./rollout_client.ts";
import { nextLogitsOf, serveFakes } from "./test_utils.ts";

const files = arithmeticTokenizerFiles();
const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
const prompts = ["What is 2 + 2?", "What is 7 - 3?"].map((q) =>
  promptIds(tokenizer, q, { template: "task" })
);

Deno.test({
  name: "remoteSampleGroups() makes one n = G request per prompt and maps choices to rollouts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const model = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
    const backend = createTrainBackend(model, { mode: "full" });
    const bodies: Record<string, unknown>[] = [];
    const modes = ["raw_logprobs", "processed_logprobs"] as const;
    const fakes = await serveFakes(modes.map((logprobsMode) => {
      const handler = fakeVllmHandler({
        generate: (o) => generate(model, o),
        model: "arith",
        maxModelLen: 128,
        logprobsMode,
        nextLogits: nextLogitsOf(model),
      });
      return async (r: Request) => {
        if (r.method === "POST" && logprobsMode === "raw_logprobs") {
          bodies.push(await r.clone().json());
        }
        return handler(r);
      };
    }));
    try {
      const connect = (url: string) =>
        RolloutPool.connect([url], {
          engine: "vllm",
          vocabSize: 64,
          fetch: fakes.fetch,
          probePromptIds: prompts[0],
          eosTokenIds: [54],
        });
      const raw = await connect(fakes.servers[0].url);
      bodies.length = 0; // drop the probe's requests
      const sampling = {
        tokenizer,
        groupSize: 3,
        maxNewTokens: 10,
        temperature: 0.7,
        seed: 5,
        firstGroup: 4,
      };
      const batches: number[] = [];
      const sample = remoteSampleGroups(raw, {
        policyVersion: () => 2,
        compare: true,
        onBatch: (b) => batches.push(b.mismatch!["mismatch/max_abs_diff"]),
      });
      // At temperature 0.7 raw server log-probs (the untempered model's) are refused: halo's old
      // log-probs are those of softmax(logits / 0.7).
      await rejects(
        sample(backend, prompts, sampling),
        /reports raw log-probs .* temperature 0\.7 .* --logprobs-mode processed_logprobs/,
      );
      bodies.length = 0;
      const { groups, generatedTokens } = await sample(backend, prompts, {
        ...sampling,
        temperature: 1,
      });
      deepStrictEqual(bodies.map((b) => [b.n, b.prompt]), [[3, prompts[0]], [3, prompts[1]]]);
      ok(bodies[0].seed !== bodies[1].seed, "each prompt gets its own seed");
      deepStrictEqual(groups.map((g) => g.map((r) => r.group)), [[4, 4, 4], [5, 5, 5]]);
      let tokens = 0;
      for (const [p, group] of groups.entries()) {
        for (const r of group) {
          deepStrictEqual(r.promptIds, prompts[p]);
          strictEqual(r.oldLogprobs.length, r.tokens.length);
          strictEqual(r.text, tokenizer.decode(r.tokens, { skipSpecialTokens: true }));
          strictEqual(r.stopReason, r.tokens.at(-1) === 54 ? "eos" : "length");
          tokens += r.tokens.length;
        }
      }
      strictEqual(generatedTokens, tokens);
      // Raw server log-probs equal the train backend's forward at temperature 1.
      ok(batches[0] <= 1e-5, `max |Δ| ${batches[0]}`);

      // A processed-log-probs server is refused when the sampling truncates; at temperature 0.7
      // without truncation its log-probs are softmax(logits / 0.7)'s, as the train backend's
      // forward at 0.7 (the comparison runs at the sampling temperature).
      const processed = await connect(fakes.servers[1].url);
      strictEqual(processed.preflights().get(fakes.servers[1].url)?.logprobs, "processed");
      await rejects(
        remoteSampleGroups(processed)(backend, prompts, { ...sampling, topP: 0.9 }),
        /reports processed log-probs .* truncates \(top-p 0\.9, top-k 0\)/,
      );
      const tempered = await remoteSampleGroups(processed, {
        compare: true,
        onBatch: (b) => {
          batches.push(b.mismatch!["mismatch/max_abs_diff"]);
        },
      })(backend, prompts, sampling);
      strictEqual(tempered.groups.length, 2);
      ok(batches[1] <= 1e-5, `max |Δ| at temperature 0.7: ${batches[1]}`);
      // Against the untempered forward they differ: the comparison's temperature counts.
      const rows = tempered.groups.flat().map((r) => ({
        promptIds: r.promptIds,
        tokens: r.tokens,
        oldLogprobs: r.oldLogprobs,
        advantage: 0,
        policy: true,
        anchor: -1,
        group: r.group,
        correct: false,
      }));
      const raw1 = await forwardPass(backend, rows, {
        padId: 0,
        microBatchSize: 8,
        layer: null,
        logprobs: true,
      });
      let gap = 0;
      rows.forEach((r, i) => {
        for (let t = 0; t < r.tokens.length; t++) {
          gap = Math.max(gap, Math.abs(r.oldLogprobs[t] - raw1.logprobs![i][t]));
        }
      });
      ok(gap > 1e-3, `processed log-probs at 0.7 vs the untempered forward: ${gap}`);

      // Without a preflight the kind is unknown: at temperature 0.7 the run goes on with one
      // warning per server (the raw server here would give the untempered model's log-probs);
      // at temperature 1 there is nothing to warn about.
      const url = fakes.servers[0].url;
      const blind = new RolloutPool([
        new RolloutClient(url, {
          engine: "vllm",
          vocabSize: 64,
          model: "arith",
          fetch: fakes.fetch,
        }),
      ]);
      const warnings: string[] = [];
      const sampleBlind = remoteSampleGroups(blind, { onWarning: (m) => warnings.push(m) });
      await sampleBlind(backend, prompts, { ...sampling, temperature: 1 });
      strictEqual(warnings.length, 0);
      await sampleBlind(backend, prompts, sampling);
      await sampleBlind(backend, prompts, sampling);
      strictEqual(warnings.length, 1, JSON.stringify(warnings));
      ok(warnings[0].includes(`"${url}"`) && /no preflight.*temperature 0\.7/.test(warnings[0]));
    } finally {
      await fakes.closeAll();
      backend.dispose();
      model.dispose();
    }
  },
});
