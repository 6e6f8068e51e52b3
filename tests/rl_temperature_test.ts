// RL at `rl.temperature` 0.7 through runRl (CPU, the bundled arithmetic model, one step): the
// policy the update differentiates is the one the rollouts were sampled from, π_T =
// softmax(logits / T).
//
// 1. The behaviour policy's own log-probs as old log-probs (`rl.oldLogprobs: sampler`): a
//    `sampleGroups` hook keeps the generator's sampling-distribution log-probs
//    (`GeneratedSequence.logprobs`, log softmax(z / T) at top-p 1, top-k 0), independent of
//    rollout.ts. Before any update the ratio π_θ / π_old must be 1 up to the float32 storage of
//    the sampler's float64 log-probs (|Δ| ≤ 6e-8·|log-prob|): `loss/ratio_max` ≤ 1 + 1e-5
//    (measured 4.3e-7) and |loss/ppo_kl| ≤ 1e-6 (3.8e-10). A training forward at T = 1 gives ratios up to e^|Δ| with Δ the T = 0.7 vs 1 log-prob
//    gap (measured 1e-1 or more here), so this fails on a trainer that ignores the temperature.
// 2. `rl.oldLogprobs: recompute` with TIS on the plain local sampler: the rollouts' sampler
//    log-probs (rollout.ts) and the recomputed ones (the train backend's forward at T) agree,
//    `rollout/max_abs_diff` ≤ 1e-5 (measured 8.4e-7), and the first-epoch ratio is 1 (same
//    forward).
//    With top-p 0.9 (`oldLogprobs: sampler`) the run recomputes the old log-probs at T: the
//    first ratio is exactly 1.
// 3. As 1 on the WebGPU backend (sampler and training step both float32): ratio_max − 1 and
//    |ppo_kl| ≤ 1e-4.
import { ok } from "node:assert/strict";
import { join } from "node:path";
import { runRl } from "../trainer/rl/run_rl.ts";
import type { Rollout, sampleGroups } from "../trainer/rl/rollout.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";
import { noGpu } from "../gpu/test_utils.ts";

/** WebGPU: float32 sampler (fused decode) vs float32 training step. */
const GPU_RATIO_TOL = 1e-4;

// No held-out evaluation (rl.eval.every is 0): the checks read the step's update only.
const OVERRIDES = [
  "--rl.temperature=0.7",
  "--trainer.steps=1",
  "--rl.eval.final=false",
  "--checkpoint.every=0",
  "--rl.dynamicSampling=false",
  "--rl.losses=[{name: clipped_pg}]",
];

/** The behaviour policy's log-probs as old log-probs (see the file's doc). */
const samplerAtT: typeof sampleGroups = async (backend, prompts, options) => {
  const G = options.groupSize;
  const rows = prompts.flatMap((p) => Array.from({ length: G }, () => p));
  const result = await backend.generate({
    prompts: rows,
    maxNewTokens: options.maxNewTokens,
    temperature: options.temperature,
    topP: options.topP ?? 1,
    topK: options.topK ?? 0,
    seed: options.seed,
    eosTokenIds: options.eosTokenIds,
  });
  const decode = { skipSpecialTokens: true };
  const groups: Rollout[][] = prompts.map(() => []);
  let generatedTokens = 0;
  result.sequences.forEach((s, r) => {
    const p = Math.floor(r / G);
    generatedTokens += s.length;
    groups[p].push({
      group: options.firstGroup + p,
      promptIds: [...prompts[p]],
      tokens: [...s.tokens],
      oldLogprobs: Float64Array.from(s.logprobs),
      text: options.tokenizer.decode(s.tokens, decode),
      tokenOffsets: options.tokenizer.tokenOffsets(s.tokens, decode).map(([start]) => start),
      stopReason: s.stopReason,
    });
  });
  return { groups, generatedTokens };
};

