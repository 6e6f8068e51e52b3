// RL runs with remote rollouts turned on by YAML config keys alone (`rl.rollout.*`, what
// `deno task train --config x.yaml` reads), against fake vLLM servers backed by halo's model
// (remote/fake_vllm_server.ts; no vLLM can run here). runRl gets `remoteRollouts()` as
// cli/train.ts passes it (plus the in-process `fetch` when the test has no network permission).
//
// 1. On-policy LoRA sync (CPU): the fakes load each published PEFT directory, so the sampler is
//    the trainer's policy: the logged sampler–trainer mismatch stays at rounding level
//    (max |Δ log p| ≤ 1e-4 [the fake's sampler stores float32 log-probs]; TIS weights then 1 within
//    1e-4, none capped), every completion names its step's version, and the window keeps two
//    versions on disk.
// 2. Stale servers (the fakes ignore the adapters): the mismatch grows as the trainer moves;
//    TIS caps tokens and changes the loss against the same run without TIS.
// 4. One-step-off generation (rl.rollout.async): step k + 1's first generation batch is requested
//    with version k right after step k's rollouts (before its update), so step k + 1 trains on
//    groups one version stale (counted as rollout/stale_groups; the mismatch then exceeds
//    rounding), and the servers see exactly one extra batch of version k per step but the last;
//    with maxStaleness 0 those groups are dropped and drawn again on-policy.
// 3. WebGPU with `trainer.optimizer: device`: the host copies of the parameters are stale, so the
//    adapter writer must sync them first: each version's file must differ from the previous and
//    the recomputed (float32 WebGPU) old log-probs must equal the CPU sampler's within 1e-3
//    (without the sync, step 2 would sample the initial adapter and |Δ| would be O(1)). Two steps:
//    step 2 is the first to sample a trained adapter.
// 5. The CLI (`main`) with the YAML: two steps, so the servers sample a second, trained version.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../cli/load_config.ts";
import { noGpu } from "../gpu/test_utils.ts";
import { generate, type GenerateOptions, type GenerateResult } from "../model/generate.ts";
import { loadModel } from "../model/load_model.ts";
import type { Qwen3Model } from "../model/model.ts";
import { fakeVllmHandler, remoteRollouts } from "../remote/mod.ts";
import { hasNet, serveFakes } from "../remote/test_utils.ts";
import { main } from "../cli/train.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { QUIET } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const TEST = { sanitizeResources: false, sanitizeOps: false };

/** The small RL run of tests/rl_utils.ts as a YAML file, with remote rollouts. */
interface RunOptions {
  tis: boolean;
  backend?: string;
  /** One-step-off generation with this staleness cap. */
  maxStaleness?: number;
  /** `trainer.steps`; default 3. */
  steps?: number;
  /**
   * `rl.eval.final`; default `false`: no held-out evaluation (`rl.eval.every` is 0), which no
   * runRl case here reads.
   */
  evalFinal?: boolean;
}

function yaml(dir: string, servers: string[], extra: RunOptions): string {
  return `
run: { name: remote_yaml, outDir: ${JSON.stringify(dir)}, seed: 0 }
model: { path: models/arithmetic-tiny }
adapters: { kind: lora, r: 4, alpha: 8 }
data: { digits: 1, maxTerms: 2, trainSize: 200 }
trainer:
  mode: rl
  steps: ${extra.steps ?? 3}
  lr: 1.0e-2
  warmupSteps: 0
  schedule: constant
  optimizer: ${extra.backend === "webgpu" ? "device" : "auto"}
rl:
  data: { evalSize: 20 }
  groupSize: 4
  trainBatchPrompts: 2
  genBatchPrompts: 3
  maxGenBatches: 2
  maxNewTokens: 20
  overlong: { buffer: 4 }
  microBatchSize: 5
  oldLogprobs: recompute
  eval: { prompts: 4, samples: 2, every: 0, final: ${extra.evalFinal ?? false} }
  rollout:
    backend: vllm
    servers: ${JSON.stringify(servers)}
    adapterDir: ${JSON.stringify(join(dir, "adapters"))}
    stalenessWindow: 1
    backoffMs: 5
    tis: { enabled: ${extra.tis}, cap: 2 }
    async: { enabled: ${extra.maxStaleness !== undefined}, maxStaleness: ${
    extra.maxStaleness ?? 1
  } }
checkpoint: { every: 0, keep: 0 }
backend: ${extra.backend ?? "cpu"}
`;
}

type Mode = "on-policy" | "stale";

