/** Tensors of one AdamW update: the parameters with their gradient and moments. */
export interface AdamwRefState {
  /** Parameters. */
  param: ArrayLike<number>;
  /** Gradient (before `gradScale`). */
  grad: ArrayLike<number>;
  /** First moment. */
  m: ArrayLike<number>;
  /** Second moment. */
  v: ArrayLike<number>;
}

/** Hyperparameters of {@linkcode adamwRef}. */
export interface AdamwRefOptions {
  /** Learning rate. */
  lr: number;
  /** First-moment decay. */
  b1: number;
  /** Second-moment decay. */
  b2: number;
  /** Denominator epsilon. */
  eps: number;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** 1-based step number `t` of this update (for the bias corrections). */
  step: number;
  /** Multiplier of the gradient (clip factor × accumulation averaging); default 1. */
  gradScale?: number;
}

/** The updated tensors of {@linkcode adamwRef}. */
export interface AdamwRefResult {
  /** New parameters. */
  param: Float64Array;
  /** New first moment. */
  m: Float64Array;
  /** New second moment. */
  v: Float64Array;
}

/**
 * Float64 reference of one `torch.optim.AdamW` step on `g = grad · gradScale`:
 * `p ← p·(1 − lr·wd)`, `m ← b1·m + (1−b1)·g`, `v ← b2·v + (1−b2)·g²`,
 * `p ← p − lr/(1−b1^t) · m / (sqrt(v)/sqrt(1−b2^t) + eps)`.
 *
 * @param state Parameters, gradient and moments (not modified).
 * @param options Hyperparameters and the step number.
 * @returns The new parameters and moments.
 *
 * @example The first step moves each parameter by lr against the gradient's sign
 * ```ts
 * import { adamwRef } from "./adamw_ref.ts";
 * const r = adamwRef(
 *   { param: [1, 1], grad: [0.5, -3], m: [0, 0], v: [0, 0] },
 *   { lr: 0.1, b1: 0.9, b2: 0.999, eps: 0, weightDecay: 0, step: 1 },
 * );
 * console.log(r.param); // ≈ [0.9, 1.1]
 * ```
 */
export function adamwRef(state: AdamwRefState, options: AdamwRefOptions): AdamwRefResult {
  const { lr, b1, b2, eps, weightDecay, step, gradScale = 1 } = options;
  const n = state.param.length;
  const param = new Float64Array(n);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const bc1 = 1 - b1 ** step;
  const bc2 = 1 - b2 ** step;
  for (let i = 0; i < n; i++) {
    const g = state.grad[i] * gradScale;
    m[i] = b1 * state.m[i] + (1 - b1) * g;
    v[i] = b2 * state.v[i] + (1 - b2) * g * g;
    const decayed = state.param[i] * (1 - lr * weightDecay);
    param[i] = decayed - (lr / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps));
  }
  return { param, m, v };
}
