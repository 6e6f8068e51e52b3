/**
 * One no-gradient pass of the train backend over RL rows, before the update: the old log-probs
 * when they are recomputed, and the hidden state at each row's anchor token (for the group
 * centroids of the align term and the anchor-cosine metrics).
 *
 * @module
 */
import type { ForwardOptions, TrainBackend } from "../backend.ts";
import { collateRl, type RlRow } from "./rl_batch.ts";
import { withMicroBatchKey } from "./micro_batch_key.ts";

/**
 * Options of {@linkcode forwardPass}.
 *
 * @example Usage
 * ```ts
 * import type { ForwardPassOptions } from "./forward_pass.ts";
 *
 * const options: ForwardPassOptions = { padId: 0, microBatchSize: 16, layer: "final" };
 * ```
 */
export interface ForwardPassOptions {
  /** The padding id. */
  padId: number;
  /** Rows per forward (`rl.microBatchSize`, which a binding-limit error names). */
  microBatchSize: number;
  /**
   * Which hidden state to read at the anchors: `"final"` (the final-norm output) or decoder
   * layer `l`'s output (HF `hidden_states[l + 1]`); `null` reads none.
   */
  layer: "final" | number | null;
  /** Also return each row's response-token log-probs (float64). Default `false`. */
  logprobs?: boolean;
  /**
   * The log-probs are those of `softmax(logits / temperature)`, the policy rollouts sampled at
   * this temperature come from (`rl.temperature`); default 1, or the view's temperature when
   * `backend` is a `withTemperature` view.
   */
  temperature?: number;
}

/**
 * Result of {@linkcode forwardPass}.
 *
 * @example Usage
 * ```ts ignore
 * import type { ForwardPassResult } from "./forward_pass.ts";
 * declare const result: ForwardPassResult;
 * console.log(result.hidden[0]?.length);
 * ```
 */
export interface ForwardPassResult {
  /** Per row, the hidden state at its anchor (`null`: no anchor, or no layer asked). */
  hidden: (Float64Array | null)[];
  /** Per row, the log-probs of its response tokens (with `logprobs`). */
  logprobs: Float64Array[] | null;
}

/**
 * Runs the backend forward over the rows in micro-batches and gathers what the update needs.
 *
 * @param backend The train backend.
 * @param rows The rows.
 * @param options Padding, micro-batch size, layer, log-probs.
 * @returns Anchor hidden states and log-probs.
 *
 * @example The anchor state of one row on the fixture model
 * ```ts
 * import { forwardPass } from "./forward_pass.ts";
 * import { createTrainBackend } from "../backend.ts";
 * import { loadModel } from "../../model/load_model.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const model = await loadModel("tests/fixtures/qwen3-tiny", { backend: "cpu", warn: false });
 * const backend = createTrainBackend(model, { mode: "full" });
 * const row = {
 *   promptIds: [1, 2], tokens: [3, 4], oldLogprobs: new Float64Array(2), advantage: 0,
 *   policy: true, anchor: 2, group: 0, correct: true,
 * };
 * const { hidden, logprobs } = await forwardPass(backend, [row], {
 *   padId: 0, microBatchSize: 4, layer: "final", logprobs: true,
 * });
 * strictEqual(hidden[0]?.length, model.config.hiddenSize);
 * strictEqual(logprobs?.[0].length, 2);
 * ```
 */
export async function forwardPass(
  backend: TrainBackend,
  rows: readonly RlRow[],
  options: ForwardPassOptions,
): Promise<ForwardPassResult> {
  const H = backend.model.config.hiddenSize;
  const hidden: (Float64Array | null)[] = [];
  const logprobs: Float64Array[] | null = options.logprobs ? [] : null;
  for (let start = 0; start < rows.length; start += options.microBatchSize) {
    const chunk = rows.slice(start, start + options.microBatchSize);
    const batch = collateRl(chunk, { padId: options.padId });
    const input = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
    const T = batch.seqLen;
    let states: ArrayLike<number> | null = null;
    if (options.logprobs || options.layer !== null) {
      // One pass for both: the log-probs and the asked hidden state (the final-norm output, or
      // decoder layer `layer`'s), without materialising the logits or the other layers.
      // Only the anchors' rows of the hidden state come back (none without a layer).
      const anchors = options.layer === null
        ? []
        : chunk.flatMap((r, b) => r.anchor < 0 ? [] : [b * T + r.anchor]);
      const forward: ForwardOptions = { hiddenRows: anchors };
      if (options.temperature !== undefined) forward.temperature = options.temperature;
      if (typeof options.layer === "number") forward.hiddenLayer = options.layer;
      const out = await withMicroBatchKey(
        {
          what: "anchor/recompute pass",
          rows: chunk.length,
          seqLen: T,
          microBatchSize: options.microBatchSize,
        },
        () => backend.forward(input, forward),
      );
      if (logprobs) {
        chunk.forEach((r, b) => {
          const P = r.promptIds.length;
          const at = b * (T - 1) + P - 1;
          logprobs.push(out.logprobs.slice(at, at + r.tokens.length));
        });
      }
      if (options.layer !== null) {
        if (out.lastHidden?.length !== anchors.length * H) {
          throw new TypeError(
            `Cannot read the anchor hidden states: the ${backend.kind} backend's forward must ` +
              `return the ${anchors.length} asked rows (hiddenRows) of ${H} values: current ` +
              `length is ${out.lastHidden?.length}`,
          );
        }
        states = out.lastHidden;
      }
    }
    let k = 0;
    for (const r of chunk) {
      if (states === null || r.anchor < 0) {
        hidden.push(null);
        continue;
      }
      const at = k++ * H;
      hidden.push(Float64Array.from({ length: H }, (_, j) => states![at + j]));
    }
  }
  return { hidden, logprobs };
}
