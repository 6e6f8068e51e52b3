import { rejects, strictEqual } from "node:assert/strict";
import { loadConfig } from "../cli/load_config.ts";
import { checkRunConfig } from "./check_run_config.ts";

const RL = ["--trainer.mode=rl", "--model.path=models/arithmetic-tiny"];
const load = (overrides: string[]) => loadConfig(undefined, { overrides });

Deno.test("checkRunConfig() passes good configs and returns the model's config.json", async () => {
  strictEqual(
    (await checkRunConfig(await loadConfig("configs/rl_arith_dapo.yaml"))).numHiddenLayers,
    2,
  );
  strictEqual(
    (await checkRunConfig(await loadConfig("configs/tiny_sft.yaml"))).hiddenSize > 0,
    true,
  );
  // HILO per-layer lists of the model's length.
  const hilo = await load([
    ...RL,
    "--adapters.kind=hilo",
    "--adapters.hilo.experts=[1,4]",
    "--adapters.hilo.rank=[2,8]",
  ]);
  strictEqual((await checkRunConfig(hilo)).numHiddenLayers, 2);
});

Deno.test("checkRunConfig() refuses what a run's start refuses once it reads the model's config", async () => {
  // An align layer the 2-layer model does not have (the schema takes any index).
  await rejects(
    checkRunConfig(
      await load([...RL, "--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 3}]"]),
    ),
    {
      name: "RangeError",
      message:
        /^Cannot run RL: key "rl\.losses\[1\]\.layer" must be "final" or a decoder layer in \[0, 0\]/,
    },
  );
  // The task suite in an RL run, and the cosine warm-up as long as the run: refused at config
  // load too, and here for a config built in code.
  const rl = await load(RL);
  const suite = { ...rl, data: { ...rl.data, task: "suite" as const } };
  await rejects(checkRunConfig(suite), { message: /^Cannot run RL: key "data\.task"/ });
  // A HILO schedule that does not parse, or of another length than the model's layers.
  await rejects(
    checkRunConfig(await load([...RL, "--adapters.kind=hilo", "--adapters.hilo.rank=9-x"])),
    /rank schedule.*"9-x"/,
  );
  await rejects(
    checkRunConfig(await load([...RL, "--adapters.kind=hilo", "--adapters.hilo.rank=[2,8,4]"])),
    /one value per layer \(2\)/,
  );
  const sft = await load(["--trainer.steps=2", "--trainer.warmupSteps=1"]);
  await rejects(
    checkRunConfig({ ...sft, trainer: { ...sft.trainer, warmupSteps: 2 } }),
    {
      message:
        /^Cannot build the optimizer: key "trainer\.warmupSteps" must be < "trainer\.steps" \(2\)/,
    },
  );
  // No such model directory; a shape key the model's config.json contradicts.
  await rejects(
    checkRunConfig(await load(["--model.path=models/no-such-model"])),
    /key "model\.path" must be a model directory.*"models\/no-such-model" not found/,
  );
  await rejects(
    checkRunConfig(await load(["--model.path=models/arithmetic-tiny", "--model.layers=7"])),
    /"model\.layers" \(7; the model has 2\)/,
  );
});
