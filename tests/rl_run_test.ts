// End-to-end RL runs of the bundled arithmetic model on the CPU backend: the align term at weight 0
// is plain DAPO exactly, kill + --resume repeats an uninterrupted run byte for byte, a resume
// refuses a changed run-defining key, and bad configs fail before any work.
import { deepStrictEqual, notDeepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../trainer/checkpoint.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const DAPO = "--rl.losses=[{name: clipped_pg}]";
const ALIGN = (weight: number) =>
  `--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: ${weight}}]`;

async function metricsLines(runDir: string): Promise<string[]> {
  return (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n");
}

/** Steps of the runs of the first test: a kill after step 1 leaves one step to resume. */
const STEPS = 2;

async function finalParams(runDir: string): Promise<Record<string, number[]>> {
  const { tensors } = await loadCheckpoint(join(runDir, `step_00000${STEPS}`));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.data)]));
}

/** Drops the keys only the align term logs. */
function withoutAlign(line: string): unknown {
  const value = JSON.parse(line);
  for (const key of Object.keys(value)) {
    if (key.startsWith("align/") || key === "loss/align") delete value[key];
  }
  return value;
}

Deno.test({
  name: "runRl() on the arithmetic model: align weight 0 equals DAPO exactly; 0.1 does not; " +
    "kill + resume repeats the metrics byte for byte",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const options = { ...QUIET, evalAtStart: false };
      const steps = `--trainer.steps=${STEPS}`;
      const dapo = await runRl(await rlConfig(dir, ["--run.name=dapo", DAPO, steps]), options);
      const zero = await runRl(await rlConfig(dir, ["--run.name=zero", ALIGN(0), steps]), options);
      const tenth = await runRl(await rlConfig(dir, ["--run.name=tenth", ALIGN(0.1), steps]), {
        ...options,
        plots: true,
      });
      strictEqual(dapo.step, STEPS);
      const dapoLines = await metricsLines(dapo.runDir);
      const zeroLines = await metricsLines(zero.runDir);
      strictEqual(dapoLines.length, STEPS);
      // Both steps updated (the resume below then restores AdamW moments that the step uses).
      for (const l of dapoLines) ok(JSON.parse(l)["batch/rows"] > 0, `no rows: ${l}`);
      // The align term took part (rows > 0), contributed 0, and left everything else bit-equal.
      ok(zeroLines.some((l) => JSON.parse(l)["align/rows"] > 0), "no align rows");
      deepStrictEqual(zeroLines.map(withoutAlign), dapoLines.map(withoutAlign));
      deepStrictEqual(await finalParams(zero.runDir), await finalParams(dapo.runDir));
      // At weight 0.1 the same rows move the parameters: the comparison above can fail.
      notDeepStrictEqual(await finalParams(tenth.runDir), await finalParams(dapo.runDir));
      // `plots: true` draws the curves at the end (the loss terms and the anchor cosines among them).
      for (const chart of ["loss.svg", "anchor_cosine.svg", "reward.svg"]) {
        const svg = await Deno.readTextFile(join(tenth.runDir, "plots", chart));
        ok(svg.startsWith("<svg"), `${chart} is not an SVG`);
      }
      const loss = await Deno.readTextFile(join(tenth.runDir, "plots", "loss.svg"));
      ok(loss.includes("loss/align"), "the loss chart has no loss/align series");

      // Kill after step 1 (a checkpoint every step), resume: the same bytes as straight through.
      const config = await rlConfig(dir, ["--run.name=split", DAPO, steps]);
      const halted = await runRl(config, { ...options, haltAfterStep: 1 });
      strictEqual(halted.halted, true);
      await rejects(Deno.stat(join(halted.runDir, "plots")), Deno.errors.NotFound);
      const resumed = await runRl(config, { ...options, resume: true });
      strictEqual(resumed.resumedFrom, join(dir, "split", "step_000001"));
      strictEqual(
        await Deno.readTextFile(join(resumed.runDir, "metrics.jsonl")),
        await Deno.readTextFile(join(dapo.runDir, "metrics.jsonl")),
      );
      deepStrictEqual(await finalParams(resumed.runDir), await finalParams(dapo.runDir));
    }),
});

