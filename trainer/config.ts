/**
 * The run configuration: the {@linkcode TrainConfig} types and the one frozen
 * {@linkcode DEFAULT_CONFIG} holding every default. A run's YAML file (read by
 * `cli/load_config.ts`) spells its keys exactly as the fields here, sets only what differs from
 * the defaults, and may not use any other key.
 *
 * @example Read a default
 * ```ts
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * strictEqual(DEFAULT_CONFIG.model.path, "builtin:tiny");
 * ok(Object.isFrozen(DEFAULT_CONFIG.trainer));
 * ```
 *
 * @module
 */
import { deepFreeze } from "../internal/deep_freeze.ts";

import { DEFAULT_RL_CONFIG, type RlConfig } from "../trainer/rl/config.ts";

/**
 * Where the model math runs: `"webgpu"`, `"cpu"` (the float64 references), or `"auto"` (WebGPU
 * when an adapter is found, else CPU).
 *
 * @example Usage
 * ```ts
 * import type { BackendChoice } from "./config.ts";
 *
 * const backend: BackendChoice = "auto";
 * ```
 */
export type BackendChoice = "webgpu" | "cpu" | "auto";

/**
 * A linear layer of a Qwen3 decoder layer that an adapter can wrap (PEFT `target_modules` names).
 *
 * @example Usage
 * ```ts
 * import type { AdapterTarget } from "./config.ts";
 *
 * const attention: AdapterTarget[] = ["q_proj", "k_proj", "v_proj", "o_proj"];
 * ```
 */
export type AdapterTarget =
  | "q_proj"
  | "k_proj"
  | "v_proj"
  | "o_proj"
  | "gate_proj"
  | "up_proj"
  | "down_proj";

/**
 * An operator of the arithmetic task.
 *
 * @example Usage
 * ```ts
 * import type { ArithmeticOpName } from "./config.ts";
 *
 * const ops: ArithmeticOpName[] = ["+", "*"];
 * ```
 */
export type ArithmeticOpName = "+" | "-" | "*";

/**
 * A task of the multi-task suite (`data/task_suite.ts`).
 *
 * @example Usage
 * ```ts
 * import type { SuiteTaskName } from "./config.ts";
 *
 * const tasks: SuiteTaskName[] = ["arithmetic", "sort", "count", "base"];
 * ```
 */
export type SuiteTaskName = "arithmetic" | "sort" | "count" | "base";

/**
 * The `data.suite` keys: the task mix of `data.task: "suite"`.
 *
 * @example Usage
 * ```ts
 * import type { SuiteDataConfig } from "./config.ts";
 *
 * const suite: SuiteDataConfig = { tasks: ["arithmetic", "sort"], level: 1 };
 * ```
 */
export interface SuiteDataConfig {
  /**
   * The tasks, in equal shares (each gets `data.trainSize` training and `data.evalSize` held-out
   * problems, and `eval.samples` of them are scored); non-empty, no repeats. The arithmetic task
   * uses the `data` knobs `digits`, `ops`, `maxTerms`, `mulDigits`.
   */
  readonly tasks: readonly SuiteTaskName[];
  /** Difficulty of the sort / count / base tasks, 1 to 4 (`data/synthetic_tasks.ts`). */
  readonly level: number;
}

/**
 * The `run` section: what the run is called and where it writes.
 *
 * @example Usage
 * ```ts
 * import type { RunConfig } from "./config.ts";
 *
 * const run: RunConfig = { name: "tiny_sft", outDir: "out", seed: 0 };
 * ```
 */
export interface RunConfig {
  /** The run's name: letters, digits, `.`, `_`, `-`; checkpoints go to `<outDir>/<name>/`. */
  readonly name: string;
  /** The directory that holds all runs. */
  readonly outDir: string;
  /** Seed of the parameter init, dropout and sampling (a non-negative safe integer). */
  readonly seed: number;
}

/**
 * The `model` section: a HuggingFace Qwen3 directory, or `"builtin:tiny"` for a fresh random
 * init of the shape given by the other fields (for a directory its config.json gives the shape:
 * a field set to another value than both its default and the directory's is refused).
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CONFIG, type ModelConfig } from "./config.ts";
 *
 * const model: ModelConfig = { ...DEFAULT_CONFIG.model, path: "checkpoints/qwen3-0.6b" };
 * ```
 */
