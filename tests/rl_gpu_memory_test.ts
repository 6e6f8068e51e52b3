// GPU memory of a WebGPU RL run (rl.releaseWorkspaces, rl.gpuMemoryBudget): a 1-step LoRA run of
// the arithmetic model with a held-out evaluation, its phases releasing each other's workspaces,
// peaks at the resident bytes plus the largest phase's workspace (the start-up estimate, whose
// items trainer/rl/gpu_memory_estimate_test.ts checks against allocated bytes), where the same run
// keeping every workspace (the behaviour before the key) peaks at about their sum; the same
// rollouts and losses either way. A budget that generation's unsplit calls exceed makes the run
// generate in calls of fewer prompts, with the same rollouts and metrics as without a budget; a
// budget under the smallest calls' estimate refuses the run before any GPU buffer is made (before
// the weights are uploaded), naming the keys.
// Skipped without a WebGPU adapter.
//
// The runs evaluate once, after their step (no evaluation at step 0: the same code again). The
// released/kept test runs micro-batches of 5 rows, so training is the largest phase and keeping
// any phase's workspace into another breaks the released bound (asserted); the split test runs
// micro-batches of one row, so generation sets the peak.
//
// Slack: 64 KiB over the estimate, for the kernels' scratch buffers and the objective's and
// AdamW's small buffers, which the estimate leaves out. The estimate is sized for the largest
// shapes (every response maxNewTokens long), so the measured peak is below it by the tokens the
// rollouts did not use.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { noGpu } from "../gpu/test_utils.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { sampleGroups } from "../trainer/rl/rollout.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const SLACK = 64 * 1024;
const OVERRIDES = [
  "--backend=webgpu",
  "--adapters.kind=lora",
  "--adapters.r=4",
  "--trainer.steps=1",
  "--checkpoint.every=0",
  "--rl.oldLogprobs=recompute",
];
// Micro-batches of one row: generation (rollouts of 3 prompts × 4, held-out calls of 4 × 2) sets
// the peak.
const ONE_ROW = "--rl.microBatchSize=1";

/** A run of OVERRIDES whose rollouts are recorded, with its backend.generate calls counted. */
async function countedRun(dir: string, name: string, more: string[], lines: string[] = []) {
  const rollouts: number[][][] = [];
  let batches = 0;
  let calls = 0;
  const result = await runRl(
    await rlConfig(dir, [...OVERRIDES, `--run.name=${name}`, ...more]),
    {
      progress: null,
      evalAtStart: false,
      log: (text) => lines.push(text),
      sampleGroups: async (backend, prompts, options) => {
        batches++;
        const counted = new Proxy(backend, {
          get(target, key) {
            if (key === "generate") {
              return (o: Parameters<TrainBackend["generate"]>[0]) => {
                calls++;
                return target.generate(o);
              };
            }
            const value = Reflect.get(target, key);
            return typeof value === "function" ? value.bind(target) : value;
          },
        });
        const sampled = await sampleGroups(counted, prompts, options);
        rollouts.push(...sampled.groups.map((g) => g.map((r) => r.tokens)));
        return sampled;
      },
    },
  );
  const metrics = (await Deno.readTextFile(join(dir, name, "metrics.jsonl"))).trim()
    .split("\n").map((l) => JSON.parse(l));
  const evals = (await Deno.readTextFile(join(dir, name, "evals.jsonl"))).trim()
    .split("\n").map((l) => JSON.parse(l));
  return { result, rollouts, batches, calls, metrics, evals, lines };
}

Deno.test({
  name: "runRl() on WebGPU: released workspaces peak at the largest phase, kept ones at the sum",
  ignore: noGpu,
  async fn() {
    await withTempDir(async (dir) => {
      const whole = await countedRun(dir, "released", []);
      const released = whole.result;
      const lines = whole.lines;
      const kept = await runRl(
        await rlConfig(dir, [...OVERRIDES, "--run.name=kept", "--rl.releaseWorkspaces=false"]),
        { ...QUIET, evalAtStart: false },
      );
      const r = released.gpuMemory!;
      const k = kept.gpuMemory!;
      const e = r.estimate;
      const phase = Math.max(e.kvCache + e.generation + e.mergedCopy, e.forward, e.training);
      const sum = e.kvCache + e.generation + e.mergedCopy + e.forward + e.training;
      const bound = e.resident + phase + SLACK;
      // Training is the largest phase and each other phase's workspace exceeds the slack, so a
      // workspace kept into another phase (a generation one into training, training's into the
      // held-out evaluation, the forward's into training) breaks the bound.
      strictEqual(phase, e.training, `training is not the largest phase: ${JSON.stringify(e)}`);
      ok(
        Math.min(e.kvCache + e.generation + e.mergedCopy, e.forward, e.training) > SLACK,
        `a phase's workspace is within the slack: ${JSON.stringify(e)}`,
      );
      const info = `estimate ${JSON.stringify(e)}; peaks released ${r.peakBytes}, kept ` +
        `${k.peakBytes}`;
      // Resident at the start: weights, adapters and their gradients (the train backend makes
      // them; AdamW's moments come with the optimizer), as estimated.
      strictEqual(r.residentBytes, e.weights + 2 * e.adapters, info);
      ok(r.peakBytes <= bound, `released: peak ${r.peakBytes} > ${bound}: ${info}`);
      // The old behaviour exceeds that bound: the phases' workspaces add up.
      ok(k.peakBytes > bound, `kept: peak ${k.peakBytes} <= ${bound}: ${info}`);
      ok(k.peakBytes <= e.resident + sum + SLACK, `kept: peak over the sum: ${info}`);
      // Releasing changes where buffers live, not what the run computes.
      const a = whole.metrics;
      const b = (await Deno.readTextFile(join(dir, "kept", "metrics.jsonl"))).trim().split("\n")
        .map((l) => JSON.parse(l));
      strictEqual(a.length, b.length);
      a.forEach((line, i) => {
        for (const key of ["reward/mean", "loss/total", "batch/rows", "eval/avg@2"]) {
          strictEqual(line[key], b[i][key], `${key} at line ${i}`);
        }
      });
      // The start-up table.
      ok(lines.some((l) => l.startsWith("GPU memory estimate")), lines.join("\n"));
      ok(lines.some((l) => /^ {2}peak .*workspaces released between phases/.test(l)));
    });
  },
});

