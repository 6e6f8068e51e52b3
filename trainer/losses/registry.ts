/**
 * Loss terms by name, so that a run config picks and weighs them: `"clipped_pg"`,
 * `"hidden_align"` and `"sft"`, each a factory from its config options to a
 * {@linkcode LossTerm} over {@linkcode LossInputs}.
 *
 * @module
 */
import type { LossTerm } from "../types.ts";
import { sftLoss } from "../sft_loss.ts";
import { type Aggregation, AGGREGATIONS } from "./agg_loss.ts";
import { clippedPolicyLoss } from "./clipped_policy_loss.ts";
import { ALIGN_TYPES, type AlignType, hiddenAlignLoss } from "./hidden_align_loss.ts";
import { sumLosses, type WeightedLossTerm } from "./sum_losses.ts";
import { checkName, checkOption, describe } from "./_validate.ts";

/**
 * What a registered loss term reads: the model's outputs on a micro-batch (as a train backend's
 * `PolicyOutputs`) and the batch's own data. A term throws a TypeError naming a field it needs
 * and did not get.
 *
 * @example The inputs of a policy-gradient term on one sequence of three tokens
 * ```ts
 * import type { LossInputs } from "./registry.ts";
 * const inputs: LossInputs = {
 *   logprobs: new Float64Array([-1, -2]),
 *   batch: 1,
 *   seqLen: 3,
 *   oldLogprobs: [-1, -2],
 *   advantages: [0.5, 0.5],
 *   lossMask: [1, 1],
 * };
 * ```
 */
export interface LossInputs {
  /** Token log-probs `[batch, seqLen − 1]`. */
  logprobs: ArrayLike<number>;
  /** Hidden states `[batch, seqLen, hidden]` (needed by `"hidden_align"`). */
  lastHidden?: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** 1 on tokens that count, `[batch, seqLen − 1]` (`"clipped_pg"`, `"sft"`). */
  lossMask?: ArrayLike<number>;
  /** Log-probs of the sampling policy, `[batch, seqLen − 1]` (`"clipped_pg"`). */
  oldLogprobs?: ArrayLike<number>;
  /** Per-token advantages, `[batch, seqLen − 1]` (`"clipped_pg"`). */
  advantages?: ArrayLike<number>;
  /**
   * Constant per-token weights of the policy loss, `[batch, seqLen − 1]` (`"clipped_pg"`; the
   * truncated importance-sampling weights of off-policy rollouts); default none (all 1).
   */
  tokenWeights?: ArrayLike<number>;
  /** Anchor position per sequence, −1 for none (`"hidden_align"`). */
  anchors?: ArrayLike<number>;
  /** Prompt group per sequence (`"hidden_align"`). */
  groups?: ArrayLike<number>;
  /** Verifier correctness per sequence (`"hidden_align"`). */
  correct?: ArrayLike<number | boolean>;
  /** Stop-gradient targets of groups split across micro-batches (`"hidden_align"`). */
  centroids?: ReadonlyMap<number, ArrayLike<number>>;
  /**
   * Per-micro-batch normalizers by loss name (e.g. the mini-batch's token count for
   * `"clipped_pg"`), overriding the factory's `normalizer` option.
   */
  normalizers?: Partial<Record<LossName, number>>;
}

/**
 * Config options of the `"clipped_pg"` term: `clippedPolicyLoss`'s options that do not depend
 * on the batch.
 *
 * @example DAPO's settings
 * ```ts
 * import type { ClippedPgConfig } from "./registry.ts";
 * const config: ClippedPgConfig = { clipLow: 0.2, clipHigh: 0.28, aggregation: "token-mean" };
 * ```
 */
export interface ClippedPgConfig {
  /** Default 0.2. */
  clipLow?: number;
  /** Default 0.28. */
  clipHigh?: number;
  /** Dual-clip constant (> 1); default none. */
  dualClip?: number;
  /** Default `"token-mean"`. */
  aggregation?: Aggregation;
  /** Fixed normalizer (usually given per micro-batch in `LossInputs.normalizers`). */
  normalizer?: number;
  /** Token budget of `"seq-mean-token-sum-norm"`. */
  maxResponseLength?: number;
}

/**
 * Config options of the `"hidden_align"` term.
 *
 * @example The pairwise variant
 * ```ts
 * import type { HiddenAlignConfig } from "./registry.ts";
 * const config: HiddenAlignConfig = { type: "cos-pairwise" };
 * ```
 */
export interface HiddenAlignConfig {
  /** Default `"cos-centroid"`. */
  type?: AlignType;
  /** Fixed normalizer (usually given per micro-batch in `LossInputs.normalizers`). */
  normalizer?: number;
}

/**
 * Config options of the `"sft"` term.
 *
 * @example A fixed normalizer
 * ```ts
 * import type { SftConfig } from "./registry.ts";
 * const config: SftConfig = { normalizer: 4096 };
 * ```
 */
