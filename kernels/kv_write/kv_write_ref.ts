/** Shape of {@linkcode kvWriteRef}. */
export interface KvWriteRefOptions {
  /** Rows of the new keys. */
  rows: number;
  /** Tokens per row. */
  tokens: number;
  /** Cache capacity (slot stride). */
  slots: number;
  /** Width per token. */
  width: number;
  /** First cache row written; default 0. */
  row0?: number;
  /** First slot written (the decode cursor), or `undefined` for a prefill from slot 0. */
  cursor?: number;
}

/**
 * Reference of the KV cache write: copies `[rows, tokens, width]` into `[cacheRows, slots, width]`
 * at rows `row0 + r` and slots `(cursor ?? 0) + t` (slots past the capacity dropped); with a cursor
 * the written slots are also marked in the mask.
 *
 * @param cache The cache (one of k or v) and its mask; copies are returned.
 * @param fresh The new keys or values.
 * @param options Shape and where to write.
 * @returns The updated cache and mask.
 *
 * @example One token into slot 2 of a 4-slot cache
 * ```ts
 * import { kvWriteRef } from "./kv_write_ref.ts";
 * const r = kvWriteRef({ cache: new Float32Array(4), mask: new Uint32Array(4) }, [7], {
 *   rows: 1, tokens: 1, slots: 4, width: 1, cursor: 2,
 * });
 * console.log(r.cache, r.mask); // Float32Array [0, 0, 7, 0] Uint32Array [0, 0, 1, 0]
 * ```
 */
export function kvWriteRef(
  cache: { cache: ArrayLike<number>; mask: ArrayLike<number> },
  fresh: ArrayLike<number>,
  options: KvWriteRefOptions,
): { cache: Float32Array; mask: Uint32Array } {
  const { rows, tokens, slots, width } = options;
  const row0 = options.row0 ?? 0;
  const out = Float32Array.from(cache.cache);
  const mask = Uint32Array.from(cache.mask);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < tokens; t++) {
      const slot = (options.cursor ?? 0) + t;
      if (slot >= slots) continue;
      for (let w = 0; w < width; w++) {
        out[((row0 + r) * slots + slot) * width + w] = fresh[(r * tokens + t) * width + w];
      }
      if (options.cursor !== undefined) mask[(row0 + r) * slots + slot] = 1;
    }
  }
  return { cache: out, mask };
}
