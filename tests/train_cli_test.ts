// The `train` command line: flags and overrides, config errors that name the key and what was
// expected, and the exit status of a failed run.
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { parseTrainArgs, resolveTrainConfig } from "../cli/train.ts";
import { runSft } from "../trainer/sft.ts";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";
import { copyModelDir } from "../internal/test_utils.ts";

Deno.test("parseTrainArgs() separates overrides, --resume [DIR] and flags", () => {
  deepStrictEqual(parseTrainArgs(["--resume", "out/x", "--overwrite", "--trainer.lr=1e-3"]), {
    config: undefined,
    overrides: ["--trainer.lr=1e-3"],
    resume: "out/x",
    overwrite: true,
    export: undefined,
    workers: undefined,
    help: false,
  });
  strictEqual(parseTrainArgs(["--workers", "2"]).workers, 2);
  throws(() => parseTrainArgs(["--workers=0"]), {
    name: "TypeError",
    message:
      'Cannot parse the command line: --workers must be a positive integer: current value is "0"',
  });
  strictEqual(parseTrainArgs(["--resume"]).resume, true);
  strictEqual(parseTrainArgs([]).resume, false);
  throws(() => parseTrainArgs(["--bogus"]), {
    name: "TypeError",
    message: /Cannot parse the command line: .*bogus/,
  });
  throws(() => parseTrainArgs(["--trainer.lr"]), {
    name: "TypeError",
    message: 'Cannot parse the command line: override "--trainer.lr" needs a value',
  });
});

Deno.test("resolveTrainConfig() errors name the key, what was expected and the override", async () => {
  const base = { resume: false, overwrite: false, help: false } as const;
  await rejects(resolveTrainConfig({ ...base, overrides: ["--trainer.lr=-1"] }), {
    name: "RangeError",
    message:
      /Cannot load config ".*rl_arith_hidden_align.yaml": key "trainer.lr" \(set by "--trainer.lr=-1"\) must be > 0: current value is -1/,
  });
  await rejects(resolveTrainConfig({ ...base, overrides: ["--trainer.stpes=5"] }), {
    name: "TypeError",
    message: /unknown key "trainer.stpes": expected one of .* \(did you mean "steps"\?\)/,
  });
  // An SFT cross-check (the RL demo never reads trainer.microBatches: validate_config_test).
  const sft = { ...base, config: "configs/tiny_sft.yaml" };
  await rejects(resolveTrainConfig({ ...sft, overrides: ["--trainer.microBatches=3"] }), {
    name: "RangeError",
    message:
      /key "trainer.microBatches" .*must divide "trainer.batchSize" \(16\): current value is 3/,
  });
  await rejects(resolveTrainConfig({ ...base, config: "configs/nope.yaml", overrides: [] }), {
    message: 'Cannot load config "configs/nope.yaml": file not found',
  });
  await rejects(resolveTrainConfig({ ...base, resume: "out/x", overrides: ["--trainer.lr=1"] }), {
    name: "TypeError",
    message: /Cannot resume from "out\/x" with overrides .* but no --config/,
  });
});

Deno.test("resolveTrainConfig() --resume names a missing or damaged meta.json", async () => {
  await withTempDir(async (dir) => {
    const base = { resume: dir, overwrite: false, help: false, overrides: [] };
    await rejects(resolveTrainConfig(base), {
      name: "NotFound",
      message: `Cannot resume from "${dir}": it is neither a checkpoint (no "${
        join(dir, "meta.json")
      }") nor a run directory with checkpoints`,
    });
    await Deno.writeTextFile(join(dir, "meta.json"), '{"config": ');
    await rejects(resolveTrainConfig(base), {
      name: "SyntaxError",
      message: new RegExp(`^Cannot resume from "${join(dir, "meta.json")}": invalid JSON: `),
    });
  });
});

Deno.test("runSft() names the config keys of settings that cannot work", async () => {
  await withTempDir(async (dir) => {
    // (Also refused at config load; runSft checks a config built in code too.)
    const warm = await tinyConfig(dir, ["--trainer.steps=4", "--trainer.warmupSteps=3"]);
    const cosine = { ...warm, trainer: { ...warm.trainer, warmupSteps: 4 } };
    await rejects(runSft(cosine, QUIET), {
      name: "RangeError",
      message: 'Cannot build the optimizer: key "trainer.warmupSteps" must be < "trainer.steps" ' +
        "(4) for the cosine schedule: current value is 4",
    });
    // A model directory without a tokenizer (the golden-test fixture) names the missing file.
    const noTokenizer = await tinyConfig(dir, ["--model.path=tests/fixtures/qwen3-tiny"]);
    await rejects(runSft(noTokenizer, QUIET), {
      message: /tests\/fixtures\/qwen3-tiny\/tokenizer\.json/,
    });
    const short = await tinyConfig(dir, ["--model.maxPositions=20"]);
    await rejects(runSft(short, QUIET), {
      name: "RangeError",
      message:
        /^Cannot train: key "model.maxPositions" must be >= \d+ to hold the held-out example "<\|im_start\|>user\\nWhat is .*": current value is 20$/,
    });
    // A failed set-up leaves nothing behind.
    deepStrictEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("deno task train exits 2 with the config error on stderr", async () => {
  const cli = join(import.meta.dirname!, "..", "cli", "train.ts");
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", cli, "--data.digits=9"],
    stdout: "null",
    stderr: "piped",
  }).output();
  strictEqual(code, 2);
  const text = new TextDecoder().decode(stderr);
  ok(
    text.includes('key "data.digits" (set by "--data.digits=9") must be <= 6: current value is 9'),
    text,
  );
});

Deno.test("runSft() checks --export before training: a file or model.path is refused, nothing written", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "export.txt");
    await Deno.writeTextFile(file, "x");
    const config = await tinyConfig(join(dir, "runs"), ["--trainer.steps=2"]);
    await rejects(runSft(config, { ...QUIET, exportDir: file }), {
      name: "RangeError",
      message: `Cannot export to --export "${file}": it is a file; --export takes a directory ` +
        "(created if missing)",
    });
    const model = join(dir, "model");
    await copyModelDir(model);
    const onModel = await tinyConfig(join(dir, "runs"), [
      "--trainer.steps=2",
      `--model.path=${model}`,
    ]);
    await rejects(runSft(onModel, { ...QUIET, exportDir: join(model, "sub") }), {
      name: "RangeError",
      message: /--export ".*\/model\/sub" is the model directory ".*\/model" \(key "model\.path"\)/,
    });
    // Refused before training: no run directory.
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["export.txt", "model"]);
  });
});
