/**
 * The `rl` section of a run configuration (`trainer.mode: rl`): prompt data and template,
 * rollout sampling, reward and overlong shaping, dynamic sampling, advantages, the PPO epochs and
 * batch split, the loss terms with their weights, and the RL evaluation. Its zod schema
 * ({@linkcode RL_SCHEMA}) plugs into the run config's schema; {@linkcode DEFAULT_RL_CONFIG} holds
 * DAPO's defaults where they apply (ε 0.2/0.28, token-mean, no KL, no entropy bonus, G = 16,
 * temperature 1, top-p 1, dynamic sampling on, an overlong buffer).
 *
 * The optimizer, schedule and number of steps stay in the `trainer` section (`trainer.steps` is
 * the number of RL steps; `trainer.batchSize` and `trainer.microBatches` are SFT's and unused).
 *
 * @example The Hidden-Align term beside the DAPO policy loss
 * ```ts
 * import { DEFAULT_RL_CONFIG, RL_SCHEMA } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const rl = RL_SCHEMA.parse({
 *   ...structuredClone(DEFAULT_RL_CONFIG),
 *   losses: [
 *     { name: "clipped_pg", weight: 1 },
 *     { name: "hidden_align", weight: 0.1 },
 *   ],
 * });
 * strictEqual(rl.losses[1].name, "hidden_align");
 * strictEqual(DEFAULT_RL_CONFIG.groupSize, 16);
 * ```
 *
 * @module
 */
import { z } from "zod";
import {
  type Aggregation,
  AGGREGATIONS,
  ALIGN_TYPES,
  type AlignType,
  ANCHOR_POSITIONS,
  type AnchorPositionName,
} from "../losses/mod.ts";

/**
 * Where the prompts come from: the built-in arithmetic task (the run's `data` section), a JSONL
 * file, or a Parquet file with DAPO-Math-17k's schema.
 *
 * @example Usage
 * ```ts
 * import type { RlDataSource } from "./config.ts";
 *
 * const source: RlDataSource = "jsonl";
 * ```
 */
export type RlDataSource = "arithmetic" | "jsonl" | "parquet";

/**
 * The prompt template: the task's own question (`"task"`), DAPO's `Answer:` instruction
 * (`"dapo"`), or a `\boxed{}` instruction (`"boxed"`); applied through the tokenizer's chat
 * template.
 *
 * @example Usage
 * ```ts
 * import type { RlTemplate } from "./config.ts";
 *
 * const template: RlTemplate = "dapo";
 * ```
 */
export type RlTemplate = "task" | "dapo" | "boxed";

/**
 * The `clipped_pg` loss term: DAPO's clipped policy-gradient loss.
 *
 * @example Usage
 * ```ts
 * import type { ClippedPgTermConfig } from "./config.ts";
 *
 * const pg: ClippedPgTermConfig = {
 *   name: "clipped_pg", weight: 1, clipLow: 0.2, clipHigh: 0.28, dualClip: 0,
 *   aggregation: "token-mean",
 * };
 * ```
 */
export interface ClippedPgTermConfig {
  /** The registry name. */
  readonly name: "clipped_pg";
  /** Weight of the term in the summed objective. */
  readonly weight: number;
  /** Lower clip ε (ratio ≥ 1 − clipLow). */
  readonly clipLow: number;
  /** Upper clip ε (DAPO's clip-higher; ratio ≤ 1 + clipHigh). */
  readonly clipHigh: number;
  /**
   * verl's dual clip constant c > 1 for negative advantages (the token loss is capped at −A·c);
   * `0` turns it off. Default 0, as the DAPO paper's objective; verl always applies it (3 by
   * default) and its DAPO recipe sets 10 (`clip_ratio_c=10.0`): `dualClip: 10` reproduces that.
   */
  readonly dualClip: number;
  /** Loss aggregation (verl's `agg_loss`). */
  readonly aggregation: Aggregation;
}

/**
 * The `hidden_align` loss term: aligns the hidden states of a prompt's correct rollouts at the
 * anchor token. The targets of `"cos-centroid"`, `"mse-normalized"` and `"mse-raw"` (each group's
 * centroid, stop-gradient) are computed once per RL step, from a forward pass of the parameters
 * before the step's first update, and held fixed for all of its `ppoEpochs × miniBatches`
 * updates: a later update pulls towards the step-start centroid, not the current one.
 * `"cos-pairwise"` has no target: it compares the current states of a group's rows.
 *
 * @example Usage
 * ```ts
 * import type { HiddenAlignTermConfig } from "./config.ts";
 *
 * const align: HiddenAlignTermConfig = {
 *   name: "hidden_align", weight: 0.1, type: "cos-centroid", anchor: "before-marker",
 *   layer: "final",
 * };
 * ```
 */
export interface HiddenAlignTermConfig {
  /** The registry name. */
  readonly name: "hidden_align";
  /** Weight of the term in the summed objective. */
  readonly weight: number;
  /** The alignment loss. */
  readonly type: AlignType;
  /** Which token of a response anchors it. */
  readonly anchor: AnchorPositionName;
  /**
   * Which hidden state: `"final"` (the final-norm output, HF's `hidden_states[-1]`) or the output
   * of decoder layer `l` (0-based, at most the model's layer count − 2).
   */
  readonly layer: "final" | number;
}

/**
 * One loss term of the RL objective.
 *
 * @example Usage
 * ```ts
 * import type { RlLossTermConfig } from "./config.ts";
 * import { DEFAULT_RL_CONFIG } from "./config.ts";
 *
 * const terms: readonly RlLossTermConfig[] = DEFAULT_RL_CONFIG.losses;
 * ```
 */
export type RlLossTermConfig = ClippedPgTermConfig | HiddenAlignTermConfig;

/**
 * `rl.data`: where the training and held-out prompts come from.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_RL_CONFIG, type RlDataConfig } from "./config.ts";
 *
 * const gsm8k: RlDataConfig = {
 *   ...DEFAULT_RL_CONFIG.data, source: "jsonl", path: "data/gsm8k/train.jsonl",
 *   evalPath: "data/gsm8k/test.jsonl", promptField: "question", answerField: "answer",
 * };
 * ```
 */
