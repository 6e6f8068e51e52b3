// Shared set-up of the RL integration tests: a small RL run of the bundled arithmetic model on
// 2-operand problems (short responses), a few seconds a step on the CPU.
import type { TrainConfig } from "../trainer/config.ts";
import { loadConfig } from "../cli/load_config.ts";

/** Overrides of the small RL test run, before the test's own. */
export const RL_OVERRIDES: readonly string[] = [
  "--trainer.mode=rl",
  "--model.path=models/arithmetic-tiny",
  "--data.digits=1",
  "--data.maxTerms=2",
  "--data.trainSize=200",
  "--trainer.steps=3",
  "--trainer.lr=1e-3",
  "--trainer.warmupSteps=0",
  "--trainer.schedule=constant",
  "--rl.data.evalSize=20",
  "--rl.groupSize=4",
  "--rl.trainBatchPrompts=2",
  "--rl.genBatchPrompts=3",
  "--rl.maxGenBatches=2",
  "--rl.maxNewTokens=20",
  "--rl.overlong.buffer=4",
  "--rl.microBatchSize=5",
  "--rl.eval.prompts=4",
  "--rl.eval.samples=2",
  "--rl.eval.every=0",
  "--checkpoint.every=1",
  "--checkpoint.keep=0",
  "--backend=cpu",
];

/**
 * The small RL run config writing under `outDir`, plus overrides.
 *
 * @param outDir The run's `run.outDir`.
 * @param overrides More `--key=value` overrides (applied last).
 * @returns The validated config.
 */
export function rlConfig(outDir: string, overrides: readonly string[] = []): Promise<TrainConfig> {
  return loadConfig(undefined, {
    overrides: [`--run.outDir=${outDir}`, ...RL_OVERRIDES, ...overrides],
  });
}

/** Quiet output for `runRl`. */
export const QUIET = { progress: null, log: (_: string) => {} } as const;