async function run(dir: string, mode: Mode, options: RunOptions & { cli?: boolean }) {
  const base = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
  const adapted: Qwen3Model[] = [];
  const models: string[] = [];
  const fakes = await serveFakes([0, 1].map(() => {
    const handler = fakeVllmHandler({
      generate: (o: GenerateOptions): Promise<GenerateResult> => generate(base, o),
      model: "arith",
      maxModelLen: 128,
      loadAdapter: async (path) => {
        if (mode === "stale") return (o) => generate(base, o);
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
        models.push((await r.clone().json()).model);
      }
      return handler(r);
    };
  }));
  try {
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, "run.yaml");
    await Deno.writeTextFile(path, yaml(dir, fakes.servers.map((s) => s.url), options));
    if (options.cli) {
      // `deno task train --config run.yaml`, in process (real sockets: needs --allow-net).
      const result = await main(["--config", path, "--overwrite"]);
      const runDir = join(dir, "remote_yaml");
      const lines = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n")
        .map((l) => JSON.parse(l) as Record<string, number>);
      return { result: result as { step: number }, lines, models, versions: [], syncs: -1, dir };
    }
    const config = await loadConfig(path);
    let syncs = 0;
    const factory = remoteRollouts({
      fetch: fakes.sockets ? undefined : fakes.fetch,
      tag: "test",
    });
    const result = await runRl(config, {
      ...QUIET,
      evalAtStart: false,
      overwrite: true,
      rollouts: (ctx) =>
        factory({
          ...ctx,
          syncParams: async () => {
            syncs++;
            await ctx.syncParams();
          },
        }),
    });
    const lines = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
      .split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    const versions = [...Deno.readDirSync(join(dir, "adapters"))].map((e) => e.name).sort();
    return { result, lines, models, versions, syncs, dir };
  } finally {
    await fakes.closeAll();
    base.dispose();
    for (const m of adapted) m.dispose();
  }
}

Deno.test({
  ...TEST,
  name: "runRl() from YAML rl.rollout keys: LoRA versions synced to fake vLLM servers, the " +
    "mismatch metrics at rounding level, the staleness window on disk",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, lines, models, versions, syncs } = await run(dir, "on-policy", { tis: true });
      strictEqual(result.step, 3);
      deepStrictEqual(lines.map((l) => l["rollout/policy_version"]), [1, 2, 3]);
      deepStrictEqual(lines.map((l) => l["rollout/servers_up"]), [2, 2, 2]);
      // Every rollout named a policy version (the base model "arith" only in the preflight probes).
      const served = models.filter((m) => m !== "arith");
      ok(served.length >= 3 * 3, `${served.length} completions`);
      deepStrictEqual([...new Set(served)].sort(), [
        "halo-test-v1",
        "halo-test-v2",
        "halo-test-v3",
      ]);
      deepStrictEqual(versions, ["halo-test-v2", "halo-test-v3"]);
      strictEqual(syncs, 3, "syncParams before each of the 3 adapter writes");
      for (const l of lines) {
        ok(l["rollout/tokens"] > 0);
        ok(l["rollout/max_abs_diff"] <= 1e-4, `max |Δ| ${l["rollout/max_abs_diff"]}`);
        ok(Math.abs(l["rollout/tis_weight_mean"] - 1) <= 1e-4, `${l["rollout/tis_weight_mean"]}`);
        strictEqual(l["rollout/tis_capped_frac"], 0);
        ok(
          Math.abs(l["rollout/ratio_p05"] - 1) <= 1e-4 &&
            Math.abs(l["rollout/ratio_p95"] - 1) <= 1e-4,
        );
      }
      console.log(
        "on-policy max |Δ| per step:",
        lines.map((l) => l["rollout/max_abs_diff"].toExponential(2)).join(" "),
      );
    }),
});

Deno.test({
  ...TEST,
  name: "runRl() from YAML with stale fake servers: the mismatch grows, TIS caps tokens and " +
    "changes the update",
  fn: () =>
    withTempDir(async (dir) => {
      const on = await run(join(dir, "on"), "stale", { tis: true });
      const off = await run(join(dir, "off"), "stale", { tis: false });
      const [l1, l3] = [on.lines[0], on.lines[2]];
      ok(l1["rollout/max_abs_diff"] <= 1e-4, `step 1 max |Δ| ${l1["rollout/max_abs_diff"]}`);
      ok(l3["rollout/max_abs_diff"] > 1e-2, `step 3 max |Δ| ${l3["rollout/max_abs_diff"]}`);
      ok(l3["rollout/kl_k3"] > l1["rollout/kl_k3"]);
      ok(l3["rollout/tis_capped_frac"] > 0, `capped ${l3["rollout/tis_capped_frac"]}`);
      // Same rollouts at step 1 (the servers never change); the weighted loss differs from step 2.
      strictEqual(off.lines[0]["rollout/kl_k3"], l1["rollout/kl_k3"]);
      const pg = (lines: Record<string, number>[], s: number) => lines[s - 1]["loss/pg"];
      ok(Math.abs(pg(on.lines, 3) - pg(off.lines, 3)) > 1e-6, "TIS did not change the loss");
      console.log(
        "stale: step, max |Δ|, kl_k3, ratio p05/p50/p95, capped:\n" +
          on.lines.map((l, i) =>
            `  ${i + 1} ${l["rollout/max_abs_diff"].toExponential(2)} ` +
            `${l["rollout/kl_k3"].toExponential(2)} ${l["rollout/ratio_p05"].toFixed(3)}/` +
            `${l["rollout/ratio_p50"].toFixed(3)}/${l["rollout/ratio_p95"].toFixed(3)} ` +
            `${l["rollout/tis_capped_frac"].toFixed(3)}`
          ).join("\n"),
      );
    }),
});