Deno.test("runRl() refuses an align layer the model does not have before any work", async () => {
  await withTempDir(async (dir) => {
    const config = await rlConfig(dir, [
      "--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 1}]",
    ]);
    await rejects(runRl(config, QUIET), {
      name: "RangeError",
      message:
        /key "rl\.losses\[1\]\.layer" must be "final" or a decoder layer in \[0, 0\] \(the model has 2 layers/,
    });
    await rejects(Deno.stat(join(dir, "run")), Deno.errors.NotFound); // nothing written
    // The task suite is SFT-only: refused, not silently replaced by the arithmetic task (also
    // at config load; runRl checks a config built in code too).
    const arithmetic = await rlConfig(dir);
    const suite = { ...arithmetic, data: { ...arithmetic.data, task: "suite" as const } };
    await rejects(runRl(suite, QUIET), {
      name: "RangeError",
      message:
        /^Cannot run RL: key "data\.task" must be "arithmetic" with "trainer\.mode" "rl".*"suite"$/,
    });
    await rejects(Deno.stat(join(dir, "run")), Deno.errors.NotFound);
    // Layer 0 exists.
    const ok0 = await rlConfig(dir, [
      "--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 0}]",
      "--trainer.steps=1",
      "--rl.trainBatchPrompts=1",
      "--rl.genBatchPrompts=1",
      "--rl.maxGenBatches=1",
    ]);
    const result = await runRl(ok0, { ...QUIET, evalAtStart: false });
    strictEqual(result.step, 1);
  });
});

Deno.test("runRl() warns of unread keys: rl.alignKeepAllCorrect without an align term, SFT-only eval.every", async () => {
  await withTempDir(async (dir) => {
    const config = await rlConfig(dir, [
      DAPO,
      "--rl.alignKeepAllCorrect=true",
      "--eval.every=5",
      "--trainer.steps=1",
      "--rl.trainBatchPrompts=1",
      "--rl.genBatchPrompts=1",
      "--rl.maxGenBatches=1",
    ]);
    const lines: string[] = [];
    const result = await runRl(config, {
      ...QUIET,
      evalAtStart: false,
      log: (text) => lines.push(text),
    });
    const warning = result.warnings.filter((w) => w.includes("rl.alignKeepAllCorrect"));
    strictEqual(warning.length, 1, `${result.warnings}`);
    ok(/"hidden_align" term/.test(warning[0]), warning[0]);
    ok(lines.includes(`warning: ${warning[0]}`), "the warning was not logged");
    // RL evaluates by rl.eval.*: the SFT cadence is named as unread.
    const sft = result.warnings.filter((w) => w.includes('"eval.every"'));
    deepStrictEqual(sft, [
      `key "eval.every" is set but not read with "trainer.mode" "rl" (RL's held-out evaluation ` +
      `is set by "rl.eval.*")`,
    ]);
  });
});

Deno.test({
  name: "runRl() resumes only with the keys that define the run: rl.* must match, " +
    "rl.eval.every may change (with a warning); a fresh run does not replace a run directory",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const base = [
        DAPO,
        "--trainer.steps=2",
        "--rl.genBatchPrompts=2",
        "--rl.maxGenBatches=1",
      ];
      const options = { ...QUIET, evalAtStart: false };
      const first = await runRl(await rlConfig(dir, base), { ...options, haltAfterStep: 1 });
      strictEqual(first.halted, true);
      const nothingWritten = async () => strictEqual((await metricsLines(first.runDir)).length, 1);
      // A run-defining key: refused before any work, naming the key and both values.
      await rejects(
        runRl(await rlConfig(dir, [...base, "--rl.groupSize=6"]), { ...options, resume: true }),
        {
          name: "RangeError",
          message:
            /Cannot resume from ".*step_000001": key "rl\.groupSize" must match the checkpoint's config \(4\): current value is 6/,
        },
      );
      await nothingWritten();
      // The same directory without --resume: refused, naming the latest checkpoint.
      await rejects(runRl(await rlConfig(dir, base), options), {
        name: "RangeError",
        message:
          /run" already exists \(latest checkpoint ".*step_000001"\): resume it with --resume/,
      });
      await nothingWritten();
      // The evaluation cadence may change.
      const resumed = await runRl(await rlConfig(dir, [...base, "--rl.eval.every=5"]), {
        ...options,
        resume: true,
      });
      strictEqual(resumed.step, 2);
      deepStrictEqual(resumed.warnings.filter((w) => w.includes("changed key")), [
        "resuming with a changed key (the run no longer repeats an uninterrupted one): " +
        "rl.eval.every: 0 -> 5",
      ]);
    }),
});

Deno.test({
  name: "runRl() with the cos-pairwise align term trains on the correct rows' pairs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const r = await runRl(
        await rlConfig(dir, [
          "--run.name=pairwise",
          "--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1, type: cos-pairwise}]",
        ]),
        { ...QUIET, evalAtStart: false },
      );
      const lines = (await metricsLines(r.runDir)).map((l) => JSON.parse(l));
      // It used to take no row at all (it looked for centroids, which cos-pairwise has none of).
      ok(lines.some((l) => l["align/rows"] > 0), "no align rows with cos-pairwise");
      ok(lines.some((l) => l["loss/align"] > 0), "the pairwise term never contributed");
    }),
});

