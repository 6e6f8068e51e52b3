/**
 * Float64 reference of the `hidden_align` kernel: `hiddenAlignLoss` (the CPU loss) with the
 * kernel's inputs (group indices, a target buffer and its mask) and outputs.
 *
 * @module
 */
import { type AlignType, hiddenAlignLoss } from "./hidden_align_loss.ts";
import { HIDDEN_ALIGN_METRICS } from "../../kernels/hidden_align/hidden_align.ts";

/** Options of {@linkcode hiddenAlignRef}: the kernel's inputs as host arrays. */
export interface HiddenAlignRefOptions {
  /** Hidden states `[batch, seqLen, hiddenSize]`. */
  hidden: ArrayLike<number>;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Hidden size. */
  hiddenSize: number;
  /** Anchor per sequence (−1: none). */
  anchors: ArrayLike<number>;
  /** Group index per sequence. */
  groups: ArrayLike<number>;
  /** Correctness per sequence (0/1). */
  correct: ArrayLike<number>;
  /** Targets `[numGroups, hiddenSize]`, used where `centroidMask` is 1. */
  centroids?: ArrayLike<number>;
  /** 1 where `centroids` holds the group's target. */
  centroidMask?: ArrayLike<number>;
  /** Default `"cos-centroid"`. */
  type?: AlignType;
  /** Replaces N (P for `"cos-pairwise"`). */
  normalizer?: number;
  /** Scale of the gradient; default 1. */
  weight?: number;
}

/**
 * The kernel's `out[0..4)` (in {@linkcode HIDDEN_ALIGN_METRICS} order) and its `dLastHidden`, in
 * float64.
 *
 * @param options The kernel's inputs.
 * @returns `out` (4 values) and `dLastHidden`.
 *
 * @example Two orthogonal rows
 * ```ts
 * import { hiddenAlignRef } from "./hidden_align_ref.ts";
 * const ref = hiddenAlignRef({
 *   hidden: [1, 0, 0, 1], batch: 2, seqLen: 1, hiddenSize: 2,
 *   anchors: [0, 0], groups: [0, 0], correct: [1, 1],
 * });
 * console.log(ref.out[0]); // 1 − √½ ≈ 0.293
 * ```
 */
export function hiddenAlignRef(
  options: HiddenAlignRefOptions,
): { out: Float64Array; dLastHidden: Float64Array } {
  const { weight = 1, centroids, centroidMask, ...rest } = options;
  let map: Map<number, Float64Array> | undefined;
  if (centroids !== undefined && centroidMask !== undefined) {
    map = new Map();
    const H = options.hiddenSize;
    for (let g = 0; g < centroidMask.length; g++) {
      if (centroidMask[g] !== 0) {
        map.set(g, Float64Array.from({ length: H }, (_, j) => centroids[g * H + j]));
      }
    }
  }
  const res = hiddenAlignLoss({ ...rest, centroids: map });
  const out = Float64Array.from(HIDDEN_ALIGN_METRICS, (k) => res.metrics[k]);
  const dLastHidden = res.grad.dLastHidden!.map((g) => weight * g);
  return { out, dLastHidden };
}