export interface ModelConfig {
  /** A model directory (`config.json`, `*.safetensors`, tokenizer), or `"builtin:tiny"`. */
  readonly path: string;
  /** Width of the residual stream (`hidden_size`). */
  readonly hidden: number;
  /** Number of decoder layers (`num_hidden_layers`). */
  readonly layers: number;
  /** Number of query heads (`num_attention_heads`). */
  readonly heads: number;
  /** Number of key/value heads (`num_key_value_heads`); must divide `heads`. */
  readonly kvHeads: number;
  /** Width of one attention head (`head_dim`); even, for RoPE. */
  readonly headDim: number;
  /** Width of the SwiGLU MLP (`intermediate_size`). */
  readonly intermediate: number;
  /** Rows of the embedding (`vocab_size`); at least the tokenizer's vocabulary. */
  readonly vocab: number;
  /** Longest sequence, prompt plus completion (`max_position_embeddings`). */
  readonly maxPositions: number;
  /** RoPE base frequency (`rope_theta`). */
  readonly ropeTheta: number;
  /** Epsilon of every RMSNorm (`rms_norm_eps`). */
  readonly rmsNormEps: number;
  /** Whether the LM head shares the embedding matrix (`tie_word_embeddings`). */
  readonly tieEmbeddings: boolean;
  /** Standard deviation of the normal init of weight matrices (`initializer_range`). */
  readonly initStd: number;
  /**
   * WebGPU storage of the weight matrices: `"f32"` or `"f16"` (half the memory, f32 arithmetic;
   * frozen, so for `adapters.kind` lora / hilo). The CPU backend computes in float64 from the
   * f32 weights either way.
   */
  readonly weightDtype: "f32" | "f16";
  /**
   * WebGPU storage of generation's KV cache: `"f32"` or `"f16"` (half the memory, keys and values
   * rounded to f16, attention in f32; any adapter). The CPU backend ignores it (float64).
   * Values beyond f16's range are stored clamped to ±65504, without a warning (Qwen3's keys
   * follow a norm and its values are projections of a normed input, so such values are not
   * expected). With `"f16"` the sampler's log-probs see the rounded keys and values while the
   * training forward does not, so with the default `rl.oldLogprobs: "sampler"` the importance
   * ratio is not exactly 1 before the first update (on the 2-layer test fixture a token's
   * log-prob moves by up to 2.8e-4, the relative norm over all tokens by 2e-5 to 4e-5; more
   * layers and longer contexts are not measured): use `rl.oldLogprobs: "recompute"` where that
   * matters.
   */
  readonly kvDtype: "f32" | "f16";
  /**
   * WebGPU: decoder layers recorded per `queue.submit` in the long recordings (forward, token
   * log-probs, training steps, generation's prefill), so that no one submission runs long enough
   * for an OS GPU watchdog to reset the device; an integer ≥ 0 (0: one submission per
   * recording), or `null` (default) for the adapter's default: 1 on a hardware adapter, 0 on a
   * software one. Results are the same bits either way; it may change on resume. The CPU backend
   * ignores it.
   */
  readonly submitEveryLayers: number | null;
}

/**
 * The `adapters` section: which parameters train. `"none"` trains the whole model; `"lora"`
 * freezes it and trains LoRA adapters (PEFT semantics: scale `alpha / r`, or `alpha / sqrt(r)`
 * with `rslora`).
 *
 * @example Usage
 * ```ts
 * import { type AdaptersConfig, DEFAULT_CONFIG } from "./config.ts";
 *
 * const lora: AdaptersConfig = { ...DEFAULT_CONFIG.adapters, kind: "lora", r: 16, alpha: 32 };
 * ```
 */
