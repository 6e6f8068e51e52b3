/**
 * An objective as data: the registered terms of a config (`LossSpec[]`) and the per-batch inputs
 * they read besides the model's outputs (masks, old log-probs, advantages, anchors, groups, …).
 * A train backend given a request instead of a closure can run the terms where the model's
 * outputs already are: the CPU backend evaluates {@linkcode objectiveTerm} in float64; the WebGPU
 * backend records the loss kernels inside the training step, so log-probs and hidden states
 * never leave the GPU.
 *
 * @module
 */
import type { LossOutput, LossTerm } from "../types.ts";
import { createObjective, type LossInputs, type LossSpec } from "./registry.ts";

/**
 * What the terms of an objective read besides the model's outputs: {@linkcode LossInputs}
 * without `logprobs`, `lastHidden`, `batch` and `seqLen`.
 *
 * @example The inputs of a clipped policy loss on one sequence of three tokens
 * ```ts
 * import type { ObjectiveInputs } from "./objective_request.ts";
 * const inputs: ObjectiveInputs = {
 *   lossMask: [0, 1],
 *   oldLogprobs: [0, -1.2],
 *   advantages: [0, 0.5],
 * };
 * ```
 */
export type ObjectiveInputs = Omit<LossInputs, "logprobs" | "lastHidden" | "batch" | "seqLen">;

/**
 * A loss sum as data: which registered terms with which weights and options, and their inputs.
 *
 * @example DAPO plus a tenth of Hidden-Align
 * ```ts
 * import type { ObjectiveRequest } from "./objective_request.ts";
 * const request: ObjectiveRequest = {
 *   terms: [{ name: "clipped_pg" }, { name: "hidden_align", weight: 0.1 }],
 *   inputs: { lossMask: [1], oldLogprobs: [-1], advantages: [1], anchors: [0], groups: [0], correct: [1] },
 * };
 * ```
 */
export interface ObjectiveRequest {
  /** The terms, weights and options (see `createObjective`). */
  terms: readonly LossSpec[];
  /** Their inputs besides the model's outputs. */
  inputs: ObjectiveInputs;
  /**
   * The policy the terms' log-probs (and the entropy metric) are taken from:
   * `softmax(logits / temperature)`, the distribution RL rollouts sampled at `rl.temperature`
   * come from; the backend's forward and backward both use it (the gradient reaches the logits
   * times `1 / temperature`). A finite number ≥ 1e-6; default 1 (the raw model).
   */
  temperature?: number;
}

/**
 * What a model computed on a batch, as {@linkcode objectiveTerm} reads it (the fields of the
 * trainer's `PolicyOutputs`).
 *
 * @example Outputs of one sequence of two tokens
 * ```ts
 * import type { ObjectiveOutputs } from "./objective_request.ts";
 * const outputs: ObjectiveOutputs = { logprobs: [-0.5], entropy: [1.1], batch: 1, seqLen: 2 };
 * ```
 */
export interface ObjectiveOutputs {
  /** Token log-probs `[batch, seqLen − 1]`. */
  logprobs: ArrayLike<number>;
  /** Hidden states `[batch, seqLen, hidden]`, for terms that read them. */
  lastHidden?: ArrayLike<number>;
  /** Next-token entropies `[batch, seqLen − 1]`, logged when given. */
  entropy?: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/**
 * The policy-entropy metrics of a batch: `"policy/entropy"`, the mean next-token entropy over the
 * positions where `mask` is 1 (the response tokens that count), and `"policy/entropy_tokens"`,
 * their number (0 and 0 when there is none). Logged, not optimised.
 *
 * @param entropy Entropies `[batch, seqLen − 1]`.
 * @param mask 0/1 per position, same layout.
 * @returns The metrics.
 * @throws {RangeError} When the lengths differ.
 *
 * @example Two counted positions
 * ```ts
 * import { entropyMetrics } from "./objective_request.ts";
 * console.log(entropyMetrics([9, 1, 3], [0, 1, 1])); // { "policy/entropy": 2, "policy/entropy_tokens": 2 }
 * ```
 */
export function entropyMetrics(
  entropy: ArrayLike<number>,
  mask: ArrayLike<number>,
): Record<string, number> {
  if (entropy.length !== mask.length) {
    throw new RangeError(
      `Cannot average the policy entropy: "entropy" has ${entropy.length} values and "lossMask" ` +
        `${mask.length}; both must be [batch, seqLen − 1]`,
    );
  }
  let sum = 0;
  let n = 0;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] !== 0) {
      sum += entropy[i];
      n++;
    }
  }
  return { "policy/entropy": n > 0 ? sum / n : 0, "policy/entropy_tokens": n };
}

/**
 * The float64 loss term of a request: `createObjective(request.terms)` evaluated on the model's
 * outputs merged with `request.inputs`, plus {@linkcode entropyMetrics} when the outputs carry
 * entropies and the inputs a `lossMask`.
 *
 * @param request The terms and their inputs.
 * @returns The loss term.
 * @throws {TypeError} On an unknown term name or option (at the call, as `createObjective`).
 *
 * @example The clipped policy loss of one token
 * ```ts
 * import { objectiveTerm } from "./objective_request.ts";
 * const term = objectiveTerm({
 *   terms: [{ name: "clipped_pg" }],
 *   inputs: { lossMask: [1], oldLogprobs: [-1], advantages: [2] },
 * });
 * const out = term({ logprobs: [-1], entropy: [0.7], batch: 1, seqLen: 2 });
 * console.log(out.value, out.metrics["policy/entropy"]); // -2 0.7
 * ```
 */
export function objectiveTerm(request: ObjectiveRequest): LossTerm<ObjectiveOutputs> {
  const objective = createObjective(request.terms);
  const { inputs } = request;
  return (out): LossOutput => {
    const loss = objective({
      ...inputs,
      logprobs: out.logprobs,
      lastHidden: out.lastHidden,
      batch: out.batch,
      seqLen: out.seqLen,
    });
    if (out.entropy === undefined || inputs.lossMask === undefined) return loss;
    return {
      ...loss,
      metrics: { ...loss.metrics, ...entropyMetrics(out.entropy, inputs.lossMask) },
    };
  };
}