export interface SftConfig {
  /** Fixed normalizer; default the token count of the input. */
  normalizer?: number;
}

/**
 * Config options of each registered loss, by name.
 *
 * @example Options of the policy loss
 * ```ts
 * import type { LossConfigs } from "./registry.ts";
 * const options: LossConfigs["clipped_pg"] = { clipHigh: 0.28 };
 * ```
 */
export interface LossConfigs {
  /** `clippedPolicyLoss`. */
  clipped_pg: ClippedPgConfig;
  /** `hiddenAlignLoss`. */
  hidden_align: HiddenAlignConfig;
  /** `sftLoss`. */
  sft: SftConfig;
}

/**
 * The name of a registered loss.
 *
 * @example A name
 * ```ts
 * import type { LossName } from "./registry.ts";
 * const name: LossName = "hidden_align";
 * ```
 */
export type LossName = keyof LossConfigs;

/**
 * A loss factory: config options in, loss term out.
 *
 * @typeParam C The options.
 *
 * @example A factory of a constant term
 * ```ts
 * import type { LossFactory } from "./registry.ts";
 * const zero: LossFactory<Record<string, never>> = () => () => ({ value: 0, grad: {}, metrics: {} });
 * ```
 */
export type LossFactory<C> = (options: C) => LossTerm<LossInputs>;

function need<T>(name: LossName, inputs: LossInputs, key: keyof LossInputs): T {
  const v = inputs[key];
  if (v === undefined) {
    throw new TypeError(
      `Cannot evaluate loss "${name}": the input has no "${key}", which this term reads`,
    );
  }
  return v as T;
}

function checkLogprobs(name: LossName, inputs: LossInputs): void {
  const { logprobs, batch, seqLen } = inputs;
  const n = batch * (seqLen - 1);
  if (logprobs?.length !== n) {
    throw new RangeError(
      `Cannot evaluate loss "${name}": "logprobs" must have ${n} values ([batch, seqLen − 1] = ` +
        `${batch}·(${seqLen} − 1)): current length is ${logprobs?.length}`,
    );
  }
}