export interface RlDataConfig {
  /** The prompt source; `"arithmetic"` reads the run's `data` section. */
  readonly source: RlDataSource;
  /** JSONL / Parquet training file (unused for `"arithmetic"`). */
  readonly path: string;
  /**
   * JSONL / Parquet held-out file; `""` holds out the last `evalSize` unique prompts of `path`.
   * Both files are read without repeated prompts (same question and gold: the first is kept).
   */
  readonly evalPath: string;
  /** JSONL: the field with the question (a dotted path, e.g. `"prompt"`). */
  readonly promptField: string;
  /** JSONL: the field with the gold answer (a dotted path, e.g. `"reward_model.ground_truth"`). */
  readonly answerField: string;
  /** Training prompts to use, unique ones (`0`: all of the file; arithmetic: `data.trainSize`). */
  readonly trainSize: number;
  /**
   * Held-out prompts to use. Arithmetic: this many problems of the task's held-out split (the SFT
   * key `data.evalSize` is not read); a file: the first this many of `evalPath`, or the last of
   * `path`.
   */
  readonly evalSize: number;
}

/**
 * `rl.reward`: how a verified rollout is scored.
 *
 * @example Usage
 * ```ts
 * import type { RlRewardConfig } from "./config.ts";
 *
 * const reward: RlRewardConfig = { mode: "dapo", budgetMs: 0, problemNouns: true };
 * ```
 */
export interface RlRewardConfig {
  /** `"dapo"`: +1 correct, −1 otherwise; `"binary"`: 1 / 0. */
  readonly mode: "dapo" | "binary";
  /**
   * The verifier's wall-clock budget per call in ms; `0` means none (`Infinity`), which keeps
   * rewards, and so a resumed run, deterministic under load.
   */
  readonly budgetMs: number;
  /**
   * Give the verifier each prompt's question, for the rewards and the held-out evaluation
   * (`VerifyOptions.problem`): a plain-number answer followed by nouns the problem counts
   * (`#### 12 bananas` for a problem about bananas) is read as the number. `false` ablates this
   * rule (trailing words are then part of the answer). Default `true`.
   */
  readonly problemNouns: boolean;
}

/**
 * `rl.overlong`: DAPO's soft overlong punishment and overlong filtering.
 *
 * @example Usage
 * ```ts
 * import type { RlOverlongConfig } from "./config.ts";
 *
 * const overlong: RlOverlongConfig = { buffer: 8, factor: 1, filter: false };
 * ```
 */
export interface RlOverlongConfig {
  /**
   * Length of the punishment buffer before `maxNewTokens` (`0`: off): a response longer than
   * `maxNewTokens − buffer` gets `−factor·(length − (maxNewTokens − buffer))/buffer` added.
   */
  readonly buffer: number;
  /** The punishment at `maxNewTokens`. */
  readonly factor: number;
  /** Mask truncated responses (no EOS) out of the policy loss. */
  readonly filter: boolean;
}

/**
 * `rl.eval`: held-out avg@k and pass@k by sampling.
 *
 * @example Usage
 * ```ts
 * import type { RlEvalConfig } from "./config.ts";
 *
 * const evalConfig: RlEvalConfig = {
 *   every: 10, final: true, prompts: 48, samples: 4, temperature: 1,
 * };
 * ```
 *
 * @example No held-out evaluation (evaluate the checkpoint with `deno task eval` instead)
 * ```ts
 * import type { RlEvalConfig } from "./config.ts";
 *
 * const off: RlEvalConfig = { every: 0, final: false, prompts: 48, samples: 4, temperature: 1 };
 * ```
 */
export interface RlEvalConfig {
  /**
   * Evaluate every this many steps (and after the last unless `final` is `false`); `0`: only
   * after the last.
   */
  readonly every: number;
  /**
   * Evaluate after the last step even when `every` does not fall on it (default `true`). `false`
   * with `every: 0` switches the held-out evaluation off: no step-0 evaluation either (it is the
   * baseline of later ones), no `eval/*` metrics, an empty `evals.jsonl`, and no held-out
   * generation in the WebGPU memory plan.
   * `deno task reproduce` refuses `false` (its results page reads the evaluation after the last
   * step).
   */
  readonly final: boolean;
  /** Held-out prompts per evaluation (at most `rl.data.evalSize`). */
  readonly prompts: number;
  /** Samples per prompt (the k of avg@k and pass@k). */
  readonly samples: number;
  /** Sampling temperature of the evaluation (`0`: greedy, then `samples` must be 1). */
  readonly temperature: number;
  /**
   * Most held-out prompts (each with its `samples` rows) per generation call; `0` (the default)
   * puts as many in one call as fit; on WebGPU a call's KV cache per layer (rows ×
   * (longest prompt + `rl.maxNewTokens`, rounded up to 64) × kvHeads·headDim floats) must fit one
   * storage binding, and calls are split further to fit whatever this says. The results do not
   * depend on it (each prompt's samples draw the same random numbers however the prompts are
   * split); a smaller value only lowers the peak memory.
   */
  readonly batchPrompts?: number;
}

/**
 * Where rollouts are sampled: halo's own generator on the train backend (`"local"`), or a pool of
 * inference servers speaking vLLM's `/v1/completions`, SGLang's `/generate` or llama.cpp's
 * server protocol.
 *
 * @example Usage
 * ```ts
 * import type { RolloutBackend } from "./config.ts";
 *
 * const backend: RolloutBackend = "vllm";
 * ```
 */
export type RolloutBackend = "local" | "vllm" | "sglang" | "llamacpp";

/**
 * `rl.rollout.tis`: token-level truncated importance sampling of the policy loss (verl's
 * `rollout_is: token` with `rollout_is_threshold`, TRL's `vllm_importance_sampling_correction`):
 * each response token's clipped policy-gradient term is multiplied by the constant
 * `w = min(exp(log π_old − log π_sampler), cap)`, where `π_old` is halo's recomputed log-prob
 * (`rl.oldLogprobs: recompute`) and `π_sampler` the sampler's (the server's, or halo's own
 * generator's). No gradient flows through `w`.
 *
 * @example Usage
 * ```ts
 * import type { RlTisConfig } from "./config.ts";
 *
 * const tis: RlTisConfig = { enabled: true, cap: 2 };
 * ```
 */
export interface RlTisConfig {
  /** Multiply the policy loss by the truncated weights; default `false`. */
  readonly enabled: boolean;
  /** The truncation C (> 0); default 2 (verl's `rollout_is_threshold`). */
  readonly cap: number;
}

/**
 * `rl.rollout`: where rollouts come from and how a remote pool is reached, synced and corrected.
 * With a remote `backend` the trainer publishes its LoRA adapter as a new PEFT directory per
 * policy version (`<adapterDir>/<prefix>-v<step>`) at the start of every step, loads it on every
 * server under that new name, and samples the step's rollouts from it.
 *
 * @example Two vLLM servers with TIS
 * ```ts
 * import { DEFAULT_RL_CONFIG, type RlRolloutConfig } from "./config.ts";
 *
 * const rollout: RlRolloutConfig = {
 *   ...DEFAULT_RL_CONFIG.rollout, backend: "vllm",
 *   servers: ["http://10.0.0.5:8000", "http://10.0.0.6:8000"], adapterDir: "/shared/adapters",
 *   tis: { enabled: true, cap: 2 },
 * };
 * ```
 */
