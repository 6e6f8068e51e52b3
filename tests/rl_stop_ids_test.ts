// rl.stopTokenIds inside runRl: the rollouts (through runRl's sampleGroups hook, which hands the
// options on to the real CPU sampler) and the held-out evaluation both stop at the listed ids.
// Listing every id but the EOS (<|im_end|>, 54, in the 64-token vocabulary) makes every
// response exactly one token long, which neither path would give otherwise.
import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { sampleGroups, type SampleGroupsOptions } from "../trainer/rl/rollout.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

Deno.test({
  name: "runRl() stops rollouts and the held-out eval at rl.stopTokenIds",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const every = Array.from({ length: 64 }, (_, i) => i).filter((id) => id !== 54);
      const seen: SampleGroupsOptions[] = [];
      const lengths: number[] = [];
      const reasons = new Set<string>();
      const config = await rlConfig(dir, [
        "--trainer.steps=1",
        "--checkpoint.every=0",
        "--rl.maxGenBatches=1",
        `--rl.stopTokenIds=[${every.join(", ")}]`,
      ]);
      const result = await runRl(config, {
        ...QUIET,
        sampleGroups: async (backend, prompts, options) => {
          seen.push(options);
          const sampled = await sampleGroups(backend, prompts, options);
          for (const r of sampled.groups.flat()) {
            lengths.push(r.tokens.length);
            reasons.add(r.stopReason);
          }
          return sampled;
        },
      });
      ok(seen.length > 0);
      // The template's <|im_end|> is the EOS already: the stop ids are the listed ones.
      for (const options of seen) {
        deepStrictEqual([options.eosTokenIds, options.stopTokenIds], [[54], every]);
      }
      deepStrictEqual([new Set(lengths), reasons], [new Set([1]), new Set(["stop"])]);
      const evals = (await Deno.readTextFile(join(result.runDir, "evals.jsonl"))).trim()
        .split("\n").map((l) => JSON.parse(l) as { metrics: Record<string, number> });
      ok(evals.length >= 1);
      for (const e of evals) deepStrictEqual(e.metrics["eval/response_length"], 1);
    }),
});