export interface AdaptersConfig {
  /**
   * `"none"` (full fine-tuning), `"lora"`, or `"hilo"` (LoRA mixtures of experts whose expert
   * count and rank vary by layer: the `hilo` keys; `targets` and `dropout` apply, `r`, `alpha`
   * and the patterns do not).
   */
  readonly kind: "none" | "lora" | "hilo";
  /** The linear layers to wrap (PEFT `target_modules`); non-empty, no repeats. */
  readonly targets: readonly AdapterTarget[];
  /** The rank (PEFT `r`). */
  readonly r: number;
  /** The scale numerator (PEFT `lora_alpha`). */
  readonly alpha: number;
  /** Ranks that differ from `r`, by module name or pattern (PEFT `rank_pattern`). */
  readonly rankPattern: Readonly<Record<string, number>>;
  /** Alphas that differ from `alpha`, by module name or pattern (PEFT `alpha_pattern`). */
  readonly alphaPattern: Readonly<Record<string, number>>;
  /** Dropout on the adapter input, in `[0, 1)` (PEFT `lora_dropout`). */
  readonly dropout: number;
  /** Rank-stabilised scaling `alpha / sqrt(r)` (PEFT `use_rslora`). */
  readonly rslora: boolean;
  /** The HILO allocation and routing (`kind: "hilo"`; see `adapters/hilo.ts`). */
  readonly hilo: HiloAdaptersConfig;
}

/**
 * The HILO keys of the `adapters` section. Schedules are `"2-4-6-8"` (equal layer blocks, shallow
 * to deep), `"uniform:4"`, a number, or one value per layer.
 *
 * @example Experts 8-6-4-2 and ranks 2-4-6-8
 * ```ts
 * import { DEFAULT_CONFIG, type HiloAdaptersConfig } from "./config.ts";
 * const hilo: HiloAdaptersConfig = { ...DEFAULT_CONFIG.adapters.hilo, experts: "8-6-4-2", rank: "2-4-6-8" };
 * ```
 */
export interface HiloAdaptersConfig {
  /** Experts per layer E_l (1 = plain LoRA, no router). */
  readonly experts: string | number | readonly number[];
  /** Rank per layer r_l. */
  readonly rank: string | number | readonly number[];
  /** α of every layer, or with `alphaPerRank` the factor c of `α_l = c·r_l`. */
  readonly alpha: number;
  /** `α_l = alpha · r_l` (every layer's scale is then `alpha`). */
  readonly alphaPerRank: boolean;
  /** k of top-k per layer; `null`: `min(2, E_l)`. */
  readonly topK: string | number | readonly number[] | null;
  /** `"top-k"` or `"top-p"` routing. */
  readonly activation: "top-k" | "top-p";
  /** Probability mass of top-p routing, in (0, 1]. */
  readonly topP: number;
  /**
   * Coefficient of the load-balancing loss (0: off, as MoLA's code): `E · Σ_e f_e·P_e` per routed
   * projection over each micro-batch's tokens, summed over projections and layers, the step's
   * term the mean over its micro-batches; logged as `"loss/balance"` (before the coefficient).
   */
  readonly balanceCoef: number;
}

/**
 * The `data` section: the task and its difficulty knobs (see `data/arithmetic_task.ts`).
 *
 * @example Usage
 * ```ts
 * import { type DataConfig, DEFAULT_CONFIG } from "./config.ts";
 *
 * const harder: DataConfig = { ...DEFAULT_CONFIG.data, digits: 3, maxTerms: 3 };
 * ```
 */
export interface DataConfig {
  /**
   * The task: the built-in `"arithmetic"`, or `"suite"`: the tasks of `data.suite` in equal
   * shares, with a held-out exact-answer accuracy per task (`eval/accuracy/<task>`) and overall.
   */
  readonly task: "arithmetic" | "suite";
  /** Seed of the problem generator (kept apart from `run.seed` so eval sets match across runs). */
  readonly seed: number;
  /** Most digits of an operand, 1 to 6. */
  readonly digits: number;
  /** The operators to draw from; non-empty, no repeats. */
  readonly ops: readonly ArithmeticOpName[];
  /** Most operands of a problem, 2 to 4 (1 to 3 operations). */
  readonly maxTerms: number;
  /** Most digits of the right operand of `*`, 1 to 3. */
  readonly mulDigits: number;
  /**
   * Number of distinct training problems; the trainer cycles through them. The knobs bound it
   * (2-digit problems with one operation number about 19 000), and generating too many throws.
   */
  readonly trainSize: number;
  /** Number of distinct held-out problems (per task with `"suite"`). */
  readonly evalSize: number;
  /** The task mix of `task: "suite"` (ignored otherwise). */
  readonly suite: SuiteDataConfig;
}

