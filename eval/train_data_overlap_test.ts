// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { join } from "node:path";
import { findTrainDataOverlap } from "./train_data_overlap.ts";
import { evalDataPath } from "./eval_data.ts";

/** A run folder with checkpoints at the given steps whose config trains on `path`. */
async function fakeRun(
  root: string,
  steps: number[],
  config: (step: number) => unknown,
): Promise<string> {
  const run = join(root, "run");
  for (const step of steps) {
    const dir = join(run, `step_${String(step).padStart(6, "0")}`);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      join(dir, "meta.json"),
      JSON.stringify({ step, config: config(step) }),
    );
  }
  await Deno.mkdir(join(run, "final"), { recursive: true });
  return run;
}

const rlOn = (path: string, extra: Record<string, unknown> = {}) => ({
  trainer: { mode: "rl" },
  rl: { data: { source: "jsonl", path, evalPath: "", evalSize: 100, ...extra } },
});

Deno.test("findTrainDataOverlap() finds a run that drew its RL prompts from the bundled GSM8K test set", async () => {
  const root = await Deno.makeTempDir();
  try {
    // As data/math/README.md suggests: rl.data.path relative to the repository root.
    const run = await fakeRun(root, [2, 10], () => rlOn("data/math/gsm8k/test.jsonl"));
    const gsm8k = evalDataPath("gsm8k")!;
    for (
      const options of [{ model: "m", adapter: join(run, "final") }, { model: join(run, "final") }]
    ) {
      const hit = await findTrainDataOverlap(gsm8k, options);
      assert.equal(hit?.metaPath, join(run, "step_000010", "meta.json"), "the latest checkpoint");
      assert.equal(hit?.trainPath, "data/math/gsm8k/test.jsonl");
      assert.match(
        hit!.message,
        /^Warning: the evaluation data ".*gsm8k\/test\.jsonl" is the file/,
      );
      assert.match(
        hit!.message,
        /rl\.data\.path "data\/math\/gsm8k\/test\.jsonl" in .*step_000010/,
      );
      assert.match(hit!.message, /last rl\.data\.evalSize \(100\)/);
    }
    // A checkpoint folder itself.
    const step = join(run, "step_000002");
    assert.equal(
      (await findTrainDataOverlap(gsm8k, { model: step }))?.metaPath,
      join(step, "meta.json"),
    );
    // Another data set: nothing.
    assert.equal(await findTrainDataOverlap(evalDataPath("math500")!, { model: step }), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("findTrainDataOverlap() is quiet for SFT runs, other files and folders without checkpoints", async () => {
  const root = await Deno.makeTempDir();
  try {
    const data = join(root, "mine.jsonl");
    await Deno.writeTextFile(data, "");
    const sft = await fakeRun(root, [1], () => ({ ...rlOn(data), trainer: { mode: "sft" } }));
    assert.equal(await findTrainDataOverlap(data, { model: join(sft, "final") }), null);
    assert.equal(await findTrainDataOverlap(data, { model: "models/arithmetic-tiny" }), null);
    await Deno.writeTextFile(
      join(sft, "step_000001", "meta.json"),
      JSON.stringify({ config: rlOn(data, { evalPath: "other.jsonl" }) }),
    );
    const hit = await findTrainDataOverlap(data, { model: "x", adapter: join(sft, "final") });
    assert.match(hit!.message, /: all its rows were training prompts/);
    await Deno.writeTextFile(join(sft, "step_000001", "meta.json"), "{ torn");
    assert.equal(await findTrainDataOverlap(data, { model: join(sft, "final") }), null);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
