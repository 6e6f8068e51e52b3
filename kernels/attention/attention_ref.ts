/** Shape and masking of {@linkcode attentionRef}. */
export interface AttentionShape {
  /** Batch size. */
  b: number;
  /** Queries per sequence. */
  tq: number;
  /** Key/value slots per sequence (the batch stride of `k`, `v` and `mask`). */
  s: number;
  /** Slots `0 .. kvLen` are candidates; default `s`. */
  kvLen?: number;
  /** Position of query 0; query `i` sees slots `j <= qStart + i`; default 0. */
  qStart?: number;
  /** Query heads. */
  hq: number;
  /** Key/value heads (divides `hq`). */
  hkv: number;
  /** Head dimension. */
  d: number;
  /** Score scale; default `1 / sqrt(d)`. */
  scale?: number;
}

/**
 * Float64 reference of causal grouped-query attention with a key mask. A query that sees no key
 * gets zeros.
 *
 * @param q Queries `[b, tq, hq, d]`.
 * @param k Keys `[b, s, hkv, d]`.
 * @param v Values `[b, s, hkv, d]`.
 * @param options Shape, `mask` (`[b, s]`, nonzero = real token; default all real) and causality.
 * @returns Outputs `[b, tq, hq, d]`.
 *
 * @example One query, one key
 * ```ts
 * import { attentionRef } from "./attention_ref.ts";
 * console.log(attentionRef([1], [2], [3], { b: 1, tq: 1, s: 1, hq: 1, hkv: 1, d: 1 })); // [3]
 * ```
 */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  options: AttentionShape & { mask?: ArrayLike<number> },
): Float64Array {
  const { b: B, tq, s: S, hq, hkv, d: D } = options;
  const kvLen = options.kvLen ?? S;
  const qStart = options.qStart ?? 0;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const group = hq / hkv;
  const o = new Float64Array(B * tq * hq * D);
  const scores = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < tq; i++) {
      for (let h = 0; h < hq; h++) {
        const hk = Math.floor(h / group);
        const qb = ((b * tq + i) * hq + h) * D;
        const end = Math.min(kvLen, qStart + i + 1);
        let max = -Infinity;
        for (let j = 0; j < end; j++) {
          if (options.mask && !options.mask[b * S + j]) {
            scores[j] = -Infinity;
            continue;
          }
          const kb = ((b * S + j) * hkv + hk) * D;
          let dot = 0;
          for (let x = 0; x < D; x++) dot += q[qb + x] * k[kb + x];
          scores[j] = dot * scale;
          max = Math.max(max, scores[j]);
        }
        if (max === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < end; j++) {
          scores[j] = Math.exp(scores[j] - max);
          sum += scores[j];
        }
        for (let j = 0; j < end; j++) {
          const p = scores[j] / sum;
          if (p === 0) continue;
          const vb = ((b * S + j) * hkv + hk) * D;
          for (let x = 0; x < D; x++) o[qb + x] += p * v[vb + x];
        }
      }
    }
  }
  return o;
}