/**
 * The `trainer` section: the objective, the batch and the AdamW optimizer with its schedule.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CONFIG, type TrainerConfig } from "./config.ts";
 *
 * const short: TrainerConfig = { ...DEFAULT_CONFIG.trainer, steps: 10, warmupSteps: 0 };
 * ```
 */
export interface TrainerConfig {
  /**
   * `"sft"`: supervised fine-tuning on the worked solutions; `"rl"`: DAPO (plus the loss terms
   * of the `rl` section) on verifiable rewards.
   */
  readonly mode: "sft" | "rl";
  /** Number of optimizer steps. */
  readonly steps: number;
  /** Sequences per optimizer step. */
  readonly batchSize: number;
  /** Gradient-accumulation chunks per step; must divide `batchSize`. */
  readonly microBatches: number;
  /** Peak learning rate. */
  readonly lr: number;
  /** Steps of linear warmup from 0 to `lr`. */
  readonly warmupSteps: number;
  /** After warmup: `"constant"`, or `"cosine"` decay to `lr * minLrRatio` at `steps`. */
  readonly schedule: "constant" | "cosine";
  /** Final learning rate of the cosine schedule as a share of `lr`, in `[0, 1]`. */
  readonly minLrRatio: number;
  /** Decoupled weight decay of AdamW. */
  readonly weightDecay: number;
  /** Clip the global gradient norm to this; `0` disables clipping. */
  readonly maxGradNorm: number;
  /**
   * Where AdamW runs: `"device"` keeps parameters, gradients and moments on the GPU (`GpuAdamw`:
   * no gradient readback, one readback of the norm per update; WebGPU backend only), `"host"`
   * reads the gradients back and runs the host chain, `"auto"` is `"device"` on WebGPU and
   * `"host"` on the CPU. The same update either way; checkpoints hold the host chain's state.
   */
  readonly optimizer: "auto" | "host" | "device";
  /** Adam's first-moment decay, in `[0, 1)`. */
  readonly b1: number;
  /** Adam's second-moment decay, in `[0, 1)`. */
  readonly b2: number;
  /** Adam's epsilon, > 0. */
  readonly eps: number;
  /**
   * WebGPU: keep every trained layer's forward activations for the backward instead of
   * recomputing each layer's forward from its saved input (`TrainStepOptions.keepActivations`):
   * about a quarter of a LoRA step's FLOPs fewer, the same gradients bit for bit, for
   * `4 · tokens · 3·(hidden + heads·headDim + kvHeads·headDim + intermediate)` bytes per trained
   * layer below the last (`keptActivationBytes`), `tokens` those of one micro-batch: Qwen3-0.6B at
   * 4096 tokens (8 × 512) ≈ 27 × 352 MB ≈ 9.5 GB; and when the LM head runs in blocks (logits over
   * one binding) every block's logits, `4 · (tokens − blockRows) · vocab` bytes more
   * (`keptLogitsBytes`, ≈ 350 MB there), so the head is not recomputed either. Default false.
   * Ignored on the CPU backend.
   */
  readonly keepActivations: boolean;
}

/**
 * The `eval` section: held-out accuracy by greedy generation.
 *
 * @example Usage
 * ```ts
 * import type { EvalConfig } from "./config.ts";
 *
 * const evalConfig: EvalConfig = { every: 50, final: true, samples: 100, maxNewTokens: 48 };
 * ```
 */
export interface EvalConfig {
  /**
   * Evaluate every this many steps (and after the last unless `final` is `false`); `0` evaluates
   * only after the last.
   */
  readonly every: number;
  /**
   * Evaluate after the last step even when `every` does not fall on it (default `true`). `false`
   * with `every: 0` switches the held-out evaluation off: no step-0 evaluation either, no
   * `eval/*` metrics. `deno task hilo-experiment` refuses `false` (it compares the runs' final
   * held-out accuracies).
   */
  readonly final: boolean;
  /** Held-out problems per evaluation; at most `data.evalSize`. */
  readonly samples: number;
  /** Most tokens to generate per problem. */
  readonly maxNewTokens: number;
}

