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
// Case 3, LoRA with adapter sync: at the start of each step the trainer's LoRA is written as a
// PEFT directory, published as halo-v<step> (AdapterSync) and loaded by the fakes (halo's model
// with that adapter); rollouts name that version, and the recomputed old log-probs must equal the
// sampler's at every step: |Δ| ≤ 1e-4 [observed ≤ 6.5e-7]. The killed server is skipped by the
// later publishes.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../model/load_model.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import {
  AdapterSync,
  fakeVllmHandler,
  type MismatchMetrics,
  peftWriter,
  remoteSampleGroups,
  type RemoteSampleGroupsOptions,
  RolloutPool,
} from "../remote/mod.ts";
import type { Qwen3Model } from "../model/model.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { serveFakes } from "../remote/test_utils.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const ON_POLICY_ATOL = 1e-4;

type Mode = "on-policy" | "stale" | "lora-sync";

async function remoteRun(dir: string, mode: Mode) {
  const fixed = mode === "on-policy"
    ? null
    : await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
  const adapted: Qwen3Model[] = [];
  let trainer: TrainBackend | null = null;
  const sample = (o: GenerateOptions): Promise<GenerateResult> =>
    fixed ? generate(fixed, o) : trainer!.generate(o);
  const posts = [0, 0];
  const models: string[] = [];
  const fakes = await serveFakes([0, 1].map((i) => {
    const handler = fakeVllmHandler({
      generate: sample,
      model: "arith",
      maxModelLen: 128,
      loadAdapter: async (path) => {
        const m = await loadModel("models/arithmetic-tiny", {
          backend: "cpu",
          warn: false,
          adapter: path,
        });
        adapted.push(m);
        return (o) => generate(m, o);
      },
    });
    return async (r: Request) => {
      if (r.method === "POST" && new URL(r.url).pathname === "/v1/completions") {
        posts[i]++;
        models.push((await r.clone().json()).model);
      }
      return handler(r);
    };
  }));
  const batches: { mismatch: MismatchMetrics; groups: number; step: number; version: number }[] =
    [];
  let step = 1;
  let calls = 0;
  const warnings: string[] = [];
  const lora = mode === "lora-sync"
    ? ["--adapters.kind=lora", "--adapters.r=4", "--trainer.lr=1e-2"]
    : [];
  try {
    const config = await rlConfig(dir, [
      "--run.name=remote",
      "--rl.oldLogprobs=recompute",
      ...lora,
    ]);
    const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
      engine: "vllm",
      vocabSize: 64,
      fetch: fakes.fetch,
      backoffMs: 5,
      downMs: 60_000,
    });
    let sync: RemoteSampleGroupsOptions["sync"];
    let adapters: AdapterSync | null = null;
    if (mode === "lora-sync") {
      const a = config.adapters;
      const scratch = createLora(
        loraConfig({
          r: a.r,
          loraAlpha: a.alpha,
          targetModules: [...a.targets],
          rankPattern: { ...a.rankPattern },
          alphaPattern: { ...a.alphaPattern },
          useRslora: a.rslora,
        }),
        fixed!.config,
        { seed: 0 },
      );
      // Both servers take adapters; server 1 is killed before step 2's publish, which skips it
      // (and the pool sends it nothing for the versions it lacks).
      adapters = new AdapterSync(pool.clients, {
        dir: join(dir, "adapters"),
        keep: 2,
        backoffMs: 5, // the killed server's load is tried `attempts` times
      });
      const write = peftWriter(scratch);
      sync = { adapters, write, onPublish: (r) => warnings.push(...r.warnings) };
    }
    const remote = remoteSampleGroups(pool, {
      compare: true,
      sync,
      onBatch: (b) =>
        batches.push({
          mismatch: b.mismatch!,
          groups: b.sampled.groups.length,
          step,
          version: b.policyVersion,
        }),
    });
    const result = await runRl(config, {
      ...QUIET,
      evalAtStart: false,
      sampleGroups: async (backend, prompts, sampling) => {
        trainer = backend;
        // runRl numbers groups from 0 each step: a call with firstGroup 0 after the first
        // starts a new step. Server 1 is killed when step 2 starts.
        if (calls++ > 0 && sampling.firstGroup === 0) {
          step++;
          if (step === 2) await fakes.servers[1].close();
        }
        return await remote(backend, prompts, sampling);
      },
    });
    return {
      result,
      batches,
      posts,
      models,
      states: pool.states(),
      loaded: adapters?.loaded,
      warnings,
    };
  } finally {
    await fakes.closeAll();
    fixed?.dispose();
    for (const m of adapted) m.dispose();
  }
}

const TEST = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...TEST,
  name: "runRl() with rollouts from fake vLLM servers: recomputed old log-probs equal the " +
    "sampler's, and a server killed after step 1 does not stop the run",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, batches, posts, states } = await remoteRun(dir, "on-policy");
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
      const { result, batches } = await remoteRun(dir, "stale");
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

Deno.test({
  ...TEST,
  name: "runRl() with LoRA and adapter sync: each step publishes a new adapter version, the " +
    "server samples from it, and recomputed old log-probs equal the sampler's",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, batches, models, loaded, posts, warnings } = await remoteRun(
        dir,
        "lora-sync",
      );
      strictEqual(result.step, 3);
      deepStrictEqual([...new Set(batches.map((b) => [b.step, b.version].join()))], [
        "1,1",
        "2,2",
        "3,3",
      ]);
      // Every completion named the version of its step; both servers served step 1.
      ok(models.every((m) => /^halo-v[123]$/.test(m)), JSON.stringify(models));
      ok(posts[0] > 0 && posts[1] > 0, JSON.stringify(posts));
      deepStrictEqual(loaded, ["halo-v2", "halo-v3"]);
      // The adapter moved: each version's weights differ from the previous one's.
      const files = [1, 2, 3].map((v) =>
        Deno.readFileSync(join(dir, "adapters", `halo-v${v}`, "adapter_model.safetensors"))
      );
      ok(files[0].join() !== files[1].join() && files[1].join() !== files[2].join());
      // Step 2 and 3's publishes skipped the killed server.
      strictEqual(warnings.filter((w) => w.startsWith("skipped: ")).length, 2);
      for (const [i, b] of batches.entries()) {
        ok(
          b.mismatch["mismatch/max_abs_diff"] <= ON_POLICY_ATOL,
          `batch ${i} (step ${b.step}): max |Δ| ${b.mismatch["mismatch/max_abs_diff"]}`,
        );
      }
      console.log(
        "LoRA sync max |Δ| per batch:",
        batches.map((b) => b.mismatch["mismatch/max_abs_diff"].toExponential(2)).join(" "),
      );
    }),
});
