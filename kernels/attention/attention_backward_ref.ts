import type { AttentionShape } from "./attention_ref.ts";

/** Gradients returned by {@linkcode attentionBackwardRef}. */
export interface AttentionBackwardRefResult {
  /** `dL/dq` `[b, tq, hq, d]`. */
  dq: Float64Array;
  /** `dL/dk` `[b, s, hkv, d]`, summed over the query heads of each key/value head. */
  dk: Float64Array;
  /** `dL/dv` `[b, s, hkv, d]`, summed over the query heads of each key/value head. */
  dv: Float64Array;
}

/**
 * Float64 reference of the backward of causal grouped-query attention with a key mask (the
 * forward is `attentionRef`). With `P` the softmax of the scaled scores of one query,
 * `dP_j = dO · v_j`, `dS_j = P_j · (dP_j − Σ_u P_u dP_u)`:
 * `dq = scale · Σ_j dS_j k_j`, `dk_j += scale · dS_j q`, `dv_j += P_j dO`. A query that sees no
 * key (zero output) contributes nothing.
 *
 * @param dO Gradient of the output `[b, tq, hq, d]`.
 * @param q Queries `[b, tq, hq, d]`.
 * @param k Keys `[b, s, hkv, d]`.
 * @param v Values `[b, s, hkv, d]`.
 * @param options Shape, `mask` (`[b, s]`, nonzero = real token; default all real) and causality,
 * as in the forward.
 * @returns `dq`, `dk` and `dv`.
 *
 * @example One query, one key: the output is v, so only dv is nonzero
 * ```ts
 * import { attentionBackwardRef } from "./attention_backward_ref.ts";
 * const g = attentionBackwardRef([1], [1], [2], [3], { b: 1, tq: 1, s: 1, hq: 1, hkv: 1, d: 1 });
 * console.log(g.dq, g.dk, g.dv); // [0] [0] [1]
 * ```
 */
export function attentionBackwardRef(
  dO: ArrayLike<number>,
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  options: AttentionShape & { mask?: ArrayLike<number> },
): AttentionBackwardRefResult {
  const { b: B, tq, s: S, hq, hkv, d: D } = options;
  const kvLen = options.kvLen ?? S;
  const qStart = options.qStart ?? 0;
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const group = hq / hkv;
  const dq = new Float64Array(B * tq * hq * D);
  const dk = new Float64Array(B * S * hkv * D);
  const dv = new Float64Array(B * S * hkv * D);
  const p = new Float64Array(S);
  const dp = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < tq; i++) {
      for (let h = 0; h < hq; h++) {
        const hk = Math.floor(h / group);
        const qb = ((b * tq + i) * hq + h) * D;
        const end = Math.min(kvLen, qStart + i + 1);
        let max = -Infinity;
        for (let j = 0; j < end; j++) {
          p[j] = -Infinity;
          if (options.mask && !options.mask[b * S + j]) continue;
          const kb = ((b * S + j) * hkv + hk) * D;
          let dot = 0;
          for (let x = 0; x < D; x++) dot += q[qb + x] * k[kb + x];
          p[j] = dot * scale;
          max = Math.max(max, p[j]);
        }
        if (max === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < end; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        let delta = 0;
        for (let j = 0; j < end; j++) {
          p[j] /= sum;
          const vb = ((b * S + j) * hkv + hk) * D;
          let dot = 0;
          for (let x = 0; x < D; x++) dot += dO[qb + x] * v[vb + x];
          dp[j] = dot;
          delta += p[j] * dot;
        }
        for (let j = 0; j < end; j++) {
          if (p[j] === 0) continue;
          const ds = p[j] * (dp[j] - delta) * scale;
          const kb = ((b * S + j) * hkv + hk) * D;
          for (let x = 0; x < D; x++) {
            dq[qb + x] += ds * k[kb + x];
            dk[kb + x] += ds * q[qb + x];
            dv[kb + x] += p[j] * dO[qb + x];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
