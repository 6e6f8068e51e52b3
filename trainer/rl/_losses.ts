// TEMPORARY stand-in for trainer/losses/ (issue #9, branch s9-losses), with the API that issue
// specifies, so that the RL loop can be built and tested before that branch lands. Replaced by
// re-exports from ../losses/mod.ts at the merge; nothing else imports the loss pieces.
import type { LossOutput } from "../types.ts";

export interface ClippedPolicyLossInput {
  logprobs: Float64Array;
  oldLogprobs: Float64Array;
  advantages: Float64Array;
  lossMask: Float64Array;
  batch: number;
  clipLow?: number;
  clipHigh?: number;
  dualClip?: number;
  aggregation?: string;
  normalizer?: number;
  maxResponseLength?: number;
}

export function clippedPolicyLoss(input: ClippedPolicyLossInput): LossOutput {
  const { logprobs, oldLogprobs, advantages, lossMask, batch } = input;
  const lo = input.clipLow ?? 0.2;
  const hi = input.clipHigh ?? 0.28;
  if ((input.aggregation ?? "token-mean") !== "token-mean") {
    throw new RangeError("stand-in: only token-mean");
  }
  const n = logprobs.length;
  let tokens = 0;
  for (let i = 0; i < n; i++) tokens += lossMask[i];
  const norm = input.normalizer ?? tokens;
  const d = new Float64Array(n);
  let value = 0, clipped = 0, clipLowN = 0, clipHighN = 0, kl = 0, ratioMax = 0;
  for (let i = 0; i < n; i++) {
    if (lossMask[i] === 0) continue;
    const A = advantages[i];
    const r = Math.exp(logprobs[i] - oldLogprobs[i]);
    const rc = Math.min(Math.max(r, 1 - lo), 1 + hi);
    const l1 = -A * r;
    const l2 = -A * rc;
    let l = Math.max(l1, l2);
    let g = l2 > l1 ? 0 : -A * r;
    if (l2 > l1) {
      clipped++;
      if (r < 1 - lo) clipLowN++;
      else clipHighN++;
    }
    if (input.dualClip !== undefined && input.dualClip > 1 && A < 0 && l > -A * input.dualClip) {
      l = -A * input.dualClip;
      g = 0;
    }
    value += l;
    d[i] = norm > 0 ? g / norm : 0;
    kl += oldLogprobs[i] - logprobs[i];
    ratioMax = Math.max(ratioMax, r);
  }
  const t = tokens > 0 ? tokens : 1;
  return {
    value: norm > 0 ? value / norm : 0,
    grad: { dLogprobs: d },
    metrics: {
      "loss/pg": norm > 0 ? value / norm : 0,
      "loss/pg_clipfrac": clipped / t,
      "loss/pg_clipfrac_low": clipLowN / t,
      "loss/pg_clipfrac_high": clipHighN / t,
      "loss/ppo_kl": kl / t,
      "loss/ratio_max": ratioMax,
      "loss/pg_tokens": tokens,
      "loss/pg_batch": batch,
    },
  };
}

export function groupAdvantages(
  input: { rewards: ArrayLike<number>; groups: ArrayLike<number>; mode?: string; eps?: number },
): Float64Array {
  const { rewards, groups } = input;
  const eps = input.eps ?? 1e-6;
  const n = rewards.length;
  const members = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const list = members.get(groups[i]) ?? [];
    list.push(i);
    members.set(groups[i], list);
  }
  const out = new Float64Array(n);
  for (const list of members.values()) {
    if (list.length < 2) continue;
    let mean = 0;
    for (const i of list) mean += rewards[i];
    mean /= list.length;
    let v = 0;
    for (const i of list) v += (rewards[i] - mean) ** 2;
    const std = Math.sqrt(v / (list.length - 1));
    for (const i of list) {
      out[i] = (input.mode ?? "grpo") === "grpo"
        ? (rewards[i] - mean) / (std + eps)
        : rewards[i] - mean;
    }
  }
  return out;
}

