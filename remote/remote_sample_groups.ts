/**
 * Rollouts through a {@linkcode RolloutPool}, as a drop-in for the RL loop's `sampleGroups`
 * (`runRl(config, { sampleGroups: remoteSampleGroups(pool) })`): each prompt's G samples go as
 * one `n = G` request, all prompts of a generation batch at once (the pool spreads them), with
 * the sampler's log-probs as the rollouts' old log-probs. Optionally scores the rollouts with the
 * train backend's forward (what `rl.oldLogprobs: recompute` computes) and reports the
 * sampler–trainer mismatch.
 *
 * halo's old log-probs are those of the policy the rollouts are sampled from at temperature T,
 * `log_softmax(logits / T)` without top-p/top-k truncation (what the trainer's forward computes
 * at `rl.temperature`). A server's log-probs are those only when they are raw (vLLM's default
 * `--logprobs-mode raw_logprobs`, llama.cpp) and T = 1, or processed (vLLM `--logprobs-mode
 * processed_logprobs`, SGLang) without top-p/top-k: a server whose preflight found processed
 * log-probs is refused when the sampling truncates (top-p < 1 or top-k > 0), and one whose
 * preflight found raw log-probs is refused at T ≠ 1. At T ≠ 1 a server whose probe ran but could
 * not tell (`PreflightResult.probe` says why) is refused too: raw log-probs there would silently
 * make π_sampler the untempered model's and bias every ratio. A server that had no probe (no
 * preflight, `rl.rollout.preflight: false`, or no probe prompt) gets a warning instead
 * (`onWarning`, once per server): the run chose to take its log-probs as they come.
 *
 * @module
 */
import { mixNumber } from "../internal/random.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { forwardPass } from "../trainer/rl/forward_pass.ts";
import type { Rollout, SampledGroups, SampleGroupsOptions } from "../trainer/rl/rollout.ts";
import { logprobMismatch, type MismatchMetrics } from "./logprob_mismatch.ts";
import type { RolloutPool } from "./rollout_pool.ts";
import type { AdapterSync, PublishResult } from "./adapter_sync.ts";

/**
 * What one generation batch produced, for {@linkcode RemoteSampleGroupsOptions.onBatch}.
 *
 * @example Usage
 * ```ts ignore
 * import type { RemoteBatch } from "./remote_sample_groups.ts";
 * declare const batch: RemoteBatch;
 * console.log(batch.mismatch?.["mismatch/kl_k3"]);
 * ```
 */
export interface RemoteBatch {
  /** The groups returned to the loop. */
  sampled: SampledGroups;
  /** Per rollout (groups flattened in order), the server's sampler log-probs. */
  samplerLogprobs: number[][];
  /** Per rollout, the train backend's log-probs of the same tokens (with `compare`). */
  trainerLogprobs: Float64Array[] | null;
  /** The mismatch metrics (with `compare`). */
  mismatch: MismatchMetrics | null;
  /** The policy version the rollouts were sampled with. */
  policyVersion: number;
}

/**
 * Options of {@linkcode remoteSampleGroups}.
 *
 * @example Usage
 * ```ts
 * import type { RemoteSampleGroupsOptions } from "./remote_sample_groups.ts";
 *
 * const options: RemoteSampleGroupsOptions = { adapter: "halo-v3", policyVersion: () => 3 };
 * ```
 */
