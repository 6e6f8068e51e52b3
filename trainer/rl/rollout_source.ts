/**
 * The contract between `runRl` and a rollout sampler other than the train backend (a pool of
 * inference servers: `remote/remote_rollouts.ts`). `runRl` builds the source from the run's
 * `rl.rollout` keys through a factory it is given (`trainer/` sits below `remote/`, so it does
 * not import it: `deno task train` passes `remoteRollouts()`), calls `beginStep` before each
 * step's sampling (the source publishes the current policy there), samples through
 * `sampleGroups`, and closes it at the end.
 *
 * @module
 */
import type { Qwen3Config } from "../../model/config.ts";
import type { Lora } from "../../adapters/lora.ts";
import type { TrainBackend } from "../backend.ts";
import type { TrainConfig } from "../config.ts";
import type { SampledGroups, SampleGroupsOptions } from "./rollout.ts";

/**
 * What a {@linkcode RolloutSourceFactory} gets from `runRl`.
 *
 * @example Usage
 * ```ts ignore
 * import type { RolloutSourceContext } from "./rollout_source.ts";
 * declare const context: RolloutSourceContext;
 * await context.syncParams(); // host parameters now equal the device's
 * ```
 */
export interface RolloutSourceContext {
  /** The run configuration (its `rl.rollout` keys). */
  config: TrainConfig;
  /** The train backend (its `params` are the policy to publish). */
  backend: TrainBackend;
  /** The model's config. */
  modelConfig: Qwen3Config;
  /** The run's LoRA adapters (`null` for full fine-tuning), for their structure. */
  lora: Lora | null;
  /** EOS ids of the run. */
  eosTokenIds: readonly number[];
  /** A prompt of the run (the preflight's log-probs probe). */
  probePromptIds: readonly number[];
  /**
   * Brings `backend.params` up to date with the device (`trainer.optimizer: device` keeps the
   * parameters on the GPU and the host copies go stale); resolves at once otherwise. Call it
   * before reading the parameters.
   */
  syncParams: () => Promise<void>;
  /** Information lines. */
  log: (text: string) => void;
}

/**
 * A rollout sampler for `runRl`.
 *
 * @example Usage
 * ```ts ignore
 * import type { RolloutSource } from "./rollout_source.ts";
 * declare const source: RolloutSource;
 * await source.beginStep(1);
 * console.log(source.description, source.metrics());
 * ```
 */
export interface RolloutSource {
  /** One line for the run's log (e.g. the servers and what their preflight found). */
  description: string;
  /** Prepares step `step` (1-based): e.g. publishes the current policy as version `step`. */
  beginStep(step: number): Promise<void>;
  /** Draws a generation batch's rollouts (`sampleGroups`' contract). */
  sampleGroups(
    backend: TrainBackend,
    prompts: readonly (readonly number[])[],
    options: SampleGroupsOptions,
  ): Promise<SampledGroups>;
  /** Metrics of the current step (namespaced `rollout/…`), merged into the step's line. */
  metrics(): Record<string, number>;
  /** Warnings since the last call (e.g. a server skipped by a publish); emptied by the call. */
  takeWarnings(): string[];
  /** Releases what the source holds (it does not stop the servers). */
  close(): Promise<void>;
}

/**
 * Builds the rollout source of a run (called once, after the model is built).
 *
 * @example Usage
 * ```ts ignore
 * import type { RolloutSourceFactory } from "./rollout_source.ts";
 * import { runRl } from "./run_rl.ts";
 * declare const factory: RolloutSourceFactory;
 * declare const config: import("../config.ts").TrainConfig;
 * await runRl(config, { rollouts: factory });
 * ```
 */
export type RolloutSourceFactory = (context: RolloutSourceContext) => Promise<RolloutSource>;
