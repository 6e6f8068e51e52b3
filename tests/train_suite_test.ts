// SFT on the multi-task suite (`data.task: suite`): the config keys are validated, and a run
// trains on every task and reports the held-out accuracy per task and overall.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runSft } from "../trainer/sft.ts";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";

Deno.test("loadConfig() checks the data.suite keys, naming them", async () => {
  await assert.rejects(
    tinyConfig("out", ["--data.task=suite", "--data.suite.tasks=sort,sort"]),
    /key "data\.suite\.tasks".*must not repeat an item: "sort"/,
  );
  await assert.rejects(
    tinyConfig("out", ["--data.task=suite", "--data.suite.tasks=sort,parse"]),
    /key "data\.suite\.tasks\[1\]"/,
  );
  await assert.rejects(
    tinyConfig("out", ["--data.task=suite", "--data.suite.level=5"]),
    /key "data\.suite\.level"/,
  );
  const config = await tinyConfig("out", ["--data.task=suite", "--data.suite.tasks=count,base"]);
  assert.deepEqual(config.data.suite.tasks, ["count", "base"]);
});

Deno.test("runSft() on the suite reports held-out accuracy per task and overall", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(dir, [
      "--data.task=suite",
      "--data.suite.tasks=sort,count,arithmetic",
      "--data.suite.level=1",
      "--model.maxPositions=128",
      "--data.trainSize=6",
      "--data.evalSize=3",
      "--eval.samples=2",
      "--trainer.steps=3",
      "--eval.every=0",
    ]);
    const result = await runSft(config, QUIET);
    const m = result.metrics;
    for (const task of ["sort", "count", "arithmetic"]) {
      assert.equal(m[`eval/samples/${task}`], 2, task);
      assert.equal(m[`eval/accuracy/${task}`], m[`eval/correct/${task}`] / 2, task);
    }
    assert.equal(m["eval/samples"], 6);
    assert.equal(
      m["eval/correct"],
      m["eval/correct/sort"] + m["eval/correct/count"] + m["eval/correct/arithmetic"],
    );
    assert.equal(m["eval/accuracy/base"], undefined);
    // The training stream holds all three tasks (18 problems, 3 steps of 4 sequences).
    const lines = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim().split(
      "\n",
    );
    assert.equal(lines.length, 4); // step 0 evaluation and 3 steps
  });
});
