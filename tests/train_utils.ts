// Shared set-up of the trainer integration tests: a very small run config (a 1-layer, 16-wide
// Qwen3 on 1-digit addition) that trains a step in a few milliseconds on the CPU.
import type { TrainConfig } from "../trainer/config.ts";
import { loadConfig } from "../cli/load_config.ts";
import { join } from "node:path";
import type { Qwen3Config } from "../model/config.ts";
import { initQwen3Weights } from "../model/init.ts";
import { exportQwen3Model } from "../trainer/export_model.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";

/** Overrides of the very small test run, before the test's own. */
export const TINY_OVERRIDES: readonly string[] = [
  "--model.hidden=16",
  "--model.layers=1",
  "--model.heads=2",
  "--model.kvHeads=1",
  "--model.headDim=8",
  "--model.intermediate=32",
  "--model.maxPositions=64",
  "--data.digits=1",
  "--data.ops=+",
  "--data.trainSize=40",
  "--data.evalSize=4",
  "--trainer.steps=6",
  "--trainer.batchSize=4",
  "--trainer.lr=1e-2",
  "--trainer.warmupSteps=1",
  "--eval.samples=4",
  "--eval.maxNewTokens=4",
  "--eval.every=3",
  "--checkpoint.every=2",
  "--checkpoint.keep=0",
  "--backend=cpu",
];

/**
 * The very small run config writing under `outDir`, plus overrides.
 *
 * @param outDir The run's `run.outDir`.
 * @param overrides More `--key=value` overrides (applied last).
 * @returns The validated config.
 */
export function tinyConfig(
  outDir: string,
  overrides: readonly string[] = [],
): Promise<TrainConfig> {
  return loadConfig(undefined, {
    overrides: [`--run.outDir=${outDir}`, ...TINY_OVERRIDES, ...overrides],
  });
}

/** Runs a test body in a fresh temporary directory (the one in `internal/test_utils.ts`). */
export { withTempDir } from "../internal/test_utils.ts";

/** Quiet output for `runSft`. */
export const QUIET = { progress: null, log: (_: string) => {} } as const;

/**
 * Writes a base model of the tiny config's shape (random init, seed 5, std 0.2, with the
 * arithmetic tokenizer) to `<dir>/base`, for runs that fine-tune a checkpoint (LoRA, HILO).
 *
 * @param dir A temporary directory.
 * @returns The model directory, its config and the tiny config's `model` section.
 */
export async function exportTinyBase(
  dir: string,
): Promise<{ base: string; modelConfig: Qwen3Config; shape: TrainConfig["model"] }> {
  const base = join(dir, "base");
  const m = (await tinyConfig(dir)).model;
  const modelConfig: Qwen3Config = {
    vocabSize: m.vocab,
    hiddenSize: m.hidden,
    intermediateSize: m.intermediate,
    numHiddenLayers: m.layers,
    numAttentionHeads: m.heads,
    numKeyValueHeads: m.kvHeads,
    headDim: m.headDim,
    rmsNormEps: m.rmsNormEps,
    ropeTheta: m.ropeTheta,
    maxPositionEmbeddings: m.maxPositions,
    tieWordEmbeddings: true,
    eosTokenIds: [54],
    bosTokenId: null,
    padTokenId: 52,
  };
  await exportQwen3Model(base, {
    config: modelConfig,
    weights: initQwen3Weights(modelConfig, { seed: 5, std: 0.2 }),
    ...arithmeticTokenizerFiles(),
  });
  return { base, modelConfig, shape: m };
}
