/**
 * Reference of the embedding gather: row `ids[t]` of the `[vocab, h]` table for each token.
 *
 * @param ids Token ids.
 * @param table Embedding matrix `[vocab, h]`.
 * @param h Row length.
 * @returns `[ids.length, h]`.
 *
 * @example Gather row 1
 * ```ts
 * import { embeddingRef } from "./embedding_ref.ts";
 * console.log(embeddingRef([1], [1, 2, 3, 4], 2)); // [3, 4]
 * ```
 */
export function embeddingRef(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  h: number,
): Float64Array {
  const out = new Float64Array(ids.length * h);
  for (let t = 0; t < ids.length; t++) {
    for (let j = 0; j < h; j++) out[t * h + j] = table[ids[t] * h + j];
  }
  return out;
}
