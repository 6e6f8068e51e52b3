// The RL trainer on the WebGPU train backend (float32) against the CPU one (float64): a 2-step
// seeded run (DAPO's clipped policy loss + 0.1 Hidden-Align; both steps update, asserted, so the
// second starts from the first's AdamW state) gives the same per-step losses and metrics, and the
// same final parameters, up to float32 rounding; kill + resume on WebGPU repeats an uninterrupted
// WebGPU run byte for byte (metrics and final parameters); LoRA dropout (which the GPU backward
// lacks) fails before any work. No run evaluates (`rl.eval.every` 0, `rl.eval.final` false): the
// held-out evaluation on WebGPU is checked in tests/rl_gpu_memory_test.ts and
// tests/rl_generate_split_test.ts. Skipped without a WebGPU adapter.
//
// The model is the bundled models/arithmetic-tiny (2 layers, hidden 64), not the golden fixture
// tests/fixtures/qwen3-tiny: the fixture has no tokenizer, and the verifier needs decoded text.
//
// Both runs train on the same rollouts: the CPU run samples them (through its train backend, as
// a run does by default) and records them, the WebGPU run replays them (runRl's `sampleGroups`
// hook). Sampling on each backend draws the same random numbers, but float32 vs float64 logits
// (and, from step 2 on, parameters that differ by float32 rounding) can pick another token where
// a draw falls on a probability boundary; one different token makes the rest of the comparison
// meaningless. So the rollouts are fixed and what is compared is the update: forward, losses,
// backward, clipping and AdamW on identical rows.
//
// Two cases: full fine-tuning with the sampler's log-probs as old log-probs (the demo's default;
// the WebGPU run's old log-probs are then the CPU sampler's), and LoRA r=4 with old log-probs
// recomputed by each run's own forward (the first-epoch ratio is then exactly 1 on both); the full
// case twice, with the WebGPU run's AdamW on the device and on the host, both against one CPU run.
//
// Tolerances (observed on Mesa lavapipe in 3-step runs, 2026-12-03, in brackets):
// - loss, optimizer and anchor metrics per step: |gpu − cpu| ≤ 1e-7 + 1e-4·max(|gpu|, |cpu|)
//   [largest relative difference 5.5e-6 (loss/total, step 1) where the value is not ~0; loss/pg
//   at step 1 is ~1e-9 in both, 7e-10 apart];
// - loss/ppo_kl and loss/ratio_max, which measure the sampler/trainer mismatch (rounding-sized
//   in both runs): |gpu − cpu| ≤ 1e-4 [2e-5, ratio_max at step 3];
// - final parameters: ‖p_gpu − p_cpu‖₂ ≤ 1e-3 · Σ_steps ‖update‖₂ of the CPU run [2.6e-5 full,
//   1.6e-5 LoRA]: the runs agree to 0.1% of how far the parameters moved.
//
// Not a case here: the align term at decoder layer 0 (`layer: 0`). It runs on WebGPU, but this
// model's layer-0 anchor states are nearly collinear (align loss 1.9e-6, cos 0.999), so its
// gradient is a small difference of nearly equal float32 vectors: measured against the CPU on
// identical rows, the align-only gradient is off by 3e-4–2.4e-3 per tensor (relative L2; 1.1e-5
// at the final layer, loss 3e-4), and through AdamW the 3-step run's loss/pg differs by 2.5e-4
// (relative) and the parameters by 4.5e-4 of the update norm. The GPU's hidden-layer backward
// itself is checked against finite differences in tests/webgpu_hidden_layer_test.ts.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { noGpu } from "../gpu/test_utils.ts";
import { loadCheckpoint } from "../trainer/checkpoint.ts";
import { runRl, type RunRlResult } from "../trainer/rl/run_rl.ts";
import { type SampledGroups, sampleGroups } from "../trainer/rl/rollout.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const RTOL = 1e-4;
const ATOL = 1e-7;
const PARAM_RATIO = 1e-3;
/**
 * Metrics that measure the sampler/trainer mismatch (old vs new log-probs at the first PPO
 * epoch): rounding-sized in both runs, so compared absolutely.
 */
const MISMATCH_KEYS = ["loss/ppo_kl", "loss/ratio_max"];
const MISMATCH_ATOL = 1e-4;

/** Metrics that depend only on the rollouts: equal bit for bit when the rollouts are. */
const ROLLOUT_KEYS = [
  "reward/mean",
  "reward/accuracy",
  "response/length_mean",
  "sampling/kept_groups",
  "batch/rows",
  "batch/policy_tokens",
];