function checkKeys(name: LossName, options: object, known: readonly string[]): void {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot create loss "${name}": its options must be an object: current value is ` +
        describe(options),
    );
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `Cannot create loss "${name}": unknown option "${key}": known options are ` +
          known.map((k) => `"${k}"`).join(", "),
      );
    }
  }
}

/**
 * The registered loss factories by name.
 *
 * @example Create the SFT term
 * ```ts
 * import { LOSS_FACTORIES } from "./registry.ts";
 * const sft = LOSS_FACTORIES.sft({});
 * const out = sft({ logprobs: [-1, -3], lossMask: [1, 1], batch: 1, seqLen: 3 });
 * console.log(out.value); // 2
 * ```
 */
export const LOSS_FACTORIES: { readonly [K in LossName]: LossFactory<LossConfigs[K]> } = {
  clipped_pg(options) {
    const where = `Cannot create loss "clipped_pg"`;
    checkKeys("clipped_pg", options, [
      "clipLow",
      "clipHigh",
      "dualClip",
      "aggregation",
      "normalizer",
      "maxResponseLength",
    ]);
    if (options.aggregation !== undefined) {
      checkName(where, "aggregation", options.aggregation, AGGREGATIONS);
    }
    checkOption(where, "clipLow", options.clipLow, (x) => x >= 0 && x < 1, "a number in [0, 1)");
    checkOption(where, "clipHigh", options.clipHigh, (x) => x >= 0, "a finite number ≥ 0");
    checkOption(where, "dualClip", options.dualClip, (x) => x > 1, "a finite number > 1");
    checkOption(where, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
    checkOption(
      where,
      "maxResponseLength",
      options.maxResponseLength,
      (x) => x > 0,
      "a finite number > 0",
    );
    const config = { ...options };
    return (inputs) => {
      checkLogprobs("clipped_pg", inputs);
      return clippedPolicyLoss({
        ...config,
        logprobs: inputs.logprobs,
        oldLogprobs: need("clipped_pg", inputs, "oldLogprobs"),
        advantages: need("clipped_pg", inputs, "advantages"),
        lossMask: need("clipped_pg", inputs, "lossMask"),
        ...(inputs.tokenWeights !== undefined ? { tokenWeights: inputs.tokenWeights } : {}),
        batch: inputs.batch,
        normalizer: inputs.normalizers?.clipped_pg ?? config.normalizer,
      });
    };
  },
  hidden_align(options) {
    const where = `Cannot create loss "hidden_align"`;
    checkKeys("hidden_align", options, ["type", "normalizer"]);
    if (options.type !== undefined) checkName(where, "type", options.type, ALIGN_TYPES);
    checkOption(where, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
    const config = { ...options };
    return (inputs) => {
      const hidden = need<ArrayLike<number>>("hidden_align", inputs, "lastHidden");
      const rows = inputs.batch * inputs.seqLen;
      const hiddenSize = rows > 0 ? hidden.length / rows : 0;
      return hiddenAlignLoss({
        hidden,
        batch: inputs.batch,
        seqLen: inputs.seqLen,
        hiddenSize: Number.isInteger(hiddenSize) ? hiddenSize : NaN,
        anchors: need("hidden_align", inputs, "anchors"),
        groups: need("hidden_align", inputs, "groups"),
        correct: need("hidden_align", inputs, "correct"),
        type: config.type,
        normalizer: inputs.normalizers?.hidden_align ?? config.normalizer,
        centroids: inputs.centroids,
      });
    };
  },
  sft(options) {
    const where = `Cannot create loss "sft"`;
    checkKeys("sft", options, ["normalizer"]);
    checkOption(where, "normalizer", options.normalizer, (x) => x > 0, "a finite number > 0");
    const config = { ...options };
    return (inputs) => {
      checkLogprobs("sft", inputs);
      return sftLoss({
        logprobs: inputs.logprobs,
        lossMask: need("sft", inputs, "lossMask"),
        normalizer: inputs.normalizers?.sft ?? config.normalizer,
      });
    };
  },
};

/**
 * Every registered loss name.
 *
 * @example List them
 * ```ts
 * import { LOSS_NAMES } from "./registry.ts";
 * console.log(LOSS_NAMES); // ["clipped_pg", "hidden_align", "sft"]
 * ```
 */
export const LOSS_NAMES: readonly LossName[] = Object.keys(LOSS_FACTORIES) as LossName[];

/**
 * Creates a registered loss term by name.
 *
 * @typeParam K The loss name.
 * @param name `"clipped_pg"`, `"hidden_align"` or `"sft"`.
 * @param options The term's config options (unknown keys are an error); default `{}`.
 * @returns The loss term over {@linkcode LossInputs}.
 * @throws {TypeError} On an unknown name, an unknown option or an unknown enum value.
 * @throws {RangeError} On an option out of range.
 *
 * @example The DAPO policy loss
 * ```ts
 * import { createLoss } from "./registry.ts";
 * const pg = createLoss("clipped_pg", { clipHigh: 0.28 });
 * const out = pg({
 *   logprobs: [-1],
 *   oldLogprobs: [-1],
 *   advantages: [2],
 *   lossMask: [1],
 *   batch: 1,
 *   seqLen: 2,
 * });
 * console.log(out.value); // -2
 * ```
 */
export function createLoss<K extends LossName>(
  name: K,
  options: LossConfigs[K] = {} as LossConfigs[K],
): LossTerm<LossInputs> {
  if (!(LOSS_NAMES as readonly string[]).includes(name)) {
    throw new TypeError(
      `Cannot create a loss: name must be one of ${LOSS_NAMES.map((n) => `"${n}"`).join(", ")}: ` +
        `current value is ${describe(name)}`,
    );
  }
  return (LOSS_FACTORIES[name] as LossFactory<LossConfigs[K]>)(options);
}

/**
 * One entry of an objective: a registered loss, its weight and its options (a config's
 * `losses:` list).
 *
 * @example Hidden-Align at weight 0.1
 * ```ts
 * import type { LossSpec } from "./registry.ts";
 * const spec: LossSpec = { name: "hidden_align", weight: 0.1, options: { type: "cos-centroid" } };
 * ```
 */
export type LossSpec = {
  [K in LossName]: { name: K; weight?: number; options?: LossConfigs[K] };
}[LossName];

/**
 * The objective of a run: `sumLosses` over the registered terms a config names.
 *
 * @param specs The terms, weights and options.
 * @returns The summed loss term.
 * @throws {TypeError} On an unknown name or option (see {@linkcode createLoss}).
 * @throws {RangeError} As `sumLosses` (non-finite weight; a metric logged twice, at the call).
 *
 * @example DAPO plus a tenth of Hidden-Align
 * ```ts
 * import { createObjective } from "./registry.ts";
 * const objective = createObjective([
 *   { name: "clipped_pg" },
 *   { name: "hidden_align", weight: 0.1 },
 * ]);
 * const out = objective({
 *   logprobs: [-1, -1],
 *   lastHidden: [9, 9, 1, 0, 9, 9, 0, 1],
 *   batch: 2,
 *   seqLen: 2,
 *   oldLogprobs: [-1, -1],
 *   advantages: [1, 1],
 *   lossMask: [1, 1],
 *   anchors: [1, 1],
 *   groups: [0, 0],
 *   correct: [1, 1],
 * });
 * console.log(Object.keys(out.metrics).includes("align/loss")); // true
 * ```
 */
export function createObjective(specs: readonly LossSpec[]): LossTerm<LossInputs> {
  const terms: WeightedLossTerm<LossInputs>[] = specs.map((s) => ({
    term: createLoss(s.name, s.options),
    weight: s.weight,
    name: s.name,
  }));
  return sumLosses(terms);
}
