// A NaN/Inf loss stops the run at that step, names it, and keeps the last good checkpoint.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runSft } from "../trainer/sft.ts";
import { latestCheckpoint, loadCheckpoint } from "../trainer/checkpoint.ts";
import { NonFiniteLossError } from "../trainer/train_loop.ts";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";

function checkpointNames(runDir: string): string[] {
  return [...Deno.readDirSync(runDir)].filter((e) => e.isDirectory).map((e) => e.name).sort();
}

Deno.test("runSft() stops at a poisoned batch and keeps the last good checkpoint", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(dir, ["--trainer.steps=6", "--checkpoint.every=2"]);
    const runDir = join(dir, config.run.name);
    await rejects(runSft(config, { ...QUIET, faults: { nanLossAtStep: 5 } }), (e: unknown) => {
      ok(e instanceof NonFiniteLossError);
      strictEqual(e.step, 5);
      strictEqual(e.lastCheckpoint, join(runDir, "step_000004"));
      ok(
        e.message.startsWith(
          'Training stopped at step 5: "loss" must be finite: current value is NaN',
        ),
      );
      return true;
    });
    deepStrictEqual(checkpointNames(runDir), ["step_000002", "step_000004"]);
    const lines = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n");
    strictEqual(JSON.parse(lines.at(-1)!).step, 4);
    // The kept checkpoint resumes (the fault was in the data of step 5, which runs clean now).
    const resumed = await runSft(config, { ...QUIET, resume: true });
    strictEqual(resumed.step, 6);
  });
});

Deno.test("runSft() stops with a huge learning rate before a non-finite update lands", async () => {
  await withTempDir(async (dir) => {
    // lr 1e38 (a float32 step of ±1e38 per weight): the weights overflow float32 within a few
    // steps, and the loss, gradient norm or update norm stops being finite.
    const config = await tinyConfig(dir, [
      "--trainer.steps=20",
      "--trainer.lr=1e38",
      "--trainer.warmupSteps=0",
      "--trainer.schedule=constant",
      "--checkpoint.every=1",
      "--eval.every=0",
    ]);
    const runDir = join(dir, config.run.name);
    let stoppedAt = -1;
    await rejects(runSft(config, { ...QUIET, evalAtStart: false }), (e: unknown) => {
      ok(e instanceof NonFiniteLossError);
      stoppedAt = e.step;
      ok(/must be finite: current value is (NaN|-?Infinity)/.test(e.message), e.message);
      return true;
    });
    ok(stoppedAt >= 2 && stoppedAt <= 20, `stopped at step ${stoppedAt}`);
    // Every saved checkpoint is finite, and the newest is the step before the stop.
    const latest = await latestCheckpoint(runDir);
    strictEqual(latest, join(runDir, `step_${String(stoppedAt - 1).padStart(6, "0")}`));
    const { tensors } = await loadCheckpoint(latest!);
    for (const [name, t] of Object.entries(tensors)) {
      ok(t.data.every((x) => Number.isFinite(x)), `${name} is finite`);
    }
  });
});