Deno.test({
  ...TEST,
  ignore: noGpu,
  name: "runRl() from YAML on WebGPU with trainer.optimizer: device syncs the parameters before " +
    "each adapter write",
  fn: () =>
    withTempDir(async (dir) => {
      const { result, lines, syncs } = await run(dir, "on-policy", {
        tis: true,
        backend: "webgpu",
        steps: 2,
      });
      strictEqual(result.step, 2);
      strictEqual(lines.length, 2);
      strictEqual(syncs, 2);
      for (const [i, l] of lines.entries()) {
        ok(
          l["rollout/max_abs_diff"] <= 1e-3,
          `step ${i + 1}: max |Δ| ${l["rollout/max_abs_diff"]}`,
        );
      }
      const file = (v: number) =>
        Deno.readFileSync(join(dir, "adapters", `halo-test-v${v}`, "adapter_model.safetensors"));
      ok(file(1).join() !== file(2).join(), "version 2's adapter equals version 1's");
      console.log(
        "WebGPU device optimizer max |Δ| per step:",
        lines.map((l) => l["rollout/max_abs_diff"].toExponential(2)).join(" "),
      );
    }),
});

Deno.test({
  ...TEST,
  name: "runRl() from YAML with rl.rollout.async: step k + 1's first batch is drawn with " +
    "version k while step k trains; maxStaleness 0 drops it",
  fn: () =>
    withTempDir(async (dir) => {
      const G = 3; // rl.genBatchPrompts
      const a = await run(join(dir, "async"), "on-policy", { tis: true, maxStaleness: 1 });
      strictEqual(a.result.step, 3);
      deepStrictEqual(a.lines.map((l) => l["rollout/stale_groups"]), [0, G, G]);
      deepStrictEqual(a.lines.map((l) => l["rollout/dropped_stale_groups"]), [0, 0, 0]);
      ok(a.lines[0]["rollout/max_abs_diff"] <= 1e-4, "step 1 is on-policy");
      ok(a.lines[1]["rollout/max_abs_diff"] > 1e-4, "step 2 trains on version-1 samples");
      // Requests per version: a step's own batches (sampling/gen_batches, the first one of
      // steps 2 and 3 excepted) plus the next step's prefetched first batch (none after step 3).
      const served = a.models.filter((m) => m !== "arith");
      const count = (v: number) => served.filter((m) => m === `halo-test-v${v}`).length;
      const gen = a.lines.map((l) => l["sampling/gen_batches"]);
      deepStrictEqual([count(1), count(2), count(3)], [
        G * (gen[0] + 1),
        G * (gen[1] - 1 + 1),
        G * (gen[2] - 1),
      ]);
      const b = await run(join(dir, "strict"), "on-policy", { tis: true, maxStaleness: 0 });
      deepStrictEqual(b.lines.map((l) => l["rollout/stale_groups"]), [0, 0, 0]);
      deepStrictEqual(b.lines.map((l) => l["rollout/dropped_stale_groups"]), [0, G, G]);
      for (const l of b.lines) ok(l["rollout/max_abs_diff"] <= 1e-4, "dropped groups were used");
      console.log(
        "async max |Δ| per step:",
        a.lines.map((l) => l["rollout/max_abs_diff"].toExponential(2)).join(" "),
      );
    }),
});

Deno.test({
  ...TEST,
  ignore: !(await hasNet()),
  name: "deno task train --config <yaml with rl.rollout.backend: vllm> samples on the servers " +
    "(cli/train.ts main; needs --allow-net=127.0.0.1, which deno task test grants)",
  fn: () =>
    withTempDir(async (dir) => {
      // The CLI's whole path: it evaluates at step 0 and after the last step, locally.
      const out = await run(dir, "on-policy", { tis: true, cli: true, steps: 2, evalFinal: true });
      const { result, models } = out;
      const lines = out.lines.filter((l) => l.step > 0); // the CLI evaluates at step 0 too
      strictEqual(result.step, 2);
      deepStrictEqual(lines.map((l) => l["rollout/policy_version"]), [1, 2]);
      ok(models.some((m) => /^halo-[0-9a-f]{6}-v2$/.test(m)), JSON.stringify(models.slice(-3)));
      for (const l of lines) ok(l["rollout/max_abs_diff"] <= 1e-4);
      deepStrictEqual(out.lines.filter((l) => "eval/avg@2" in l).map((l) => l.step), [0, 2]);
    }),
});
