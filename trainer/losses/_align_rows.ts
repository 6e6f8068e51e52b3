// Private: the validated rows of the Hidden-Align term, shared by hiddenAlignLoss and
// alignCentroids: which sequences take part, their anchor rows h, unit rows u and norms, grouped.
import {
  checkCount,
  checkFinite,
  checkLength,
  checkMask,
  checkName,
  describe,
} from "./_validate.ts";

/**
 * The Hidden-Align variants (see `hiddenAlignLoss`).
 *
 * @example The default
 * ```ts
 * import type { AlignType } from "./_align_rows.ts";
 * const type: AlignType = "cos-centroid";
 * ```
 */
export type AlignType = "cos-centroid" | "cos-pairwise" | "mse-normalized" | "mse-raw";

/**
 * Every {@linkcode AlignType}, in the order of their codes in the `hidden_align` kernel.
 *
 * @example The code of a type
 * ```ts
 * import { ALIGN_TYPES } from "./_align_rows.ts";
 * console.log(ALIGN_TYPES.indexOf("mse-raw")); // 3
 * ```
 */
export const ALIGN_TYPES: readonly AlignType[] = [
  "cos-centroid",
  "cos-pairwise",
  "mse-normalized",
  "mse-raw",
];

/**
 * Smallest norm a row is divided by: `u = h / max(‖h‖, NORM_EPS)`.
 *
 * @example The floor
 * ```ts
 * import { NORM_EPS } from "./_align_rows.ts";
 * console.log(NORM_EPS); // 0.000001
 * ```
 */
export const NORM_EPS = 1e-6;

/** The shared inputs. */
export interface AlignRowsInput {
  hidden: ArrayLike<number>;
  batch: number;
  seqLen: number;
  hiddenSize: number;
  anchors: ArrayLike<number>;
  groups: ArrayLike<number>;
  correct: ArrayLike<number | boolean>;
  type?: AlignType;
}

/** One taking-part row. */
export interface AlignRow {
  /** Sequence index. */
  b: number;
  /** Offset of the anchor row in `hidden`. */
  offset: number;
  h: Float64Array;
  u: Float64Array;
  norm: number;
}

/** Validated rows, grouped by group id in order of first appearance. */
export interface AlignRows {
  type: AlignType;
  hiddenSize: number;
  groups: Map<number, AlignRow[]>;
}

/** x / max(‖x‖, NORM_EPS) and ‖x‖. */
export function normalize(x: ArrayLike<number>): { u: Float64Array; norm: number } {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const norm = Math.sqrt(ss);
  const s = 1 / Math.max(norm, NORM_EPS);
  const u = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) u[i] = x[i] * s;
  return { u, norm };
}

/** Validates the inputs and gathers the taking-part rows (correct, with an anchor). */
export function alignRows(where: string, input: AlignRowsInput): AlignRows {
  const batch = checkCount(where, "batch", input.batch, 1);
  const seqLen = checkCount(where, "seqLen", input.seqLen, 1);
  const H = checkCount(where, "hiddenSize", input.hiddenSize, 1);
  const type = checkName(where, "type", input.type ?? "cos-centroid", ALIGN_TYPES);
  const { hidden, anchors, groups, correct } = input;
  checkLength(
    where,
    "hidden",
    hidden,
    batch * seqLen * H,
    `[batch, seqLen, hiddenSize] = ${batch}·${seqLen}·${H}`,
  );
  checkLength(where, "anchors", anchors, batch, "one per sequence");
  checkLength(where, "groups", groups, batch, "one per sequence");
  checkLength(where, "correct", correct, batch, "one per sequence");
  checkMask(where, "correct", correct);
  for (let b = 0; b < batch; b++) {
    const a = anchors[b];
    if (!Number.isInteger(a) || a < -1 || a >= seqLen) {
      throw new RangeError(
        `${where}: "anchors[${b}]" must be −1 or an integer in [0, seqLen = ${seqLen}): ` +
          `current value is ${describe(a)}`,
      );
    }
    if (!Number.isSafeInteger(groups[b])) {
      throw new RangeError(
        `${where}: "groups[${b}]" must be an integer: current value is ${describe(groups[b])}`,
      );
    }
  }
  const out = new Map<number, AlignRow[]>();
  for (let b = 0; b < batch; b++) {
    const ok = correct[b] === 1 || correct[b] === true;
    if (!ok || anchors[b] < 0) continue;
    const offset = (b * seqLen + anchors[b]) * H;
    const h = new Float64Array(H);
    for (let j = 0; j < H; j++) h[j] = hidden[offset + j];
    checkFinite(where, `hidden (anchor row of sequence ${b})`, h);
    const { u, norm } = normalize(h);
    const row: AlignRow = { b, offset, h, u, norm };
    const list = out.get(groups[b]);
    if (list) list.push(row);
    else out.set(groups[b], [row]);
  }
  return { type, hiddenSize: H, groups: out };
}

/** The stop-gradient target of a group for `type` (not defined for "cos-pairwise"). */
export function groupTarget(type: AlignType, rows: readonly AlignRow[], H: number): Float64Array {
  const mean = new Float64Array(H);
  for (const r of rows) {
    const v = type === "mse-raw" ? r.h : r.u;
    for (let j = 0; j < H; j++) mean[j] += v[j];
  }
  for (let j = 0; j < H; j++) mean[j] /= rows.length;
  return type === "cos-centroid" ? normalize(mean).u : mean;
}