Deno.test({
  name: "runRl() on WebGPU splits generation into smaller calls to fit rl.gpuMemoryBudget, with " +
    "the same rollouts and metrics",
  ignore: noGpu,
  async fn() {
    await withTempDir(async (dir) => {
      const whole = await countedRun(dir, "whole", [ONE_ROW]);
      const e = whole.result.gpuMemory!.estimate;
      const generation = e.kvCache + e.generation + e.mergedCopy;
      ok(
        generation > Math.max(e.forward, e.training),
        `generation is not the peak: ${JSON.stringify(e)}`,
      );
      deepStrictEqual(e.generateRows, { rollout: 12, eval: 8 });
      strictEqual(whole.calls, whole.batches, "unbudgeted: one call per generation batch");
      // Half the generation phase: calls of fewer prompts for the rollouts and the evaluation.
      const budget = e.resident + generation / 2;
      const lines: string[] = [];
      const split = await countedRun(
        dir,
        "split",
        [ONE_ROW, `--rl.gpuMemoryBudget=${budget / 1e9}`],
        lines,
      );
      const g = split.result.gpuMemory!;
      const { rollout, eval: held } = g.generatePromptsPerCall;
      const info = `${JSON.stringify(g.generatePromptsPerCall)}; ${lines.join("\n")}`;
      ok(rollout !== undefined && rollout < 3 && held !== undefined && held < 4, info);
      ok(g.estimate.peak <= budget, info);
      ok(g.peakBytes <= g.estimate.peak + SLACK, `measured ${g.peakBytes}: ${info}`);
      ok(g.peakBytes < whole.result.gpuMemory!.peakBytes, "the split run peaks lower");
      ok(
        lines.some((l) =>
          l.startsWith(`generation split into calls of ${rollout} prompt`) &&
          l.includes("for the rollouts") && l.includes("for the held-out evaluation") &&
          l.endsWith("to fit the budget")
        ),
        info,
      );
      // Each generation batch of 3 prompts went out in calls of `rollout` prompts.
      strictEqual(split.batches, whole.batches);
      strictEqual(split.calls, split.batches * Math.ceil(3 / rollout), info);
      // Generation does not depend on the split: the same rollouts, metrics and evaluations.
      deepStrictEqual(split.rollouts, whole.rollouts);
      ok(new Set(whole.rollouts.flat().map((t) => t.join())).size > 1, "rollouts all alike");
      strictEqual(split.metrics.length, whole.metrics.length);
      split.metrics.forEach((line, i) => {
        for (const key of ["reward/mean", "loss/total", "batch/rows", "eval/avg@2"]) {
          strictEqual(line[key], whole.metrics[i][key], `${key} at line ${i}`);
        }
      });
      deepStrictEqual(
        split.evals.map((x) => [x.metrics, x.perPrompt]),
        whole.evals.map((x) => [x.metrics, x.perPrompt]),
      );
    });
  },
});

Deno.test({
  name: "runRl() on WebGPU refuses a run whose estimate exceeds rl.gpuMemoryBudget before any " +
    "weight buffer is made, naming keys",
  ignore: noGpu,
  async fn() {
    // Every GPU buffer made in the process is counted (the run makes its own device).
    const proto = GPUDevice.prototype;
    const createBuffer = proto.createBuffer;
    let buffers = 0;
    proto.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor) {
      buffers++;
      return createBuffer.call(this, descriptor);
    };
    try {
      await withTempDir(async (dir) => {
        await rejects(
          runRl(await rlConfig(dir, [...OVERRIDES, "--rl.gpuMemoryBudget=0.0001"]), QUIET),
          (error: unknown) => {
            const text = (error as Error).message;
            ok(/estimated GPU memory peak .* exceeds the budget 0\.00 GB/.test(text), text);
            ok(/key "rl\.gpuMemoryBudget"/.test(text), text);
            ok(/lower .*"rl\./.test(text), text);
            return true;
          },
        );
        // Refused before the weights were uploaded: no buffer at all.
        strictEqual(buffers, 0, "buffers were made before the refusal");
        // Nothing ran: no metrics were written.
        ok(!(await exists(join(dir, "rl-test", "metrics.jsonl"))));
        // The count sees the buffers of a run that goes on to upload (the same keys, no budget):
        // it fails at once on a run hook, after the model and backend are built.
        await rejects(
          runRl(await rlConfig(dir, [...OVERRIDES, "--run.name=counted"]), {
            ...QUIET,
            evalAtStart: false,
            sampleGroups: () => Promise.reject(new Error("stop here")),
          }),
          /stop here/,
        );
        ok(buffers > 0, "the count missed the upload's buffers");
      });
    } finally {
      proto.createBuffer = createBuffer;
    }
  },
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