export interface RlRolloutConfig {
  /** The sampler; default `"local"` (halo's generator on the train backend). */
  readonly backend: RolloutBackend;
  /** Base URLs of the inference servers (remote backends; at least one). */
  readonly servers: readonly string[];
  /** The served base model's id; `""`: the first id the server's models route lists. */
  readonly model: string;
  /**
   * Where the adapter versions are written; every server must read it at the same path (shared
   * storage) or at `serverAdapterDir`.
   */
  readonly adapterDir: string;
  /** The same directory as the servers see it; `""`: `adapterDir`. */
  readonly serverAdapterDir: string;
  /** Served adapter names are `<adapterPrefix>-v<step>`; default `"halo"`. */
  readonly adapterPrefix: string;
  /**
   * Policy versions older than the newest that stay loaded on the servers (versions kept =
   * window + 1; start vLLM with `--max-loras` ≥ that). Default 1.
   */
  readonly stalenessWindow: number;
  /**
   * Milliseconds per HTTP request before it is aborted; default 120 000. A completion request
   * gets 50 ms more per requested token (`maxNewTokens`), since one request generates a whole
   * group; the pool keeps at most `maxSeqsInFlight` sequences in flight per server, the others
   * waiting untimed (remote/rollout_pool.ts).
   */
  readonly timeoutMs: number;
  /**
   * Tries per request over all servers (failover to the others), and per adapter load; default
   * 4. With one server there is no failover: raise it with `backoffMs` (10 tries from 1000 ms
   * wait ~8.5 min in all) so a server restart does not end the run.
   */
  readonly attempts: number;
  /** The first retry's wait in ms, doubling per retry; default 250. */
  readonly backoffMs: number;
  /** How long a failed server is skipped, in ms; default 10 000. */
  readonly downMs: number;
  /** Re-requests of an invalid choice (ids, log-probs, finish reason) per request; default 2. */
  readonly choiceRetries: number;
  /**
   * The environment variable holding the servers' API key (vLLM/SGLang `--api-key`), sent as
   * `Authorization: Bearer <key>`; default `""`: none. Only the variable's name is in the config
   * (and so in checkpoints and logs), never the key.
   */
  readonly apiKeyEnv: string;
  /**
   * Sequences in flight per server (vLLM's `--max-num-seqs`, default 256): more wait in halo,
   * untimed, rather than queue in the engine against `timeoutMs`; default 256.
   */
  readonly maxSeqsInFlight: number;
  /**
   * At connect, unload from every server the adapters an earlier process of a run with the same
   * `adapterPrefix` left loaded (it was killed before its close): the served names
   * `<adapterPrefix>-<6 hex digits>-v<N>` whose tag is not this process's. Default `false`.
   * Names of any other form are never touched. It finds them in the server's models route, so
   * it cannot help the SGLang builds whose `--max-loaded-loras` is a hard limit (before
   * sgl-project/sglang#11526): SGLang lists adapters there only from sgl-project/sglang#12229,
   * and on a server whose list holds no adapter it warns and does nothing (restart such a server,
   * or raise `--max-loaded-loras`, after a crashed run). On vLLM and newer SGLang builds, which
   * evict adapters by LRU, it tidies the lists and frees what the stale adapters hold. Servers
   * that failed the preflight are skipped (with a warning). Risk: it cannot tell a crashed
   * process from a live one, so a run still training on the same servers with the same
   * `adapterPrefix` loses its loaded versions (its pool then loads them again, at a cost per
   * request); give concurrent runs different prefixes. It reports what it unloaded, and the
   * servers it could not check, as warnings of the first step.
   */
  readonly unloadStale: boolean;
  /**
   * Check each server at connect: its models, context length, and a probe of whether its
   * log-probs are raw or processed (a vLLM started with `--logprobs-mode raw_logits` or
   * `processed_logits`, which returns logits in their place, fails it). Default `true`; `false`
   * needs `model`, and skips all of this: the servers' log-probs are taken as they come (a
   * warning at temperature ≠ 1), and logits go undetected unless one is positive (the choice is
   * then refused as "expected finite log-probs ≤ 0"), so all-negative logits would become the old
   * log-probs. `unloadStale` then queries every server.
   */
  readonly preflight: boolean;
  /** Truncated importance sampling of the policy loss. */
  readonly tis: RlTisConfig;
  /** One-step-off-policy asynchronous generation (remote backends). */
  readonly async: RlAsyncConfig;
}

/**
 * `rl.rollout.async`: one-step-off-policy generation (verl's one-step-off, after AReaL). Right
 * after step k's rollouts are drawn, the first generation batch of step k + 1 is requested from
 * the servers with step k's policy version and runs while step k trains; step k + 1 takes it as
 * its first batch (its groups are one version stale, each pinned to that version), and draws any
 * further batch (dynamic sampling) from its own version. A group more than `maxStaleness` versions
 * older than the step's is dropped and its batch drawn again. Remote backends only (the local
 * sampler is the train backend itself). A resumed run draws its first step's batch on-policy, so
 * it does not repeat an uninterrupted one.
 *
 * @example Usage
 * ```ts
 * import type { RlAsyncConfig } from "./config.ts";
 *
 * const asyncGeneration: RlAsyncConfig = { enabled: true, maxStaleness: 1 };
 * ```
 */
export interface RlAsyncConfig {
  /** Generate step k + 1's first batch while step k trains; default `false`. */
  readonly enabled: boolean;
  /** Most policy versions a used group may lag the step's (≥ 0); default 1. */
  readonly maxStaleness: number;
}

/**
 * The `rl` section of a run configuration.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_RL_CONFIG, type RlConfig } from "./config.ts";
 *
 * const small: RlConfig = { ...DEFAULT_RL_CONFIG, groupSize: 8, trainBatchPrompts: 4 };
 * ```
 */