export function overlongPenalty(
  input: { length: number; maxLength: number; buffer: number; factor?: number },
): number {
  const L = input.maxLength - input.buffer;
  if (input.length <= L || input.buffer <= 0) return 0;
  return -(input.factor ?? 1) * (input.length - L) / input.buffer;
}

export function hiddenAlignLoss(input: {
  hidden: Float64Array;
  batch: number;
  seqLen: number;
  hiddenSize: number;
  anchors: ArrayLike<number>;
  groups: ArrayLike<number>;
  correct: ArrayLike<boolean | number>;
  type?: string;
  normalizer?: number;
  centroids?: Map<number, Float64Array>;
}): LossOutput {
  const { hidden, batch, seqLen, hiddenSize: H, anchors, groups, correct } = input;
  if ((input.type ?? "cos-centroid") !== "cos-centroid") {
    throw new RangeError("stand-in: only cos-centroid");
  }
  const unit = (b: number): [Float64Array, number] => {
    const h = hidden.subarray((b * seqLen + anchors[b]) * H, (b * seqLen + anchors[b] + 1) * H);
    let s = 0;
    for (let k = 0; k < H; k++) s += h[k] * h[k];
    const norm = Math.max(Math.sqrt(s), 1e-6);
    return [Float64Array.from(h, (x) => x / norm), norm];
  };
  const rows = new Map<number, number[]>();
  for (let b = 0; b < batch; b++) {
    if (!correct[b] || anchors[b] < 0) continue;
    const list = rows.get(groups[b]) ?? [];
    list.push(b);
    rows.set(groups[b], list);
  }
  const d = new Float64Array(hidden.length);
  let value = 0, n = 0, groupsN = 0;
  const parts: [number, Float64Array][] = [];
  for (const [g, list] of rows) {
    let c = input.centroids?.get(g);
    if (c === undefined) {
      if (list.length < 2) continue;
      c = new Float64Array(H);
      for (const b of list) {
        const [u] = unit(b);
        for (let k = 0; k < H; k++) c[k] += u[k];
      }
      let s = 0;
      for (let k = 0; k < H; k++) s += c[k] * c[k];
      const norm = Math.max(Math.sqrt(s), 1e-6);
      for (let k = 0; k < H; k++) c[k] /= norm;
    }
    groupsN++;
    for (const b of list) parts.push([b, c]);
  }
  const N = input.normalizer ?? parts.length;
  for (const [b, c] of parts) {
    const [u, norm] = unit(b);
    let dot = 0;
    for (let k = 0; k < H; k++) dot += u[k] * c[k];
    value += 1 - dot;
    n++;
    // d(1 − u·c)/dh = −(c − (u·c) u) / ‖h‖
    const at = (b * seqLen + anchors[b]) * H;
    for (let k = 0; k < H; k++) d[at + k] = N > 0 ? -(c[k] - dot * u[k]) / norm / N : 0;
  }
  return {
    value: N > 0 ? value / N : 0,
    grad: { dLastHidden: d },
    metrics: { "align/loss": N > 0 ? value / N : 0, "align/rows": n, "align/groups": groupsN },
  };
}

export function anchorPosition(input: {
  tokenOffsets: ArrayLike<number>;
  markerOffset: number | null | undefined;
  position?: string;
  seed?: number;
}): number {
  const { tokenOffsets, markerOffset } = input;
  if (markerOffset === null || markerOffset === undefined || markerOffset < 0) return -1;
  let t = -1;
  for (let i = 0; i < tokenOffsets.length; i++) if (tokenOffsets[i] <= markerOffset) t = i;
  if (t < 0) return -1;
  switch (input.position ?? "before-marker") {
    case "before-marker":
      return t - 1;
    case "marker":
      return t;
    case "last":
      return tokenOffsets.length - 1;
    default:
      throw new RangeError("stand-in: position");
  }
}