Deno.test({
  name: "runRl() resumed keeps the run's first evaluation: the same start, end and paired gain",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const args = [DAPO, "--trainer.steps=2", "--rl.eval.every=1"];
      const straight = await runRl(await rlConfig(dir, ["--run.name=straight", ...args]), QUIET);
      ok(straight.heldOutGain !== null && "eval/avg@2" in straight.startMetrics);
      const config = await rlConfig(dir, ["--run.name=split", ...args]);
      strictEqual((await runRl(config, { ...QUIET, haltAfterStep: 1 })).halted, true);
      const resumed = await runRl(config, { ...QUIET, resume: true });
      // Evaluations at steps 0, 1 and 2: the resumed process ran only the last one itself.
      deepStrictEqual(resumed.startMetrics, straight.startMetrics);
      deepStrictEqual(resumed.heldOutGain, straight.heldOutGain);
      strictEqual(resumed.metrics["eval/avg@2"], straight.metrics["eval/avg@2"]);
      strictEqual(
        await Deno.readTextFile(join(resumed.runDir, "evals.jsonl")),
        await Deno.readTextFile(join(straight.runDir, "evals.jsonl")),
      );
      // Resuming the finished run: no step left, the same summary.
      const again = await runRl(config, { ...QUIET, resume: true });
      strictEqual(again.step, 2);
      deepStrictEqual(again.startMetrics, straight.startMetrics);
      deepStrictEqual(again.heldOutGain, straight.heldOutGain);
      strictEqual(again.metrics["eval/avg@2"], straight.metrics["eval/avg@2"]);
    }),
});

Deno.test({
  name: "runRl() with rl.eval.every 0 evaluates after the last step; with rl.eval.final false " +
    "and an rl.eval.every that no step reaches, not at all (no step-0 evaluation, no eval/* " +
    "metrics, an empty evals.jsonl)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      // One step each; RL_OVERRIDES set rl.eval.every=0. The run without evaluation (every 2 > its
      // 1 step, so no step evaluates; every 0 is the same) keeps runRl's step-0 evaluation on: it
      // must skip it all the same.
      const args = [DAPO, "--trainer.steps=1"];
      const evals = async (runDir: string) =>
        (await Deno.readTextFile(join(runDir, "evals.jsonl"))).split("\n").filter((l) => l !== "")
          .map((l) => JSON.parse(l).step);
      const hasEval = (metrics: Record<string, number>) =>
        Object.keys(metrics).some((k) => k.startsWith("eval/"));

      const last = await runRl(await rlConfig(dir, ["--run.name=last", ...args]), {
        ...QUIET,
        evalAtStart: false,
      });
      deepStrictEqual(await evals(last.runDir), [1]);
      const lastLines = (await metricsLines(last.runDir)).map((l) => JSON.parse(l));
      deepStrictEqual(lastLines.map((l) => [l.step, "eval/avg@2" in l]), [[1, true]]);
      ok(hasEval(last.metrics));

      const off = await runRl(
        await rlConfig(dir, [
          "--run.name=off",
          ...args,
          "--rl.eval.every=2",
          "--rl.eval.final=false",
        ]),
        QUIET,
      );
      strictEqual(off.step, 1);
      deepStrictEqual(await evals(off.runDir), []);
      const offLines = (await metricsLines(off.runDir)).map((l) => JSON.parse(l));
      deepStrictEqual(offLines.map((l) => l.step), [1]);
      strictEqual(hasEval(offLines[0]), false);
      strictEqual(hasEval(off.metrics), false);
      deepStrictEqual(off.startMetrics, {});
      strictEqual(off.heldOutGain, null);
      strictEqual(off.seconds.eval, 0);
      // The same step otherwise: evaluation draws no random numbers of training.
      const train = (l: Record<string, number>) =>
        Object.fromEntries(Object.entries(l).filter(([k]) => !k.startsWith("eval/")));
      deepStrictEqual(offLines[0], train(lastLines[0]));

      // On the cadence only: step 2 of 3 evaluates, and the result does not show that evaluation
      // as the last step's.
      const cadence = await runRl(
        await rlConfig(dir, [
          "--run.name=cadence",
          DAPO,
          "--trainer.steps=3",
          "--rl.eval.every=2",
          "--rl.eval.final=false",
        ]),
        { ...QUIET, evalAtStart: false },
      );
      deepStrictEqual(await evals(cadence.runDir), [2]);
      ok(hasEval(cadence.startMetrics));
      strictEqual(hasEval(cadence.metrics), false);
    }),
});