export interface RlConfig {
  /** Prompt data. */
  readonly data: RlDataConfig;
  /** Prompt template. */
  readonly template: RlTemplate;
  /**
   * Qwen3's thinking mode: the chat template's `enable_thinking`. `false` (the default) ends
   * the prompt with an empty `<think>\n\n</think>\n\n` block, so the model answers directly;
   * `true` leaves the assistant turn open, so it reasons in `<think>…</think>` first (give it a
   * `maxNewTokens` to match). The verifier grades the last marker of the response, so answers
   * written inside the thinking are not taken over the final one. Tokenizers whose template
   * ignores `enable_thinking` render the same prompt either way.
   */
  readonly enableThinking: boolean;
  /** Rollouts per prompt (G), at least 2. */
  readonly groupSize: number;
  /** Groups to train on per step. */
  readonly trainBatchPrompts: number;
  /** Prompts per generation batch (DAPO's `gen_batch_size`). */
  readonly genBatchPrompts: number;
  /** Most generation batches per step while filling the batch (dynamic sampling). */
  readonly maxGenBatches: number;
  /**
   * When `maxGenBatches` batches did not fill the batch: `"train"` on the groups there are
   * (a warning and the metric `sampling/short_batch`), or `"stop"` the run with an error.
   */
  readonly onShortBatch: "train" | "stop";
  /** Drop groups whose correctness is all equal (DAPO's dynamic sampling). */
  readonly dynamicSampling: boolean;
  /**
   * Keep all-correct groups for the align term only (they carry the most pairs) while the policy
   * loss still skips them; they do not count towards `trainBatchPrompts`. Read only with a
   * `hidden_align` term and `dynamicSampling` on (a start-up warning says so otherwise).
   */
  readonly alignKeepAllCorrect: boolean;
  /** Most tokens per response. */
  readonly maxNewTokens: number;
  /**
   * Extra ids that end a rollout (reason `"stop"`, the id kept as the response's last token),
   * for the rollouts and the held-out eval. They extend the derived stop set, which is always
   * there: the EOS ids of the model's `config.json`, the tokenizer's `eos_token` and
   * `generation_config.json`, plus the chat template's end-of-turn token (`<|im_end|>` for
   * Qwen3: the prompts are rendered through the chat template, so the model closes its turn
   * with it; Qwen3-*-Base checkpoints do not list it as an EOS). The default `[]` is the derived
   * set alone. A listed id cannot remove a derived one: a response that runs past its EOS or its
   * end of turn is an invented continuation the verifier would grade. Ids must be below the
   * model's vocabulary size.
   */
  readonly stopTokenIds: readonly number[];
  /**
   * Sampling temperature T of the rollouts (≥ 1e-6). The RL objective is that of the policy the
   * rollouts are drawn from, `π_T = softmax(logits / T)` (as verl, which divides the actor's
   * logits by the rollout temperature): the old log-probs (the sampler's, or recomputed at T),
   * the update's token log-probs, their gradient (the chain rule's `1 / T` through the LM head)
   * and the `policy/entropy` metric all use it. Top-p/top-k are not part of it (as in verl): at
   * T ≠ 1 with either on, halo's own sampler reports the truncated distribution's log-probs, so
   * the old log-probs are recomputed at T whatever `oldLogprobs` says; remote samplers at T ≠ 1
   * need processed log-probs and no truncation. At T = 1 (the default) nothing is scaled.
   */
  readonly temperature: number;
  /** Nucleus sampling of the rollouts, in (0, 1]. */
  readonly topP: number;
  /** Top-k of the rollouts; `0` off. */
  readonly topK: number;
  /**
   * Local rollouts and the held-out evaluation on WebGPU with LoRA: generate from copies of the
   * weights with the adapters merged in (`W + s·B·A`, made at the start of each generate call and
   * freed at its end: the projections' f32 weights once more in memory during generation) instead
   * of running each adapter's two products in every decode step: `"on"`, `"off"`, or `"auto"` (the
   * default: on for a hardware adapter with f32 weights, off for a software one; model/generate.ts
   * `mergeAdapters`). HILO's routed experts and row-split weights are never merged. f16 base
   * weights (`model.weightDtype: f16`) merge only with `"on"`, into f16 copies: that rounds
   * `W + s·B·A` to f16, so an adapter update below half an f16 spacing of `W` is lost in the
   * rollouts (and in their log-probs, π_old with `rl.oldLogprobs: sampler`): most of it early in
   * training. `"auto"` leaves them unmerged.
   */
  readonly mergeAdapters: "auto" | "on" | "off";
  /**
   * WebGPU: free each phase's activation workspaces before the next phase (generation's KV cache,
   * activations and logits before the forward and training passes; theirs before generating), so
   * that the GPU holds the largest phase's workspace rather than all of them at once (the
   * `TrainBackend.releaseWorkspaces` of the backend; a no-op on the CPU). Each phase then
   * allocates its buffers again, a few hundred `createBuffer` calls and the bind groups over them
   * per phase. Default `true`; `false` keeps them all run (the behaviour before this key).
   */
  readonly releaseWorkspaces: boolean;
  /**
   * GPU memory budget in GB (10⁹ bytes) for a WebGPU run; `0` (the default): no check. The start
   * of the run prints an estimate of the GPU memory by item (weights, adapters, optimizer state,
   * merged copy, KV cache, generation, forward and training workspaces: trainer/rl/
   * gpu_memory_estimate.ts, from the allocation code, not measured on a GPU). When generation
   * takes the peak over the budget, the rollouts (`genBatchPrompts × groupSize` rows) and the
   * held-out evaluation (`eval.batchPrompts × eval.samples`) generate in calls of fewer prompts,
   * the most whose estimate fits (a start-up line says how many; the samples do not depend on
   * the split); the run is refused, naming the keys to lower, only when even one prompt per call
   * is over, or the forward pass or the training step sets the peak. With
   * `mergeAdapters: "auto"` the adapters are not merged for generation when their copy would
   * take the peak over the budget or make those calls smaller (larger calls first). WebGPU does
   * not expose the device's memory, so give it here or in the environment variable
   * `HALO_GPU_MEMORY` (GB; it overrides this key). The plan fits the estimate within the budget
   * less `gpuMemoryHeadroom`.
   */
  readonly gpuMemoryBudget: number;
  /**
   * Fraction of `gpuMemoryBudget` (or `HALO_GPU_MEMORY`) kept free by the GPU memory plan, in
   * [0, 1); default `0.1`: the estimate is fitted within 90% of the budget. The estimate leaves
   * out staging buffers, the driver's overhead and fragmentation, so a
   * peak estimated right at the budget can still run out of memory. `0` fits the estimate to the
   * budget exactly. No effect without a budget.
   */
  readonly gpuMemoryHeadroom: number;
  /**
   * Old log-probs: `"sampler"` keeps the log-probs `generate` returns under
   * `softmax(logits / temperature)` (recomputed instead at a temperature ≠ 1 with top-p/top-k,
   * see `temperature`); `"recompute"` runs a forward of the train backend at `temperature` over
   * the rollouts before the update. The sampler's log-probs differ from the training forward's
   * where generation computes differently: a remote engine (its own kernels and dtype), or
   * `model.kvDtype: "f16"` (f16-rounded keys and values); `"recompute"` makes π_old the training
   * forward's own.
   */
  readonly oldLogprobs: "sampler" | "recompute";
  /** Reward mode and verifier budget. */
  readonly reward: RlRewardConfig;
  /** Overlong shaping and filtering. */
  readonly overlong: RlOverlongConfig;
  /** Group advantages: `"grpo"` (mean/std) or `"drgrpo"` (mean only). */
  readonly advantage: "grpo" | "drgrpo";
  /** Passes over each step's rollouts. */
  readonly ppoEpochs: number;
  /**
   * Optimizer updates per epoch: the kept groups split into this many mini-batches (with
   * `alignKeepAllCorrect`, the policy groups and the align-only groups each shared out over them:
   * `splitMiniBatches` in rl_update.ts); fewer when there are fewer groups or rows (with the
   * cos-pairwise align term, whose mini-batches hold whole groups: fewer when there are fewer
   * groups). The learning-rate schedule plans `ppoEpochs × miniBatches` updates a step and
   * follows the RL step: a step with fewer updates (or none) does not hold it back.
   */
  readonly miniBatches: number;
  /**
   * Most sequences per forward/backward (a mini-batch is split into micro-batches of this; with
   * the cos-pairwise align term, into micro-batches of whole groups, so it must be at least
   * `groupSize`).
   */
  readonly microBatchSize: number;
  /**
   * Log the anchor cosines (correct–correct, incorrect–incorrect, correct–incorrect) each step;
   * costs one forward over the kept rollouts when no align term needs it anyway.
   */
  readonly anchorMetrics: boolean;
  /** The loss terms, summed with their weights. */
  readonly losses: readonly RlLossTermConfig[];
  /** Held-out evaluation. */
  readonly eval: RlEvalConfig;
  /** Where rollouts are sampled (local or a server pool) and the off-policy correction. */
  readonly rollout: RlRolloutConfig;
}

