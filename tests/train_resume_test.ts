// A run stopped and resumed must write exactly the metrics, checkpoints and final model of a run
// that was not stopped; checkpoints round-trip the parameters bit-exactly.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { runSft } from "../trainer/sft.ts";
import { loadCheckpoint } from "../trainer/checkpoint.ts";
import { loadModel } from "../model/load_model.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { modelParams } from "../trainer/params.ts";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";
import { noGpu } from "../gpu/test_utils.ts";
import { resolveTrainConfig } from "../cli/train.ts";
import { exists } from "../internal/exists.ts";

async function bytes(path: string): Promise<Uint8Array> {
  return await Deno.readFile(path);
}

/** Runs a config straight through, and again halted after `haltAt` and resumed; compares. */
async function checkResume(dir: string, overrides: string[], haltAt: number): Promise<void> {
  const straight = await tinyConfig(dir, ["--run.name=straight", ...overrides]);
  const split = await tinyConfig(dir, ["--run.name=split", ...overrides]);
  await runSft(straight, QUIET);
  const halted = await runSft(split, { ...QUIET, haltAfterStep: haltAt });
  strictEqual(halted.halted, true);
  strictEqual(halted.step, haltAt);
  const resumed = await runSft(split, { ...QUIET, resume: true });
  ok(resumed.resumedFrom !== null && resumed.resumedFrom.endsWith(`step_00000${haltAt - 1}`));
  strictEqual(resumed.step, straight.trainer.steps);

  const a = await Deno.readTextFile(join(dir, "straight", "metrics.jsonl"));
  const b = await Deno.readTextFile(join(dir, "split", "metrics.jsonl"));
  strictEqual(b, a); // every line, byte for byte (loss, lr, grad norm, eval loss, accuracy, ...)
  strictEqual(a.trim().split("\n").length, straight.trainer.steps + 1); // + the step-0 eval

  const last = `step_${String(straight.trainer.steps).padStart(6, "0")}`;
  const ca = await loadCheckpoint(join(dir, "straight", last));
  const cb = await loadCheckpoint(join(dir, "split", last));
  deepStrictEqual(cb.tensors, ca.tensors);
  deepStrictEqual(cb.optimizer, ca.optimizer);
  const weightsFile = ca.meta.weights === "model"
    ? "model.safetensors"
    : "adapter_model.safetensors";
  deepStrictEqual(
    await bytes(join(dir, "split", "final", weightsFile)),
    await bytes(join(dir, "straight", "final", weightsFile)),
  );
}

Deno.test("runSft() resumed after a stop repeats an uninterrupted full fine-tune exactly", async () => {
  // Halt after step 5: the checkpoint is at 4 (every 2), so step 5 is redone after the resume and
  // its first metrics line must be dropped; evaluation at 3 and 6 (every 3).
  await withTempDir((dir) => checkResume(dir, [], 5));
});

Deno.test("runSft() resume is exact for LoRA with dropout and gradient accumulation", async () => {
  await withTempDir((dir) =>
    checkResume(dir, [
      "--adapters.kind=lora",
      "--adapters.r=2",
      "--adapters.dropout=0.2",
      "--trainer.microBatches=2",
    ], 3)
  );
});

Deno.test({
  name: "runSft() on WebGPU with AdamW on the GPU resumes exactly (LoRA, 2 micro-batches)",
  ignore: noGpu,
  // 4 steps, halted after 3: the resume restores the GPU moments of the step-2 checkpoint, redoes
  // step 3 (its first metrics line dropped, its eval at 3 repeated) and takes step 4 from its own
  // update, which the final checkpoint and export compare (each lavapipe step costs about a second).
  fn: () =>
    withTempDir((dir) =>
      checkResume(dir, [
        "--backend=webgpu",
        "--trainer.optimizer=device",
        "--adapters.kind=lora",
        "--adapters.r=2",
        "--trainer.microBatches=2",
        "--trainer.steps=4",
      ], 3)
    ),
});

