/**
 * Float64 references of the grouped HILO dispatch: the per-expert token index
 * (`hilo_grouped_index.wgsl`) and one expert's gated output on its tokens
 * (`hilo_grouped_expert.wgsl`).
 *
 * @module
 */

/** Result of {@linkcode hiloGroupedIndexRef}. */
export interface HiloGroupedIndexRef {
  /** Tokens per expert `[E]`. */
  counts: number[];
  /** Exclusive prefix sum of `counts` `[E]`. */
  offsets: number[];
  /** Expert e's tokens, ascending, at `[offsets[e], offsets[e] + counts[e])`. */
  lists: number[];
}

/**
 * The tokens each expert takes: those whose gate for it is non-zero.
 *
 * @param gates Router gates `[m, E]` (0 outside each token's selected set).
 * @param experts E.
 * @returns Counts, offsets and the concatenated ascending lists.
 *
 * @example Three tokens, two experts
 * ```ts
 * import { hiloGroupedIndexRef } from "./hilo_grouped_ref.ts";
 * const r = hiloGroupedIndexRef([1, 0, 0.4, 0.6, 0, 1], 2);
 * console.log(r.counts, r.offsets, r.lists); // [2, 2] [0, 2] [0, 1, 1, 2]
 * ```
 */
export function hiloGroupedIndexRef(
  gates: ArrayLike<number>,
  experts: number,
): HiloGroupedIndexRef {
  const m = gates.length / experts;
  const counts: number[] = [];
  const offsets: number[] = [];
  const lists: number[] = [];
  for (let e = 0; e < experts; e++) {
    offsets.push(lists.length);
    for (let t = 0; t < m; t++) if (gates[t * experts + e] !== 0) lists.push(t);
    counts.push(lists.length - offsets[e]);
  }
  return { counts, offsets, lists };
}

/** Options of {@linkcode hiloGroupedExpertRef}. */
export interface HiloGroupedExpertRefOptions {
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
  /** The expert's rank. */
  r: number;
  /** Experts E (row width of `gates`). */
  experts: number;
  /** Which expert. */
  expert: number;
  /** The expert's output factor. */
  scale: number;
}

/**
 * One expert's gated output `g[t, e]·scale·(x[t]·Aᵀ)·Bᵀ` on the tokens with a non-zero gate for
 * it (0 on the other rows).
 *
 * @param x Input `[m, in]`.
 * @param ab The expert's `A` `[r, in]` and `B` `[out, r]`.
 * @param gates Router gates `[m, E]`.
 * @param options Shapes, the expert and its scale.
 * @returns The contribution `[m, out]`.
 *
 * @example One token, rank 1, gate 0.5
 * ```ts
 * import { hiloGroupedExpertRef } from "./hilo_grouped_ref.ts";
 * const y = hiloGroupedExpertRef([2], { a: [3], b: [1, -1] }, [0.5], {
 *   inFeatures: 1, outFeatures: 2, r: 1, experts: 1, expert: 0, scale: 2,
 * });
 * console.log(Array.from(y)); // [6, -6]
 * ```
 */
export function hiloGroupedExpertRef(
  x: ArrayLike<number>,
  ab: { a: ArrayLike<number>; b: ArrayLike<number> },
  gates: ArrayLike<number>,
  options: HiloGroupedExpertRefOptions,
): Float64Array {
  const { inFeatures: inF, outFeatures: outF, r, experts: E, expert, scale } = options;
  const m = x.length / inF;
  const y = new Float64Array(m * outF);
  const u = new Float64Array(r);
  for (let t = 0; t < m; t++) {
    const g = gates[t * E + expert];
    if (g === 0) continue;
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[t * inF + k] * ab.a[c * inF + k];
      u[c] = s * g * scale;
    }
    for (let n = 0; n < outF; n++) {
      let s = 0;
      for (let c = 0; c < r; c++) s += u[c] * ab.b[n * r + c];
      y[t * outF + n] = s;
    }
  }
  return y;
}

/** Result of {@linkcode hiloGroupedBackwardRef}. */
export interface HiloGroupedBackwardRef {
  /** Gradient of `A` `[r, in]`. */
  dA: Float64Array;
  /** Gradient of `B` `[out, r]`. */
  dB: Float64Array;
  /** The expert's part of the input gradient `[m, in]` (0 on tokens it did not take). */
  dx: Float64Array;
  /** Gate gradient `dg[t] = scale·(dy[t]·B)·(x[t]·Aᵀ)` `[m]`, on the expert's tokens (else 0). */
  dg: Float64Array;
}

/**
 * One expert's backward on the tokens with a non-zero gate for it: with `u = x·Aᵀ`,
 * `du = scale·dy·B` per token, `dg = Σ du·u`, `dB = scale·Σ_t dy[t]ᵀ·(g·u)`,
 * `dA = Σ_t (g·du)ᵀ·x[t]`, `dx[t] = (g·du)·A`.
 *
 * @param x Input `[m, in]`.
 * @param ab The expert's `A` `[r, in]` and `B` `[out, r]`.
 * @param dy Gradient of the output `[m, out]`.
 * @param gates Router gates `[m, E]`.
 * @param options Shapes, the expert and its scale.
 * @returns The gradients.
 *
 * @example One token, rank 1, gate 0.5
 * ```ts
 * import { hiloGroupedBackwardRef } from "./hilo_grouped_ref.ts";
 * const g = hiloGroupedBackwardRef([2], { a: [3], b: [1] }, [1], [0.5], {
 *   inFeatures: 1, outFeatures: 1, r: 1, experts: 1, expert: 0, scale: 1,
 * });
 * console.log(g.dg[0], g.dB[0], g.dA[0], g.dx[0]); // 6 3 1 1.5
 * ```
 */
export function hiloGroupedBackwardRef(
  x: ArrayLike<number>,
  ab: { a: ArrayLike<number>; b: ArrayLike<number> },
  dy: ArrayLike<number>,
  gates: ArrayLike<number>,
  options: HiloGroupedExpertRefOptions,
): HiloGroupedBackwardRef {
  const { inFeatures: inF, outFeatures: outF, r, experts: E, expert, scale } = options;
  const m = x.length / inF;
  const out: HiloGroupedBackwardRef = {
    dA: new Float64Array(r * inF),
    dB: new Float64Array(outF * r),
    dx: new Float64Array(m * inF),
    dg: new Float64Array(m),
  };
  const u = new Float64Array(r);
  const du = new Float64Array(r);
  for (let t = 0; t < m; t++) {
    const g = gates[t * E + expert];
    if (g === 0) continue;
    let dg = 0;
    for (let c = 0; c < r; c++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += x[t * inF + k] * ab.a[c * inF + k];
      u[c] = s;
      let d = 0;
      for (let n = 0; n < outF; n++) d += dy[t * outF + n] * ab.b[n * r + c];
      du[c] = scale * d;
      dg += du[c] * u[c];
    }
    out.dg[t] = dg;
    for (let n = 0; n < outF; n++) {
      for (let c = 0; c < r; c++) out.dB[n * r + c] += scale * dy[t * outF + n] * g * u[c];
    }
    for (let c = 0; c < r; c++) {
      for (let k = 0; k < inF; k++) {
        out.dA[c * inF + k] += g * du[c] * x[t * inF + k];
        out.dx[t * inF + k] += g * du[c] * ab.a[c * inF + k];
      }
    }
  }
  return out;
}