const nonNegativeInt = z.int().min(0);
const positiveInt = z.int().min(1);
const nonNegative = z.number().min(0);

/**
 * The loss names the RL step knows how to feed (registered in `trainer/losses/registry.ts`; the
 * registry's `"sft"` term is not an RL term).
 *
 * @example Usage
 * ```ts
 * import { RL_LOSS_NAMES } from "./config.ts";
 *
 * console.log(RL_LOSS_NAMES.includes("hidden_align")); // true
 * ```
 */
export const RL_LOSS_NAMES: readonly string[] = Object.freeze(["clipped_pg", "hidden_align"]);

const CLIPPED_PG = z.strictObject({
  name: z.literal("clipped_pg"),
  weight: nonNegative.default(1),
  clipLow: z.number().min(0).lt(1).default(0.2),
  clipHigh: nonNegative.default(0.28),
  dualClip: z.number().refine((c) => c === 0 || c > 1, { error: "must be 0 (off) or > 1" })
    .default(0),
  aggregation: z.enum(AGGREGATIONS as [Aggregation, ...Aggregation[]]).default("token-mean"),
});

const HIDDEN_ALIGN = z.strictObject({
  name: z.literal("hidden_align"),
  weight: nonNegative.default(0.1),
  type: z.enum(ALIGN_TYPES as [AlignType, ...AlignType[]]).default("cos-centroid"),
  anchor: z.enum(ANCHOR_POSITIONS as [AnchorPositionName, ...AnchorPositionName[]]).default(
    "before-marker",
  ),
  layer: z.union([z.literal("final"), nonNegativeInt]).default("final"),
});

/**
 * Each RL loss term with every key at its default, by name (the term schemas' own defaults; the
 * keys are the term's keys, in the schema's order). `cli/load_config.ts` reads it to type and
 * check an override of one term's key (`--rl.losses.hidden_align.weight=0.5`).
 *
 * @example The keys of the hidden_align term
 * ```ts
 * import { RL_LOSS_TERM_DEFAULTS } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(Object.keys(RL_LOSS_TERM_DEFAULTS.hidden_align).join(" "), "name weight type anchor layer");
 * strictEqual(RL_LOSS_TERM_DEFAULTS.clipped_pg.weight, 1);
 * ```
 */
export const RL_LOSS_TERM_DEFAULTS: Readonly<Record<string, RlLossTermConfig>> = deepFreeze({
  clipped_pg: CLIPPED_PG.parse({ name: "clipped_pg" }) as RlLossTermConfig,
  hidden_align: HIDDEN_ALIGN.parse({ name: "hidden_align" }) as RlLossTermConfig,
});

/**
 * The zod schema of the `rl` section (strict: an unknown key is an error). Loss terms are told
 * apart by `name`; their other keys default as in {@linkcode DEFAULT_RL_CONFIG}.
 *
 * @example An unknown loss name fails, naming the key
 * ```ts
 * import { DEFAULT_RL_CONFIG, RL_SCHEMA } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const bad = { ...structuredClone(DEFAULT_RL_CONFIG), losses: [{ name: "kl", weight: 1 }] };
 * const result = RL_SCHEMA.safeParse(bad);
 * strictEqual(result.success, false);
 * strictEqual(result.error?.issues[0].path.join("."), "losses.0.name");
 * ```
 */