export interface RemoteSampleGroupsOptions {
  /** The served adapter to sample from, or `null` (default) for the base model. */
  adapter?: string | null | (() => string | null);
  /** The policy version of what the servers hold; default 0. */
  policyVersion?: number | (() => number);
  /**
   * Score every rollout with the train backend's forward (no gradient; what
   * `rl.oldLogprobs: recompute` runs) and compute the mismatch metrics. Default `false`.
   */
  compare?: boolean;
  /** Rows per forward of the comparison; default 16. */
  microBatchSize?: number;
  /** Called once per generation batch. */
  onBatch?: (batch: RemoteBatch) => void;
  /** Receives warnings (a server whose log-prob kind is unknown at T ≠ 1); default `console.warn`. */
  onWarning?: (message: string) => void;
  /**
   * Publish the train backend's adapter at the start of every step (a call with `firstGroup` 0:
   * runRl numbers groups from 0 each step, so the previous step's update is in the backend) and
   * sample from it; `adapter` and `policyVersion` then come from the sync.
   */
  sync?: {
    /** Where versions go. */
    adapters: AdapterSync;
    /** Writes the backend's adapter into a directory (e.g. {@linkcode peftWriter}). */
    write: (backend: TrainBackend, dir: string) => Promise<void>;
    /** Called with each publish's result (its warnings name skipped servers). */
    onPublish?: (result: PublishResult) => void;
  };
}

function resolve<T>(value: T | (() => T)): T {
  return typeof value === "function" ? (value as () => T)() : value;
}

/**
 * A `sampleGroups` that draws the rollouts from a pool of inference servers. Prompt `p` of a
 * call is seeded `mixNumber(seed, p)`.
 *
 * @param pool The servers.
 * @param options Adapter, policy version, the optional trainer comparison.
 * @returns A function with `sampleGroups`' signature.
 *
 * @example An RL run with remote rollouts (needs running servers)
 * ```ts ignore
 * import { remoteSampleGroups } from "./remote_sample_groups.ts";
 * import { RolloutPool } from "./rollout_pool.ts";
 * import { runRl } from "../trainer/rl/run_rl.ts";
 * declare const config: import("../trainer/config.ts").TrainConfig;
 *
 * const pool = await RolloutPool.connect(["http://10.0.0.5:8000"], { engine: "vllm", vocabSize: 64 });
 * await runRl(config, { sampleGroups: remoteSampleGroups(pool, { compare: true }) });
 * ```
 */