Deno.test("runSft() checkpoints hold the parameters bit-exactly", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(dir, ["--trainer.steps=3"]);
    const result = await runSft(config, QUIET);
    // The final export and the last checkpoint come from the same parameters.
    const checkpoint = await loadCheckpoint(join(result.runDir, "step_000003"));
    const model = await loadModel(join(result.runDir, "final"), { backend: "cpu", warn: false });
    const exported = modelParams((model as CpuQwen3).weights, model.config).tree;
    deepStrictEqual(Object.keys(checkpoint.tensors).sort(), Object.keys(exported).sort());
    for (const [name, tensor] of Object.entries(checkpoint.tensors)) {
      deepStrictEqual(tensor.data, exported[name], name);
    }
    // The checkpoint's weights file is itself a loadable HF weights file of the right shapes.
    strictEqual(checkpoint.tensors["model.layers.0.mlp.down_proj.weight"].shape.join("x"), "16x32");
    strictEqual(checkpoint.meta.dataPosition, 3 * config.trainer.batchSize);
    strictEqual(checkpoint.meta.step, 3);
  });
});

Deno.test("runSft() refuses to resume with a different run-defining key, and to overwrite", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(dir, ["--trainer.steps=2"]);
    await runSft(config, { ...QUIET, evalAtStart: false });
    const other = await tinyConfig(dir, ["--trainer.steps=2", "--data.seed=7"]);
    await rejects(runSft(other, { ...QUIET, resume: true }), {
      name: "RangeError",
      message:
        /Cannot resume from ".*step_000002": key "data.seed" must match the checkpoint's config \(0\): current value is 7/,
    });
    await rejects(runSft(config, QUIET), {
      name: "RangeError",
      message:
        /Cannot start run "run": ".*run" already exists \(latest checkpoint ".*step_000002"\): resume it with --resume, delete it with --overwrite/,
    });
    // Changing a key that does not define the run is allowed, with a warning; so is
    // model.submitEveryLayers, although "model." keys are fixed (it changes no result).
    // trainer.steps may change too: with one warm-up step, the two steps taken keep their learning
    // rates under the longer cosine (its decay starts at the full rate either way), so it gets no
    // warning (the cases that warn: trainer/_run_setup_test.ts).
    const longer = await tinyConfig(dir, ["--trainer.steps=3", "--model.submitEveryLayers=2"]);
    const result = await runSft(longer, { ...QUIET, resume: true });
    strictEqual(result.step, 3);
    ok(!result.warnings.some((w) => w.includes("trainer.steps")), result.warnings.join("\n"));
    ok(result.warnings.some((w) => w.includes("model.submitEveryLayers: null -> 2")));
  });
});

Deno.test("runSft() gives the same run with 1 or 2 CPU workers, and resumes across counts", async () => {
  await withTempDir(async (dir) => {
    const one = await tinyConfig(dir, ["--run.name=one", "--trainer.microBatches=2"]);
    const two = await tinyConfig(dir, ["--run.name=two", "--trainer.microBatches=2"]);
    await runSft(one, { ...QUIET, workers: 1 });
    await runSft(two, { ...QUIET, workers: 2, haltAfterStep: 3 });
    await runSft(two, { ...QUIET, workers: 1, resume: true });
    strictEqual(
      await Deno.readTextFile(join(dir, "two", "metrics.jsonl")),
      await Deno.readTextFile(join(dir, "one", "metrics.jsonl")),
    );
  });
});