export const RL_SCHEMA: z.ZodType<RlConfig, unknown> = z.strictObject({
  data: z.strictObject({
    source: z.enum(["arithmetic", "jsonl", "parquet"]),
    path: z.string(),
    evalPath: z.string(),
    promptField: z.string().min(1),
    answerField: z.string().min(1),
    trainSize: nonNegativeInt,
    evalSize: positiveInt,
  }),
  template: z.enum(["task", "dapo", "boxed"]),
  enableThinking: z.boolean(),
  groupSize: z.int().min(2),
  trainBatchPrompts: positiveInt,
  genBatchPrompts: positiveInt,
  maxGenBatches: positiveInt,
  onShortBatch: z.enum(["train", "stop"]),
  dynamicSampling: z.boolean(),
  alignKeepAllCorrect: z.boolean(),
  maxNewTokens: positiveInt,
  // `--rl.stopTokenIds=151645,151643` gives texts (the empty default names no element type).
  stopTokenIds: z.array(
    z.preprocess((x) => typeof x === "string" && /^\d+$/.test(x) ? Number(x) : x, nonNegativeInt),
  ),
  temperature: z.number().min(1e-6),
  topP: z.number().gt(0).max(1),
  topK: nonNegativeInt,
  mergeAdapters: z.enum(["auto", "on", "off"]),
  releaseWorkspaces: z.boolean(),
  gpuMemoryBudget: nonNegative,
  gpuMemoryHeadroom: z.number().min(0).lt(1),
  oldLogprobs: z.enum(["sampler", "recompute"]),
  reward: z.strictObject({
    mode: z.enum(["dapo", "binary"]),
    budgetMs: nonNegative,
    problemNouns: z.boolean(),
  }),
  overlong: z.strictObject({
    buffer: nonNegativeInt,
    factor: nonNegative,
    filter: z.boolean(),
  }),
  advantage: z.enum(["grpo", "drgrpo"]),
  ppoEpochs: positiveInt,
  miniBatches: positiveInt,
  microBatchSize: positiveInt,
  anchorMetrics: z.boolean(),
  losses: z.array(
    z.discriminatedUnion("name", [CLIPPED_PG, HIDDEN_ALIGN], {
      error: (issue) =>
        issue.code === "invalid_union"
          ? `must be one of ${RL_LOSS_NAMES.map((n) => `"${n}"`).join(", ")}`
          : undefined,
    }),
  ).min(1),
  eval: z.strictObject({
    every: nonNegativeInt,
    final: z.boolean(),
    prompts: positiveInt,
    samples: positiveInt,
    temperature: nonNegative,
    batchPrompts: nonNegativeInt.optional(),
  }),
  rollout: z.strictObject({
    backend: z.enum(["local", "vllm", "sglang", "llamacpp"]),
    servers: z.array(
      z.string().refine((u) => /^https?:\/\/[^/]/.test(u) && URL.canParse(u), {
        error: 'must be an http(s) URL such as "http://10.0.0.5:8000"',
      }),
    ),
    model: z.string(),
    adapterDir: z.string(),
    serverAdapterDir: z.string(),
    adapterPrefix: z.string().regex(/^[A-Za-z0-9_.-]+$/, {
      error: 'must be letters, digits, "_", "." or "-" (it names files and served adapters)',
    }),
    stalenessWindow: nonNegativeInt,
    timeoutMs: positiveInt,
    attempts: positiveInt,
    backoffMs: nonNegative,
    downMs: nonNegative,
    choiceRetries: nonNegativeInt,
    apiKeyEnv: z.string().regex(/^([A-Za-z_][A-Za-z0-9_]*)?$/, {
      error: "must be the NAME of an environment variable that holds the key (e.g. " +
        '"VLLM_API_KEY"), or "" for no key',
    }),
    maxSeqsInFlight: positiveInt,
    unloadStale: z.boolean(),
    preflight: z.boolean(),
    tis: z.strictObject({
      enabled: z.boolean(),
      cap: z.number().gt(0),
    }),
    async: z.strictObject({
      enabled: z.boolean(),
      maxStaleness: nonNegativeInt,
    }),
  }),
}) as unknown as z.ZodType<RlConfig, unknown>;

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Every default of the `rl` section, deeply frozen: DAPO's recipe (G = 16, ε 0.2/0.28,
 * token-mean, no KL or entropy term, temperature 1, top-p 1, dynamic sampling, an overlong
 * buffer, ±1 rewards) on the arithmetic task with its own template.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_RL_CONFIG } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(DEFAULT_RL_CONFIG.losses[0].name, "clipped_pg");
 * strictEqual(DEFAULT_RL_CONFIG.dynamicSampling, true);
 * ```
 */
export const DEFAULT_RL_CONFIG: RlConfig = deepFreeze<RlConfig>({
  data: {
    source: "arithmetic",
    path: "",
    evalPath: "",
    promptField: "prompt",
    answerField: "answer",
    trainSize: 0,
    evalSize: 100,
  },
  template: "task",
  enableThinking: false,
  groupSize: 16,
  trainBatchPrompts: 8,
  genBatchPrompts: 8,
  maxGenBatches: 4,
  onShortBatch: "train",
  dynamicSampling: true,
  alignKeepAllCorrect: false,
  maxNewTokens: 64,
  stopTokenIds: [],
  temperature: 1,
  topP: 1,
  topK: 0,
  mergeAdapters: "auto",
  releaseWorkspaces: true,
  gpuMemoryBudget: 0,
  gpuMemoryHeadroom: 0.1,
  oldLogprobs: "sampler",
  reward: { mode: "dapo", budgetMs: 0, problemNouns: true },
  overlong: { buffer: 16, factor: 1, filter: false },
  advantage: "grpo",
  ppoEpochs: 1,
  miniBatches: 1,
  microBatchSize: 32,
  anchorMetrics: true,
  losses: [{
    name: "clipped_pg",
    weight: 1,
    clipLow: 0.2,
    clipHigh: 0.28,
    dualClip: 0,
    aggregation: "token-mean",
  }],
  eval: { every: 10, final: true, prompts: 48, samples: 4, temperature: 1, batchPrompts: 0 },
  rollout: {
    backend: "local",
    servers: [],
    model: "",
    adapterDir: "",
    serverAdapterDir: "",
    adapterPrefix: "halo",
    stalenessWindow: 1,
    timeoutMs: 120_000,
    attempts: 4,
    backoffMs: 250,
    downMs: 10_000,
    choiceRetries: 2,
    apiKeyEnv: "",
    maxSeqsInFlight: 256,
    unloadStale: false,
    preflight: true,
    tis: { enabled: false, cap: 2 },
    async: { enabled: false, maxStaleness: 1 },
  },
});

/**
 * Checks of the `rl` section against the rest of the config and the model, run before any
 * work: the overlong buffer fits the response length, the generation budget
 * (`genBatchPrompts × maxGenBatches`) can fill the batch, the eval fits the held-out set, at most
 * one term of each name, an align layer that exists in the model, and a rollout backend that
 * can serve the run's adapters (remote engines serve plain LoRA only: no HILO, no full
 * fine-tuning) with the keys it needs.
 *
 * @param rl The `rl` section.
 * @param options `numHiddenLayers` of the model when known; `adaptersKind`, the run's
 *   `adapters.kind` (default `"lora"`: not checked); `dataTask`, the run's `data.task` (a
 *   `"suite"` is refused: RL reads no task suite; default not checked).
 * @returns Problems as `[key path, text]` (text after `key "<path>"`), empty when fine.
 *
 * @example A layer the model does not have
 * ```ts
 * import { DEFAULT_RL_CONFIG, rlConfigProblems } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const rl = {
 *   ...DEFAULT_RL_CONFIG,
 *   losses: [
 *     DEFAULT_RL_CONFIG.losses[0],
 *     {
 *       name: "hidden_align", weight: 0.1, type: "cos-centroid", anchor: "before-marker", layer: 5,
 *     } as const,
 *   ],
 * };
 * strictEqual(rlConfigProblems(rl, { numHiddenLayers: 2 })[0][0], "rl.losses[1].layer");
 * ```
 */
export function rlConfigProblems(
  rl: RlConfig,
  options: {
    numHiddenLayers?: number;
    adaptersKind?: "none" | "lora" | "hilo";
    dataTask?: "arithmetic" | "suite";
  } = {},
): [string, string][] {
  const problems: [string, string][] = [];
  if (options.dataTask === "suite") {
    // RL has no verifier or prompts for the suite's tasks: it would train on arithmetic.
    problems.push([
      "data.task",
      `must be "arithmetic" with "trainer.mode" "rl" (RL prompts come from "rl.data": the ` +
      `arithmetic task or a JSONL / Parquet file; the task suite is SFT-only): current value ` +
      `is "suite"`,
    ]);
  }
  problems.push(...rolloutProblems(rl, options.adaptersKind ?? "lora"));
  if (rl.overlong.buffer >= rl.maxNewTokens) {
    problems.push([
      "rl.overlong.buffer",
      `must be < "rl.maxNewTokens" (${rl.maxNewTokens}): current value is ${rl.overlong.buffer}`,
    ]);
  }
  if (rl.miniBatches > rl.trainBatchPrompts) {
    problems.push([
      "rl.miniBatches",
      `must be <= "rl.trainBatchPrompts" (${rl.trainBatchPrompts}): every optimizer update ` +
      `takes whole groups of a full batch, and the learning-rate schedule counts ` +
      `"rl.ppoEpochs" x "rl.miniBatches" updates a step: current value is ${rl.miniBatches}`,
    ]);
  }
  if (rl.genBatchPrompts * rl.maxGenBatches < rl.trainBatchPrompts) {
    const least = Math.ceil(rl.trainBatchPrompts / rl.genBatchPrompts);
    problems.push([
      "rl.maxGenBatches",
      `must be >= ${least} ("rl.trainBatchPrompts" (${rl.trainBatchPrompts}) / ` +
      `"rl.genBatchPrompts" (${rl.genBatchPrompts}), rounded up): "rl.genBatchPrompts" x ` +
      `"rl.maxGenBatches" = ${rl.genBatchPrompts * rl.maxGenBatches} prompts a step give ` +
      `fewer groups than the batch takes, so every step would train on a short batch (raise "rl.maxGenBatches" or "rl.genBatchPrompts", or lower ` +
      `"rl.trainBatchPrompts"): current value is ${rl.maxGenBatches}`,
    ]);
  }
  if (rl.eval.prompts > rl.data.evalSize) {
    problems.push([
      "rl.eval.prompts",
      `must be <= "rl.data.evalSize" (${rl.data.evalSize}): current value is ${rl.eval.prompts}`,
    ]);
  }
  if (rl.eval.temperature === 0 && rl.eval.samples !== 1) {
    problems.push([
      "rl.eval.samples",
      `must be 1 when "rl.eval.temperature" is 0 (greedy): current value is ${rl.eval.samples}`,
    ]);
  }
  if (rl.data.source === "arithmetic") {
    // The file keys would be silently ignored.
    for (const key of ["path", "evalPath", "promptField", "answerField"] as const) {
      if (rl.data[key] !== DEFAULT_RL_CONFIG.data[key]) {
        problems.push([
          `rl.data.${key}`,
          `is read only when "rl.data.source" is "jsonl" or "parquet", and it is "arithmetic": ` +
          `current value is ${JSON.stringify(rl.data[key])}`,
        ]);
      }
    }
  }
  if (rl.data.source !== "arithmetic" && rl.data.path === "") {
    problems.push([
      "rl.data.path",
      `must name a file when "rl.data.source" is "${rl.data.source}": current value is ""`,
    ]);
  }
  const seen = new Set<string>();
  rl.losses.forEach((term, i) => {
    if (seen.has(term.name)) {
      problems.push([
        `rl.losses[${i}].name`,
        `must not repeat a term: current value is "${term.name}"`,
      ]);
    }
    seen.add(term.name);
    const L = options.numHiddenLayers;
    if (term.name === "hidden_align" && term.layer !== "final" && L !== undefined) {
      if (term.layer > L - 2) {
        problems.push([
          `rl.losses[${i}].layer`,
          `must be "final" or a decoder layer in [0, ${L - 2}] (the model has ${L} layers; ` +
          `"final" is the last layer's output after the final RMSNorm, HF's hidden_states[-1]): ` +
          `current value is ${term.layer}`,
        ]);
      }
    }
    if (
      term.name === "hidden_align" && term.type === "cos-pairwise" &&
      rl.microBatchSize < rl.groupSize
    ) {
      problems.push([
        "rl.microBatchSize",
        `must be >= "rl.groupSize" (${rl.groupSize}) with the cos-pairwise align term ` +
        `(rl.losses[${i}]), which compares the rows of a group within one micro-batch: current ` +
        `value is ${rl.microBatchSize}`,
      ]);
    }
  });
  if (!rl.losses.some((t) => t.name === "clipped_pg")) {
    problems.push([
      "rl.losses",
      `must hold a "clipped_pg" term: current value is ${
        JSON.stringify(rl.losses.map((t) => t.name))
      }`,
    ]);
  }
  return problems;
}

/**
 * Keys of the `rl` section that are set but that nothing reads, as start-up warnings (as
 * `adapterKeyWarnings` for `adapters.*`): `alignKeepAllCorrect` without a `hidden_align` term
 * (no group is kept for the align term alone), or with `dynamicSampling` off (every usable group,
 * all-correct ones too, is then a policy group already). Warnings rather than problems: a config
 * that drops the align term or dynamic sampling by an override keeps its base's key, which is
 * fine.
 *
 * @param rl The `rl` section.
 * @returns One line each, empty when every set key is read.
 *
 * @example The key left over in a DAPO config
 * ```ts
 * import { DEFAULT_RL_CONFIG, rlKeyWarnings } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(rlKeyWarnings({ ...DEFAULT_RL_CONFIG, alignKeepAllCorrect: true }).length, 1);
 * ```
 */
export function rlKeyWarnings(rl: RlConfig): string[] {
  const warnings: string[] = [];
  if (rl.alignKeepAllCorrect) {
    const unread = `key "rl.alignKeepAllCorrect" is true but not read: `;
    if (!rl.losses.some((t) => t.name === "hidden_align")) {
      warnings.push(
        `${unread}"rl.losses" has no "hidden_align" term, so no all-correct group is kept for ` +
          `the align term`,
      );
    } else if (!rl.dynamicSampling) {
      warnings.push(
        `${unread}"rl.dynamicSampling" is false, so every usable group (all-correct ones too) ` +
          `is a policy group already and counts towards "rl.trainBatchPrompts"`,
      );
    }
  }
  return warnings;
}

function rolloutProblems(rl: RlConfig, adaptersKind: "none" | "lora" | "hilo"): [string, string][] {
  const r = rl.rollout;
  const problems: [string, string][] = [];
  if (r.tis.enabled && rl.oldLogprobs !== "recompute") {
    problems.push([
      "rl.rollout.tis.enabled",
      `must be false unless "rl.oldLogprobs" is "recompute" (with the sampler's log-probs as ` +
      `π_old every weight π_old / π_sampler is 1): current value is true`,
    ]);
  }
  if (r.backend === "local") {
    if (r.async.enabled) {
      problems.push([
        "rl.rollout.async.enabled",
        `must be false when "rl.rollout.backend" is "local" (halo's own sampler is the train ` +
        `backend, which cannot generate while it trains): current value is true`,
      ]);
    }
    return problems;
  }
  if (r.async.enabled && r.stalenessWindow < 1) {
    problems.push([
      "rl.rollout.stalenessWindow",
      `must be >= 1 when "rl.rollout.async.enabled" is true (the servers must keep the version ` +
      `the prefetched rollouts were drawn with while the next is loaded): current value is ` +
      `${r.stalenessWindow}`,
    ]);
  }
  if (rl.temperature !== 1 && (rl.topP < 1 || rl.topK > 0)) {
    problems.push([
      "rl.temperature",
      `must be 1 with remote rollouts and "rl.topP" < 1 or "rl.topK" > 0 (top-p ${rl.topP}, ` +
      `top-k ${rl.topK}): the old log-probs are those of softmax(logits / temperature) without ` +
      `truncation, and an inference server reports either the untempered model's (raw) or the ` +
      `truncated distribution's (processed) log-probs: current value is ${rl.temperature}`,
    ]);
  }
  const backend = `current value is "${r.backend}"`;
  if (adaptersKind === "hilo") {
    problems.push([
      "rl.rollout.backend",
      `must be "local" with "adapters.kind" "hilo": inference engines serve plain PEFT LoRA ` +
      `only, and a routed mixture of LoRA experts can be neither merged nor served, so HILO ` +
      `runs keep local rollouts: ${backend}`,
    ]);
  } else if (adaptersKind === "none") {
    problems.push([
      "rl.rollout.backend",
      `must be "local" with "adapters.kind" "none" (full fine-tuning): remote rollouts get each ` +
      `policy version as a LoRA adapter, and full-weight sync (SGLang update_weights_from_disk, ` +
      `experimental upstream) is not implemented: ${backend}`,
    ]);
  } else if (r.backend === "llamacpp") {
    problems.push([
      "rl.rollout.backend",
      `must be "vllm" or "sglang" with "adapters.kind" "lora": llama.cpp's server sets LoRA ` +
      `adapters server-wide at start-up, with no route to load each policy version under a new ` +
      `name, so the per-step adapter sync cannot reach it (llama.cpp rollouts go through ` +
      `runRl's sampleGroups hook with a GGUF export and a server restart per step, as in ` +
      `tests/llamacpp_server_test.ts): ${backend}`,
    ]);
  }
  if (r.servers.length === 0) {
    problems.push([
      "rl.rollout.servers",
      `must list at least one server URL when "rl.rollout.backend" is "${r.backend}": ` +
      `current value is []`,
    ]);
  }
  if (adaptersKind === "lora" && r.adapterDir === "") {
    problems.push([
      "rl.rollout.adapterDir",
      `must name a directory every server can read (the adapter of each policy version is ` +
      `written there) when "rl.rollout.backend" is "${r.backend}": current value is ""`,
    ]);
  }
  if (!r.preflight && r.model === "") {
    problems.push([
      "rl.rollout.model",
      `must name the served base model when "rl.rollout.preflight" is false (the preflight ` +
      `reads it from the models route): current value is ""`,
    ]);
  }
  return problems;
}