async function firstStep(runDir: string): Promise<Record<string, number>> {
  const text = await Deno.readTextFile(join(runDir, "metrics.jsonl"));
  return JSON.parse(text.trim().split("\n")[0]);
}

Deno.test({
  name: "runRl() at rl.temperature 0.7: the first update's ratio to the sampler's log-probs is 1",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const options = { ...QUIET, evalAtStart: false };
      const sampler = await runRl(
        await rlConfig(dir, [...OVERRIDES, "--run.name=sampler"]),
        { ...options, sampleGroups: samplerAtT },
      );
      const m = await firstStep(sampler.runDir);
      // The step trained on policy tokens (a step without any would log ratio_max 0).
      ok(Math.abs(m["loss/ratio_max"] - 1) <= 1e-5, `ratio_max ${m["loss/ratio_max"]}`);
      ok(Math.abs(m["loss/ppo_kl"]) <= 1e-6, `ppo_kl ${m["loss/ppo_kl"]}`);
      console.log(
        `sampler: ratio_max − 1 = ${(m["loss/ratio_max"] - 1).toExponential(2)}, ` +
          `ppo_kl ${m["loss/ppo_kl"].toExponential(2)}`,
      );

      const recompute = await runRl(
        await rlConfig(dir, [
          ...OVERRIDES,
          "--run.name=recompute",
          "--rl.oldLogprobs=recompute",
          "--rl.rollout.tis.enabled=true",
        ]),
        options,
      );
      const r = await firstStep(recompute.runDir);
      ok(r["rollout/max_abs_diff"] <= 1e-5, `sampler vs recomputed ${r["rollout/max_abs_diff"]}`);
      ok(Math.abs(r["loss/ratio_max"] - 1) <= 1e-12, `ratio_max ${r["loss/ratio_max"]}`);
      console.log(
        `recompute: sampler vs recomputed max |Δ| ${
          r["rollout/max_abs_diff"].toExponential(2)
        }, ratio_max − 1 = ${(r["loss/ratio_max"] - 1).toExponential(2)}`,
      );

      // Top-p 0.9 at T = 0.7: the sampler's log-probs are the truncated distribution's, so the
      // run recomputes the old log-probs at T (and says so): the first ratio is exactly 1.
      const notes: string[] = [];
      const truncated = await runRl(
        await rlConfig(dir, [...OVERRIDES, "--run.name=truncated", "--rl.topP=0.9"]),
        { ...options, log: (text: string) => notes.push(text) },
      );
      const t = await firstStep(truncated.runDir);
      ok(t["loss/ratio_max"] === 1, `ratio_max ${t["loss/ratio_max"]}`);
      ok(t["loss/ppo_kl"] === 0, `ppo_kl ${t["loss/ppo_kl"]}`);
      ok(notes.some((n) => n.includes("old log-probs are recomputed")), notes.join("\n"));
    }),
});

Deno.test({
  name: "runRl() at rl.temperature 0.7 on WebGPU: the first update's ratio to the sampler's " +
    "log-probs is 1 up to float32 rounding",
  ignore: noGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const run = await runRl(
        await rlConfig(dir, [...OVERRIDES, "--run.name=gpu", "--backend=webgpu"]),
        { ...QUIET, evalAtStart: false, sampleGroups: samplerAtT },
      );
      const m = await firstStep(run.runDir);
      ok(Math.abs(m["loss/ratio_max"] - 1) <= GPU_RATIO_TOL, `ratio_max ${m["loss/ratio_max"]}`);
      ok(Math.abs(m["loss/ppo_kl"]) <= GPU_RATIO_TOL, `ppo_kl ${m["loss/ppo_kl"]}`);
      console.log(
        `WebGPU: ratio_max − 1 = ${(m["loss/ratio_max"] - 1).toExponential(2)}, ` +
          `ppo_kl ${m["loss/ppo_kl"].toExponential(2)}`,
      );
    }),
});