async function metricLines(runDir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(join(runDir, "metrics.jsonl"));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

async function finalParams(run: RunRlResult): Promise<Record<string, Float32Array>> {
  const { tensors } = await loadCheckpoint(join(run.runDir, `step_00000${run.step}`));
  return Object.fromEntries(
    Object.entries(tensors).map(([name, t]) => [name, t.data as Float32Array]),
  );
}

// optimizer: where the WebGPU run's AdamW runs (GpuAdamw on the device, or the host chain on
// read-back gradients); the CPU run always uses the host chain.
const CASES = [
  { lora: false, oldLogprobs: "sampler", layer: "final", optimizer: "device" },
  { lora: true, oldLogprobs: "recompute", layer: "final", optimizer: "device" },
  { lora: false, oldLogprobs: "sampler", layer: "final", optimizer: "host" },
] as const;
type Case = typeof CASES[number];

/** Steps of each run: both must train (asserted), so step 2 starts from step 1's AdamW state. */
const STEPS = 2;

/**
 * The overrides a case's CPU and WebGPU runs share (the optimizer is only the WebGPU run's). No
 * held-out evaluation (`rl.eval.every` is 0): the comparison reads the updates, and the final
 * parameters are compared directly.
 */
function caseOverrides({ lora, oldLogprobs, layer }: Case): string[] {
  return [
    `--trainer.steps=${STEPS}`,
    "--rl.eval.final=false",
    `--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1, layer: ${layer}}]`,
    `--rl.oldLogprobs=${oldLogprobs}`,
    ...(lora ? ["--adapters.kind=lora", "--adapters.r=4", "--trainer.lr=1e-2"] : []),
  ];
}

/** What the comparison reads of the CPU run: its rollouts, metrics and final parameters. */
interface CpuRun {
  recorded: SampledGroups[];
  step: number;
  lines: Record<string, number>[];
  params: Record<string, Float32Array>;
}

/**
 * The CPU run of a case's overrides, memoised: the two full-fine-tuning cases differ only in the
 * WebGPU run's optimizer, so they compare against one CPU run (the same config, hence the same
 * rollouts, metrics and parameters a second run would give).
 */
const cpuRuns = new Map<string, Promise<CpuRun>>();
function cpuRun(extra: string[]): Promise<CpuRun> {
  const key = JSON.stringify(extra);
  let run = cpuRuns.get(key);
  if (run === undefined) {
    run = withTempDir(async (dir) => {
      const recorded: SampledGroups[] = [];
      const cpu = await runRl(await rlConfig(dir, ["--run.name=cpu", ...extra]), {
        ...QUIET,
        evalAtStart: false,
        sampleGroups: async (backend, prompts, sampling) => {
          const sampled = await sampleGroups(backend, prompts, sampling);
          recorded.push(sampled);
          return sampled;
        },
      });
      return {
        recorded,
        step: cpu.step,
        lines: await metricLines(cpu.runDir),
        params: await finalParams(cpu),
      };
    });
    cpuRuns.set(key, run);
  }
  return run;
}

for (const testCase of CASES) {
  const { lora, oldLogprobs, layer, optimizer } = testCase;
  Deno.test({
    name: `runRl() on WebGPU matches the CPU run to float32 rounding on the same rollouts ` +
      `(${lora ? "LoRA" : "full"}, old log-probs: ${oldLogprobs}, align layer: ${layer}, ` +
      `optimizer on the ${optimizer})`,
    ignore: noGpu,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withTempDir(async (dir) => {
        const extra = caseOverrides(testCase);
        const cpu = await cpuRun(extra);
        const recorded = cpu.recorded;
        let replayed = 0;
        const gpu = await runRl(
          await rlConfig(dir, [
            "--run.name=gpu",
            "--backend=webgpu",
            `--trainer.optimizer=${optimizer}`,
            ...extra,
          ]),
          {
            ...QUIET,
            evalAtStart: false,
            sampleGroups: (_backend, prompts, _sampling) => {
              // A copy: the CPU run's record may serve another case.
              const sampled = structuredClone(recorded[replayed++]);
              ok(sampled !== undefined, "the WebGPU run drew more generation batches");
              // The same prompts in the same order (the prompt order does not depend on the
              // backend).
              deepStrictEqual(
                prompts.map((p) => [...p]),
                sampled.groups.map((g) => g[0].promptIds),
              );
              return Promise.resolve(sampled);
            },
          },
        );
        ok(gpu.backend.startsWith("webgpu"), gpu.backend);
        strictEqual(replayed, recorded.length);
        strictEqual(gpu.step, STEPS);
        strictEqual(cpu.step, STEPS);

        const a = cpu.lines;
        const b = await metricLines(gpu.runDir);
        strictEqual(a.length, STEPS);
        strictEqual(b.length, STEPS);
        let trained = 0;
        a.forEach((line, i) => {
          for (const key of ROLLOUT_KEYS) strictEqual(b[i][key], line[key], key);
          if (line["batch/rows"] > 0) trained++;
          for (const key of Object.keys(line)) {
            if (
              !key.startsWith("loss/") && !key.startsWith("optim/") && !key.startsWith("anchor/")
            ) {
              continue;
            }
            const x = line[key];
            const y = b[i][key];
            // The device optimizer does not measure the update's norm (it never leaves the GPU).
            if (key === "optim/update_norm" && optimizer === "device") continue;
            const tolerance = MISMATCH_KEYS.includes(key)
              ? MISMATCH_ATOL
              : ATOL + RTOL * Math.max(Math.abs(x), Math.abs(y));
            ok(
              Math.abs(x - y) <= tolerance,
              `step ${line.step} ${key}: cpu ${x} vs webgpu ${y}`,
            );
          }
          const keys = Object.keys(line).filter((k) =>
            optimizer === "host" || k !== "optim/update_norm"
          );
          deepStrictEqual(Object.keys(b[i]).sort(), keys.sort());
        });
        // Every step updated: the second from the first's AdamW moments.
        strictEqual(trained, STEPS, `only ${trained} of ${STEPS} steps trained`);
        ok(a.some((line) => line["loss/align"] > 0), "the align term never contributed");

        // Final parameters: the distance between the runs against how far the CPU run moved.
        const pa = cpu.params;
        const pb = await finalParams(gpu);
        deepStrictEqual(Object.keys(pb).sort(), Object.keys(pa).sort());
        let diff2 = 0;
        for (const [name, x] of Object.entries(pa)) {
          const y = pb[name];
          strictEqual(y.length, x.length, name);
          for (let j = 0; j < x.length; j++) diff2 += (x[j] - y[j]) ** 2;
        }
        const moved = a.reduce((s, line) => s + (line["optim/update_norm"] ?? 0), 0);
        ok(moved > 0, "the CPU run did not move the parameters");
        const ratio = Math.sqrt(diff2) / moved;
        ok(ratio <= PARAM_RATIO, `‖p_gpu − p_cpu‖ / Σ‖update‖ = ${ratio} > ${PARAM_RATIO}`);
      }),
  });
}

Deno.test({
  name: "runRl() refuses LoRA dropout on WebGPU before any work, naming the key",
  ignore: noGpu,
  fn: () =>
    withTempDir(async (dir) => {
      const config = await rlConfig(dir, [
        "--backend=webgpu",
        "--adapters.kind=lora",
        "--adapters.dropout=0.1",
      ]);
      await rejects(runRl(config, QUIET), {
        name: "RangeError",
        message: /key "adapters\.dropout" must be 0 on the WebGPU backend.*current value is 0\.1/,
      });
      await rejects(Deno.stat(join(dir, "run")), Deno.errors.NotFound); // nothing written
    }),
});

Deno.test({
  name: "runRl() on WebGPU: kill + resume repeats the metrics byte for byte",
  ignore: noGpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      // The resumed run's parameters and optimizer state come from the checkpoint (uploaded by
      // the backend's setParams); the GPU's float32 math is deterministic on one device.
      // One generation batch a step and one micro-batch (the data position's refill over batches
      // and gradient accumulation do not depend on the backend: tests/rl_run_test.ts resumes
      // them on the CPU, and the cases above accumulate micro-batches on WebGPU).
      // No held-out evaluation: the final parameters are compared instead.
      const options = { ...QUIET, evalAtStart: false };
      const small = [
        "--backend=webgpu",
        "--trainer.steps=2",
        "--rl.maxGenBatches=1",
        "--rl.eval.final=false",
      ];
      const whole = await runRl(
        await rlConfig(dir, ["--run.name=whole", ...small, "--rl.microBatchSize=8"]),
        options,
      );
      const config = await rlConfig(dir, ["--run.name=split", ...small, "--rl.microBatchSize=8"]);
      strictEqual((await runRl(config, { ...options, haltAfterStep: 1 })).halted, true);
      const resumed = await runRl(config, { ...options, resume: true });
      ok(resumed.backend.startsWith("webgpu"), resumed.backend);
      strictEqual(resumed.resumedFrom, join(dir, "split", "step_000001"));
      strictEqual(
        await Deno.readTextFile(join(resumed.runDir, "metrics.jsonl")),
        await Deno.readTextFile(join(whole.runDir, "metrics.jsonl")),
      );
      // Both steps updated: the checkpoint carried AdamW moments, and the resumed step used them
      // (step 2's update, which its metrics line precedes, leaves the same parameters).
      const rows = (await metricLines(whole.runDir)).map((line) => line["batch/rows"]);
      ok(rows.length === 2 && rows.every((n) => n > 0), `rows per step: ${rows}`);
      deepStrictEqual(await finalParams(resumed), await finalParams(whole));
      // Without the evaluation the memory plan fits the rollouts' generation only.
      const generateRows = whole.gpuMemory!.estimate.generateRows;
      ok(generateRows.rollout > 0 && generateRows.eval === 0, JSON.stringify(generateRows));
    }),
});
