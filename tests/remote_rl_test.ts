// A 3-step RL run (the small config of tests/rl_utils.ts, old log-probs recomputed) whose
// rollouts come through a RolloutPool from two fake vLLM servers backed by halo's model
// (remote/fake_vllm_server.ts). One server is killed after step 1; the run goes on with the other.
//
// Case 1, on-policy: the fakes sample with the train backend itself (what a perfect adapter sync
// gives), so halo's recomputed old log-probs (the train backend's forward on the same tokens,
// which `--rl.oldLogprobs=recompute` runs) must equal the servers' sampler log-probs at every step:
// |Δ| ≤ 1e-4 [observed ≤ 5.2e-7, 2026-12-03: the sampler stores float32].
// Case 2, stale: the fakes sample with a separate copy of the starting model (no sync), so the
// mismatch is rounding-sized at step 1 and grows once the trainer has moved: step 3's largest
// |Δ| must exceed 1e-4 and be larger than step 1's, and the k3 KL estimate must grow.
// [Observed (lr 1e-3, full fine-tuning): step 1 max |Δ| 5e-7, k3 KL 4e-15; steps 2–3 max |Δ|
// 3.9–6.2, k3 KL 0.11–0.16, ratio p01..p99 0.03..2.7.]
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../model/load_model.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import {
  fakeVllmHandler,
  type MismatchMetrics,
  remoteSampleGroups,
  RolloutPool,
} from "../remote/mod.ts";
import { serveFakes } from "../remote/test_utils.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const ON_POLICY_ATOL = 1e-4;

async function remoteRun(dir: string, stale: boolean) {
  const fixed = stale
    ? await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false })
    : null;
  let trainer: TrainBackend | null = null;
  const sample = (o: GenerateOptions): Promise<GenerateResult> =>
    fixed ? generate(fixed, o) : trainer!.generate(o);
  const posts = [0, 0];
  const fakes = await serveFakes([0, 1].map((i) => {
    const handler = fakeVllmHandler({ generate: sample, model: "arith", maxModelLen: 128 });
    return (r: Request) => {
      if (r.method === "POST") posts[i]++;
      return handler(r);
    };
  }));
  const batches: { mismatch: MismatchMetrics; groups: number; step: number }[] = [];
  let step = 1;
  let lastSeed: number | null = null;
  try {
    const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
      engine: "vllm",
      vocabSize: 64,
      fetch: fakes.fetch,
      backoffMs: 5,
      downMs: 60_000,
    });
    const remote = remoteSampleGroups(pool, {
      compare: true,
      onBatch: (b) =>
        batches.push({ mismatch: b.mismatch!, groups: b.sampled.groups.length, step }),
    });
    const config = await rlConfig(dir, ["--run.name=remote", "--rl.oldLogprobs=recompute"]);
    const result = await runRl(config, {
      ...QUIET,
      evalAtStart: false,
      sampleGroups: async (backend, prompts, sampling) => {
        trainer = backend;
        // A new step starts with generation batch 0 (a new seed family); kill server 1 after
        // step 1's batches.
        if (lastSeed !== null && batches.length > 0 && sampling.firstGroup === 0) {
          step++;
          if (step === 2) await fakes.servers[1].close();
        }
        lastSeed = sampling.seed;
        return await remote(backend, prompts, sampling);
      },
    });
    return { result, batches, posts, states: pool.states() };
  } finally {
    await fakes.closeAll();
    fixed?.dispose();
  }
}

const TEST = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...TEST,
  name: "runRl() with rollouts from fake vLLM servers: recomputed old log-probs equal the " +
    "sampler's, and a server killed after step 1 does not stop the run",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, batches, posts, states } = await remoteRun(dir, false);
      strictEqual(result.step, 3);
      const lines = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
        .split("\n");
      strictEqual(lines.length, 3);
      ok(batches.length >= 3, `${batches.length} generation batches`);
      deepStrictEqual([...new Set(batches.map((b) => b.step))], [1, 2, 3]);
      // Every group came from a server, one request per group.
      strictEqual(posts[0] + posts[1], batches.reduce((n, b) => n + b.groups, 0));
      ok(posts[1] > 0, "server 1 served step 1");
      deepStrictEqual(states.map((s) => s.up), [true, false]);
      for (const [i, b] of batches.entries()) {
        const m = b.mismatch;
        ok(m["mismatch/tokens"] > 0);
        ok(
          m["mismatch/max_abs_diff"] <= ON_POLICY_ATOL,
          `batch ${i} (step ${b.step}): max |Δ| ${m["mismatch/max_abs_diff"]}`,
        );
        ok(Math.abs(m["mismatch/kl_k1"]) <= ON_POLICY_ATOL, `kl_k1 ${m["mismatch/kl_k1"]}`);
        ok(Math.abs(m["mismatch/ratio_p99"] - 1) <= ON_POLICY_ATOL);
      }
      console.log(
        "on-policy max |Δ| per batch:",
        batches.map((b) => b.mismatch["mismatch/max_abs_diff"].toExponential(2)).join(" "),
      );
    }),
});

Deno.test({
  ...TEST,
  name: "runRl() with rollouts from stale fake vLLM servers: the mismatch metrics grow as the " +
    "trainer moves away from the servers' weights",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, batches } = await remoteRun(dir, true);
      strictEqual(result.step, 3);
      const worst = (step: number, key: keyof MismatchMetrics) =>
        Math.max(...batches.filter((b) => b.step === step).map((b) => b.mismatch[key]));
      const first = worst(1, "mismatch/max_abs_diff");
      const last = worst(3, "mismatch/max_abs_diff");
      ok(first <= ON_POLICY_ATOL, `step 1 max |Δ| ${first}`);
      ok(last > ON_POLICY_ATOL && last > first, `step 3 max |Δ| ${last} vs step 1 ${first}`);
      ok(worst(3, "mismatch/kl_k3") > worst(1, "mismatch/kl_k3"));
      console.log(
        "stale: per batch (step, max |Δ|, kl_k3, ratio p01..p99):\n" +
          batches.map((b) =>
            `  ${b.step} ${b.mismatch["mismatch/max_abs_diff"].toExponential(2)} ` +
            `${b.mismatch["mismatch/kl_k3"].toExponential(2)} ` +
            `${b.mismatch["mismatch/ratio_p01"].toFixed(4)}..${
              b.mismatch["mismatch/ratio_p99"].toFixed(4)
            }`
          ).join("\n"),
      );
    }),
});