/**
 * The `checkpoint` section.
 *
 * @example Usage
 * ```ts
 * import type { CheckpointConfig } from "./config.ts";
 *
 * const checkpoint: CheckpointConfig = { every: 100, keep: 3 };
 * ```
 */
export interface CheckpointConfig {
  /** Save every this many steps (and after the last); `0` saves only after the last. */
  readonly every: number;
  /** Keep the newest this many checkpoints, deleting older ones; `0` keeps all. */
  readonly keep: number;
}

/**
 * The whole run configuration, as one YAML file spells it.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CONFIG, type TrainConfig } from "./config.ts";
 *
 * const config: TrainConfig = {
 *   ...DEFAULT_CONFIG,
 *   trainer: { ...DEFAULT_CONFIG.trainer, lr: 3e-4 },
 * };
 * ```
 */
export interface TrainConfig {
  /** Name, output directory and seed. */
  readonly run: RunConfig;
  /** The model to train. */
  readonly model: ModelConfig;
  /** Which parameters train. */
  readonly adapters: AdaptersConfig;
  /** The task. */
  readonly data: DataConfig;
  /** Objective, batch and optimizer. */
  readonly trainer: TrainerConfig;
  /** Held-out evaluation. */
  readonly eval: EvalConfig;
  /** Checkpoint cadence and retention. */
  readonly checkpoint: CheckpointConfig;
  /** Where the model math runs. */
  readonly backend: BackendChoice;
  /** RL: data, rollouts, rewards, dynamic sampling, loss terms (`trainer/rl/config.ts`). */
  readonly rl: RlConfig;
}

/**
 * Every default, deeply frozen: a full fine-tune (SFT) of a fresh 2-layer Qwen3 (`builtin:tiny`,
 * 64 wide, vocabulary sized for the arithmetic tokenizer) on 2-digit arithmetic.
 *
 * @example Usage
 * ```ts
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { strictEqual, throws } from "node:assert/strict";
 *
 * strictEqual(DEFAULT_CONFIG.trainer.mode, "sft");
 * strictEqual(DEFAULT_CONFIG.checkpoint.keep, 3);
 * throws(() => {
 *   (DEFAULT_CONFIG.trainer as { lr: number }).lr = 1;
 * }, TypeError);
 * ```
 */
export const DEFAULT_CONFIG: TrainConfig = deepFreeze<TrainConfig>({
  run: {
    name: "run",
    outDir: "out",
    seed: 0,
  },
  model: {
    path: "builtin:tiny",
    hidden: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    intermediate: 192,
    vocab: 64,
    maxPositions: 256,
    ropeTheta: 10000,
    rmsNormEps: 1e-6,
    tieEmbeddings: true,
    initStd: 0.02,
    weightDtype: "f32",
    kvDtype: "f32",
    submitEveryLayers: null,
  },
  adapters: {
    kind: "none",
    targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    r: 8,
    alpha: 16,
    rankPattern: {},
    alphaPattern: {},
    dropout: 0,
    rslora: false,
    hilo: {
      experts: "uniform:4",
      rank: "uniform:8",
      alpha: 16,
      alphaPerRank: false,
      topK: null,
      activation: "top-k",
      topP: 0.8,
      balanceCoef: 0,
    },
  },
  data: {
    task: "arithmetic",
    seed: 0,
    digits: 2,
    ops: ["+", "-", "*"],
    maxTerms: 2,
    mulDigits: 1,
    trainSize: 10000,
    evalSize: 200,
    suite: { tasks: ["arithmetic", "sort", "count", "base"], level: 1 },
  },
  trainer: {
    mode: "sft",
    steps: 1000,
    batchSize: 32,
    microBatches: 1,
    lr: 1e-3,
    warmupSteps: 50,
    schedule: "cosine",
    minLrRatio: 0.1,
    weightDecay: 0.01,
    maxGradNorm: 1,
    optimizer: "auto",
    b1: 0.9,
    b2: 0.95,
    eps: 1e-8,
    keepActivations: false,
  },
  eval: {
    every: 100,
    final: true,
    samples: 200,
    maxNewTokens: 64,
  },
  checkpoint: {
    every: 200,
    keep: 3,
  },
  backend: "auto",
  rl: DEFAULT_RL_CONFIG,
});
