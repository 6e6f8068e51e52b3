/**
 * Validation and packing of a batch for the forward pass, shared by every backend so that bad
 * input gets the same clear error before any kernel runs.
 *
 * @module
 */
import type { Qwen3Config } from "./config.ts";

/** A batch of token sequences for {@linkcode Qwen3Model.forward}. */
export interface ForwardInput {
  /** Token ids `[batch][seqLen]`; every row has the same length (pad on the right). */
  inputIds: readonly (readonly number[])[];
  /** 1 for real tokens, 0 for padding, same shape as `inputIds`; default all 1. */
  attentionMask?: readonly (readonly number[])[];
  /** Also return every layer's hidden states; default false. */
  outputHiddenStates?: boolean;
}

/** A validated batch in the flat layout the kernels read. */
export interface PackedBatch {
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Token ids `[batch · seqLen]`. */
  ids: Uint32Array<ArrayBuffer>;
  /** Key mask `[batch · seqLen]`, 1 = real token. */
  mask: Uint32Array<ArrayBuffer>;
  /** Position of each token (0 .. seqLen − 1 in every row, as HF without position ids). */
  positions: Uint32Array<ArrayBuffer>;
  /** Next-token target of each position (−1 for the last position and masked targets). */
  targets: Int32Array<ArrayBuffer>;
}

/**
 * Checks a batch against the model config and packs it.
 *
 * @param input The batch.
 * @param config The model config (vocabulary size, context length).
 * @returns The packed batch.
 * @throws {TypeError} If the batch is not a non-empty rectangle of integers.
 * @throws {RangeError} If an id is outside the vocabulary, a mask value is not 0/1, or a sequence
 * is longer than `max_position_embeddings`.
 *
 * @example Pack one sequence
 * ```ts
 * import { packBatch } from "./forward_input.ts";
 * const cfg = { vocabSize: 10, maxPositionEmbeddings: 8 } as import("./config.ts").Qwen3Config;
 * console.log(packBatch({ inputIds: [[1, 2, 3]] }, cfg).targets); // Int32Array [2, 3, -1]
 * ```
 */
export function packBatch(input: ForwardInput, config: Qwen3Config): PackedBatch {
  const rows = input.inputIds;
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new TypeError("Cannot run the model: inputIds must be a non-empty array of sequences");
  }
  const seqLen = Array.isArray(rows[0]) ? rows[0].length : 0;
  if (seqLen === 0) {
    throw new TypeError("Cannot run the model: inputIds[0] must be a non-empty array of token ids");
  }
  if (seqLen > config.maxPositionEmbeddings) {
    throw new RangeError(
      `Cannot run the model: sequences must be at most max_position_embeddings = ` +
        `${config.maxPositionEmbeddings} tokens: current length is ${seqLen}`,
    );
  }
  const batch = rows.length;
  const n = batch * seqLen;
  const ids = new Uint32Array(n);
  const mask = new Uint32Array(n).fill(1);
  const positions = new Uint32Array(n);
  const targets = new Int32Array(n).fill(-1);
  const maskRows = input.attentionMask;
  if (maskRows !== undefined && (!Array.isArray(maskRows) || maskRows.length !== batch)) {
    throw new TypeError(
      `Cannot run the model: attentionMask must have ${batch} rows like inputIds: current value ` +
        `has ${Array.isArray(maskRows) ? maskRows.length : typeof maskRows}`,
    );
  }
  for (let b = 0; b < batch; b++) {
    const row = rows[b];
    if (!Array.isArray(row) || row.length !== seqLen) {
      throw new TypeError(
        `Cannot run the model: every row of inputIds must have ${seqLen} tokens (pad on the ` +
          `right and mask): inputIds[${b}] has ${Array.isArray(row) ? row.length : typeof row}`,
      );
    }
    const maskRow = maskRows?.[b];
    if (maskRows && (!Array.isArray(maskRow) || maskRow.length !== seqLen)) {
      throw new TypeError(
        `Cannot run the model: attentionMask[${b}] must have ${seqLen} values like inputIds[${b}]`,
      );
    }
    for (let t = 0; t < seqLen; t++) {
      const id = row[t];
      if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
        throw new RangeError(
          `Cannot run the model: inputIds[${b}][${t}] must be a token id in [0, ` +
            `${config.vocabSize}): current value is ${id}`,
        );
      }
      ids[b * seqLen + t] = id;
      positions[b * seqLen + t] = t;
      if (maskRow) {
        const m = maskRow[t];
        if (m !== 0 && m !== 1) {
          throw new RangeError(
            `Cannot run the model: attentionMask[${b}][${t}] must be 0 or 1: current value is ${m}`,
          );
        }
        mask[b * seqLen + t] = m;
      }
    }
    for (let t = 0; t + 1 < seqLen; t++) {
      if (mask[b * seqLen + t + 1]) targets[b * seqLen + t] = ids[b * seqLen + t + 1];
    }
  }
  return { batch, seqLen, ids, mask, positions, targets };
}