/**
 * A saved run config (a checkpoint's `meta.config`, as JSON) with `rl.rollout`,
 * `rl.releaseWorkspaces`, `rl.gpuMemoryBudget` and `rl.gpuMemoryHeadroom` filled from
 * {@linkcode DEFAULT_RL_CONFIG} when
 * it has an `rl` section without them: checkpoints written before `rl.rollout` existed sampled
 * locally with no importance weights, which is what the defaults say, and the GPU memory keys
 * change no result, so such checkpoints resume and compare equal to a config that leaves the keys
 * at their defaults. An `rl.rollout` section without `apiKeyEnv`, `maxSeqsInFlight` or
 * `unloadStale` gets `""` (no key), 256 (the pool's fixed cap then) and `false`. Any other value
 * is returned as it is.
 *
 * @param config The saved config.
 * @returns The config, copied where filled.
 *
 * @example A checkpoint config from before `rl.rollout`
 * ```ts
 * import { withRolloutDefaults } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const filled = withRolloutDefaults({ rl: { groupSize: 8 } }) as { rl: { rollout: { backend: string } } };
 * strictEqual(filled.rl.rollout.backend, "local");
 * ```
 */
export function withRolloutDefaults(config: unknown): unknown {
  if (typeof config !== "object" || config === null) return config;
  const rl = (config as { rl?: unknown }).rl;
  if (typeof rl !== "object" || rl === null || Array.isArray(rl)) return config;
  // Keys added later, which a saved config may lack: the defaults are what those runs did (the
  // GPU memory keys change no result, and resume lets them change anyway).
  const added = {
    rollout: () => structuredClone(DEFAULT_RL_CONFIG.rollout),
    releaseWorkspaces: () => DEFAULT_RL_CONFIG.releaseWorkspaces,
    gpuMemoryBudget: () => DEFAULT_RL_CONFIG.gpuMemoryBudget,
    gpuMemoryHeadroom: () => DEFAULT_RL_CONFIG.gpuMemoryHeadroom,
  };
  const missing = Object.keys(added).filter((k) => !(k in rl)) as (keyof typeof added)[];
  // rl.rollout keys added later: the runs before them sent no API key, kept 256 sequences in
  // flight per server and unloaded no other process's adapters.
  const rollout = (rl as { rollout?: unknown }).rollout;
  const rolloutAdded = { apiKeyEnv: "", maxSeqsInFlight: 256, unloadStale: false };
  const lacking = typeof rollout === "object" && rollout !== null && !Array.isArray(rollout)
    ? Object.entries(rolloutAdded).filter(([k]) => !(k in rollout))
    : [];
  if (missing.length === 0 && lacking.length === 0) return config;
  const filled: Record<string, unknown> = { ...rl };
  for (const k of missing) filled[k] = added[k]();
  if (lacking.length > 0) filled.rollout = { ...rollout as object, ...Object.fromEntries(lacking) };
  return { ...config, rl: filled };
}
