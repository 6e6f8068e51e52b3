/**
 * Float64 reference of the backward of the embedding gather: row `t` of `dOut` is added to row
 * `ids[t]` of the `[vocab, h]` table gradient (rows of ids that do not occur stay 0).
 *
 * @param dOut Gradient of the gathered rows `[ids.length, h]`.
 * @param ids Token ids, in `[0, vocab)`.
 * @param options Vocabulary size and row length.
 * @returns The table gradient `[vocab, h]`.
 *
 * @example Token 1 twice
 * ```ts
 * import { embeddingBackwardRef } from "./embedding_backward_ref.ts";
 * console.log(embeddingBackwardRef([1, 2], [1, 1], { vocab: 2, h: 1 })); // [0, 3]
 * ```
 */
export function embeddingBackwardRef(
  dOut: ArrayLike<number>,
  ids: ArrayLike<number>,
  options: { vocab: number; h: number },
): Float64Array {
  const { vocab, h } = options;
  const dTable = new Float64Array(vocab * h);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new RangeError(
        `Cannot scatter embedding gradient: ids must be integers in [0, ${vocab}): current ` +
          `value at ${t} is ${id}`,
      );
    }
    for (let j = 0; j < h; j++) dTable[id * h + j] += dOut[t * h + j];
  }
  return dTable;
}