export function remoteSampleGroups(
  pool: RolloutPool,
  options: RemoteSampleGroupsOptions = {},
): (
  backend: TrainBackend,
  prompts: readonly (readonly number[])[],
  sampling: SampleGroupsOptions,
) => Promise<SampledGroups> {
  const warned = new Set<string>();
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  return async (backend, prompts, sampling) => {
    const topP = sampling.topP ?? 1;
    const topK = sampling.topK ?? 0;
    const truncated = topP !== 1 || topK !== 0;
    // halo's old log-probs are log_softmax(logits / T) without truncation: processed server
    // log-probs are those only without top-p/top-k, raw ones only at T = 1.
    for (const [url, found] of pool.preflights()) {
      if (found.logprobs === "processed" && truncated) {
        throw new RangeError(
          `Cannot take rollouts from "${url}": it reports processed log-probs (after ` +
            `temperature/top-p/top-k), but halo's old log-probs are those of ` +
            `softmax(logits / temperature) without truncation and the sampling truncates ` +
            `(top-p ${topP}, top-k ${topK}): start vLLM with --logprobs-mode raw_logprobs and ` +
            `sample at temperature 1, or sample without top-p/top-k`,
        );
      }
      if (found.logprobs === "raw" && sampling.temperature !== 1) {
        throw new RangeError(
          `Cannot take rollouts from "${url}": it reports raw log-probs (the untempered ` +
            `model's log_softmax(logits)), but the rollouts are sampled at temperature ` +
            `${sampling.temperature} and halo's old log-probs are those of ` +
            `softmax(logits / temperature): start vLLM with --logprobs-mode ` +
            `processed_logprobs (without top-p/top-k), or sample at temperature 1`,
        );
      }
    }
    if (sampling.temperature !== 1) {
      for (const client of pool.clients) {
        const found = client.preflightResult;
        if (found?.logprobs === "unknown" && found.probe !== undefined) {
          throw new RangeError(
            `Cannot take rollouts from "${client.url}": its preflight probe could not tell raw ` +
              `from processed log-probs (${found.probe}), and the rollouts are sampled at ` +
              `temperature ${sampling.temperature}, where raw log-probs would make the old ` +
              `log-probs the untempered model's: sample at temperature 1, or set ` +
              `"rl.rollout.preflight" false (with "rl.rollout.model") to take the server's ` +
              `log-probs as they come`,
          );
        }
        const kind = found?.logprobs ?? "unknown";
        if (kind !== "unknown" || warned.has(client.url)) continue;
        warned.add(client.url);
        warn(
          `rollout server "${client.url}": its log-probs are not known to be raw or processed ` +
            `(${found === null ? "no preflight" : "no probe prompt"}` +
            `), and the rollouts are sampled at temperature ${sampling.temperature}: if it reports ` +
            `raw log-probs (vLLM's default), π_sampler is the untempered model's and the old ` +
            `log-probs are wrong; start vLLM with --logprobs-mode processed_logprobs, or keep ` +
            `"rl.rollout.preflight" on with a probe prompt`,
        );
      }
    }
    let policyVersion = resolve(options.policyVersion ?? 0);
    let adapter = resolve(options.adapter ?? null);
    const sync = options.sync;
    if (sync) {
      if (sampling.firstGroup === 0 || sync.adapters.current === null) {
        const version = (sync.adapters.current?.version ?? 0) + 1;
        sync.onPublish?.(await sync.adapters.publish(version, (dir) => sync.write(backend, dir)));
      }
      ({ name: adapter, version: policyVersion } = sync.adapters.current!);
    }
    const eos = sampling.eosTokenIds ?? backend.model.config.eosTokenIds;
    const answers = await Promise.all(prompts.map((promptIds, p) =>
      pool.generate({
        promptIds,
        n: sampling.groupSize,
        maxTokens: sampling.maxNewTokens,
        temperature: sampling.temperature,
        topP,
        topK,
        seed: mixNumber(sampling.seed, p) >>> 0,
        stopTokenIds: sampling.stopTokenIds ?? [],
        eosTokenIds: eos,
        adapter,
        policyVersion,
      })
    ));
    const decode = { skipSpecialTokens: true };
    let generatedTokens = 0;
    const samplerLogprobs: number[][] = [];
    const groups: Rollout[][] = answers.map((choices, p) =>
      choices.map((c) => {
        generatedTokens += c.tokenIds.length;
        samplerLogprobs.push(c.samplerLogprobs);
        return {
          group: sampling.firstGroup + p,
          promptIds: [...prompts[p]],
          tokens: [...c.tokenIds],
          oldLogprobs: Float64Array.from(c.samplerLogprobs),
          text: sampling.tokenizer.decode(c.tokenIds, decode),
          tokenOffsets: sampling.tokenizer.tokenOffsets(c.tokenIds, decode).map(([s]) => s),
          stopReason: c.finish,
        };
      })
    );
    const sampled = { groups, generatedTokens, policyVersion };
    let trainerLogprobs: Float64Array[] | null = null;
    let mismatch: MismatchMetrics | null = null;
    if (options.compare) {
      const rows = groups.flat().map((r) => ({
        promptIds: r.promptIds,
        tokens: r.tokens,
        oldLogprobs: r.oldLogprobs,
        advantage: 0,
        policy: true,
        anchor: -1,
        group: r.group,
        correct: false,
      }));
      const pass = await forwardPass(backend, rows, {
        padId: backend.model.config.padTokenId ?? eos[0] ?? 0,
        microBatchSize: options.microBatchSize ?? 16,
        layer: null,
        logprobs: true,
        temperature: sampling.temperature,
      });
      trainerLogprobs = pass.logprobs!;
      mismatch = logprobMismatch(samplerLogprobs, trainerLogprobs);
    }
    options.onBatch?.({ sampled, samplerLogprobs, trainerLogprobs, mismatch, policyVersion });
    return sampled;
  };
}
