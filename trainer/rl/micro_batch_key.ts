/**
 * Names the config key behind a micro-batch that does not fit the device: the WebGPU model
 * refuses a call whose activations (tokens × the widest per-token buffer) exceed one storage
 * binding, with a message about its own buffers ("use fewer tokens per call"). In an RL run the
 * tokens per call are `rl.microBatchSize` rows × (prompt + response) tokens, so the anchor,
 * recompute and training passes rethrow that error naming `rl.microBatchSize`.
 *
 * @module
 */

/**
 * The micro-batch a call ran on.
 *
 * @example Usage
 * ```ts
 * import type { MicroBatchShape } from "./micro_batch_key.ts";
 *
 * const shape: MicroBatchShape = { what: "anchor pass", rows: 32, seqLen: 1280, microBatchSize: 32 };
 * ```
 */
export interface MicroBatchShape {
  /** The pass, for the message ("anchor pass", "training step"). */
  what: string;
  /** Rows in the micro-batch. */
  rows: number;
  /** Tokens per row (padded). */
  seqLen: number;
  /** The `rl.microBatchSize` in force. */
  microBatchSize: number;
}

/**
 * Runs `call`; a binding-limit `RangeError` from it is rethrown naming `rl.microBatchSize` (the
 * model's message kept as the `cause` and at the end of the message). Other errors pass as they
 * are.
 *
 * @param shape The micro-batch.
 * @param call The backend call on it.
 * @returns What `call` returns.
 * @throws {RangeError} Naming `rl.microBatchSize`, when the micro-batch does not fit one binding.
 *
 * @example A refused micro-batch names the key
 * ```ts
 * import { withMicroBatchKey } from "./micro_batch_key.ts";
 * import { rejects } from "node:assert/strict";
 *
 * const shape = { what: "anchor pass", rows: 32, seqLen: 1280, microBatchSize: 32 };
 * await rejects(
 *   withMicroBatchKey(shape, () => {
 *     throw new RangeError('activation "gate" needs 3e9 bytes, more than one storage binding');
 *   }),
 *   /"rl\.microBatchSize"/,
 * );
 * ```
 */
export async function withMicroBatchKey<T>(
  shape: MicroBatchShape,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof RangeError) || !/more than one storage binding/.test(error.message)) {
      throw error;
    }
    const { what, rows, seqLen, microBatchSize } = shape;
    throw new RangeError(
      `Cannot run the RL ${what} on a micro-batch of ${rows} rows × ${seqLen} tokens ` +
        `(${rows * seqLen} tokens): its activations do not fit one storage binding of the ` +
        `device; lower key "rl.microBatchSize" (current value ${microBatchSize}) or ` +
        `"rl.maxNewTokens". The model said: ${error.message}`,
      { cause: error },
    );
  }
}
