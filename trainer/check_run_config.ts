/**
 * The start-up checks of a run that need its model's shape, without the model: what a grid of
 * runs (`reproduce`, `hilo-experiment`) runs for every run's config before the first one trains,
 * so that a bad setting of a later run does not abort the grid hours in.
 *
 * @module
 */
import type { Qwen3Config } from "../model/config.ts";
import type { TrainConfig } from "./config.ts";
import { readRunModelConfig, runAdamwOptions } from "./_run_setup.ts";
import { runAdapterConfig } from "./run_adapters.ts";
import { rlConfigProblems } from "./rl/config.ts";

/**
 * Runs the checks a run makes when it starts that need the model, reading only its `config.json`
 * (no tokenizer, no weights), and throws the error the run would throw:
 *
 * - the model directory exists and the `model.*` shape keys agree with its `config.json`;
 * - the cosine schedule's `trainer.warmupSteps` is shorter than `trainer.steps`;
 * - the adapter settings parse against the model's layers (a HILO schedule such as `9-x`, or
 *   one of another length than the model's layers);
 * - with `trainer.mode: rl`, `rlConfigProblems` with the model's layer count, the adapter kind
 *   and `data.task` (an align layer the model does not have; the SFT-only task suite).
 *
 * The warm-up and the task suite are refused at config load already (`validateConfig`); they
 * are checked here again for a config built in code.
 *
 * @param config The run's config (validated, as `loadConfig` gives it).
 * @param options `modelConfig`: the model's config when already read (the run's own start).
 * @returns The model's config.
 * @throws {RangeError} The first problem, worded as the run's own start words it.
 *
 * @example An align layer the bundled model does not have
 * ```ts
 * import { checkRunConfig } from "./check_run_config.ts";
 * import { loadConfig } from "../cli/load_config.ts";
 * import { rejects } from "node:assert/strict";
 *
 * const config = await loadConfig("configs/rl_arith_hidden_align.yaml", {
 *   overrides: ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 3}]"],
 * });
 * await rejects(checkRunConfig(config), /key "rl\.losses\[1\]\.layer"/);
 * ```
 */
export async function checkRunConfig(
  config: TrainConfig,
  options: { modelConfig?: Qwen3Config } = {},
): Promise<Qwen3Config> {
  const modelConfig = options.modelConfig ?? await readRunModelConfig(config);
  runAdamwOptions(config, {});
  runAdapterConfig(config, modelConfig);
  if (config.trainer.mode === "rl") {
    const problems = rlConfigProblems(config.rl, {
      numHiddenLayers: modelConfig.numHiddenLayers,
      adaptersKind: config.adapters.kind,
      dataTask: config.data.task,
    });
    if (problems.length > 0) {
      throw new RangeError(
        problems.map(([key, text]) => `Cannot run RL: key "${key}" ${text}`).join("\n"),
      );
    }
  }
  return modelConfig;
}