Deno.test("a copied run resumed by its directory continues in the copy, never in the original", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(join(dir, "a"), ["--trainer.steps=4"]);
    const original = await runSft(config, { ...QUIET, evalAtStart: false });
    const originalDir = original.runDir;
    const copyDir = join(dir, "b", "run");
    await Deno.mkdir(join(dir, "b"));
    await copyTree(originalDir, copyDir);
    await Deno.remove(join(copyDir, "step_000004"), { recursive: true });
    await Deno.remove(join(copyDir, "final"), { recursive: true });
    const before = await Deno.readTextFile(join(originalDir, "metrics.jsonl"));
    const beforeStat = await Deno.stat(join(originalDir, "step_000004", "meta.json"));

    // `deno task train --resume DIR` without --config: the saved config names the original.
    const resumed = await resolveTrainConfig({
      overrides: [],
      resume: copyDir,
      overwrite: false,
      help: false,
    });
    strictEqual(join(resumed.run.outDir, resumed.run.name), copyDir);
    const result = await runSft(resumed, { ...QUIET, resume: copyDir });
    strictEqual(result.runDir, copyDir);
    strictEqual(result.step, 4);
    // Where the run is written does not change its results: no warning about it.
    deepStrictEqual(result.warnings, []);
    ok(await exists(join(copyDir, "step_000004", "meta.json")));
    ok(await exists(join(copyDir, "final")));
    strictEqual(await Deno.readTextFile(join(copyDir, "metrics.jsonl")), before);
    // The original is untouched.
    strictEqual(await Deno.readTextFile(join(originalDir, "metrics.jsonl")), before);
    deepStrictEqual(
      (await Deno.stat(join(originalDir, "step_000004", "meta.json"))).mtime,
      beforeStat.mtime,
    );

    // With a config naming another run directory, resuming DIR is refused, naming both.
    await rejects(runSft(config, { ...QUIET, resume: copyDir }), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot resume from ".*step_000004": it belongs to run directory "${copyDir}", but ` +
          `keys "run.outDir" and "run.name" make this run write into "${originalDir}" ` +
          `\\(another run\\): set --run.outDir=${join(dir, "b")} --run.name=run`,
      ),
    });
    strictEqual(await Deno.readTextFile(join(originalDir, "metrics.jsonl")), before);

    // A copy whose folder name cannot be a run name is refused, naming the folder.
    const spaced = join(dir, "b", "run copy");
    await Deno.rename(copyDir, spaced);
    await rejects(
      resolveTrainConfig({ overrides: [], resume: spaced, overwrite: false, help: false }),
      { name: "RangeError", message: /run directory's name "run copy" becomes "run\.name"/ },
    );
  });
});

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(join(from, entry.name), join(to, entry.name));
    else await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

Deno.test("a resume refuses a damaged checkpoint by its hash, and warns on one saved without hashes", async () => {
  await withTempDir(async (dir) => {
    const config = await tinyConfig(dir, ["--trainer.steps=2"]);
    const first = await runSft(config, { ...QUIET, evalAtStart: false });
    const step = join(first.runDir, "step_000002");
    const weightsPath = join(step, "model.safetensors");
    const bytes = await Deno.readFile(weightsPath);
    const flipped = bytes.slice();
    flipped[flipped.length - 3] ^= 0x10;
    await Deno.writeFile(weightsPath, flipped);
    const longer = await tinyConfig(dir, ["--trainer.steps=3"]);
    await rejects(runSft(longer, { ...QUIET, resume: true }), {
      name: "RangeError",
      message: new RegExp(`^Cannot load checkpoint "${weightsPath}": the file's SHA-256 must be`),
    });
    await Deno.writeFile(weightsPath, bytes);
    const metaPath = join(step, "meta.json");
    const json = JSON.parse(await Deno.readTextFile(metaPath));
    delete json.files.weights.sha256;
    delete json.files.optimizer.sha256;
    await Deno.writeTextFile(metaPath, JSON.stringify(json));
    const result = await runSft(longer, { ...QUIET, resume: true });
    strictEqual(result.step, 3);
    ok(
      result.warnings.some((w) =>
        w === `checkpoint "${step}" predates content hashes: model.safetensors, ` +
            "optimizer.safetensors checked by size only"
      ),
      result.warnings.join("\n"),
    );
  });
});
