/**
 * Launcher of the Hidden-Align kernel: gathers the anchor rows from the hidden states, builds
 * the per-group targets, and writes the value, metrics and the `dLastHidden` scatter on the GPU,
 * recorded into the train step's compute pass (no readback: the scalars land in `out`).
 *
 * @module
 */
import { type Binding, f32Bits, type GpuContext } from "../../gpu/context.ts";
import { grid } from "../_grid.ts";
import code from "./hidden_align.wgsl" with { type: "text" };

/**
 * The metric written at each index of `out`, as `hiddenAlignLoss` names them (then `out[4]` =
 * 1 / denominator, `out[5]` = pairs of taking-part rows, `out[6]` = pairs of contributing
 * groups).
 *
 * @example Where the row count lands
 * ```ts
 * import { HIDDEN_ALIGN_METRICS } from "./hidden_align.ts";
 * console.log(HIDDEN_ALIGN_METRICS.indexOf("align/rows")); // 1
 * ```
 */
export const HIDDEN_ALIGN_METRICS: readonly string[] = [
  "align/loss",
  "align/rows",
  "align/groups",
  "align/cos_correct",
];

/**
 * Floats `out` must hold.
 *
 * @example Bytes of the output
 * ```ts
 * import { HIDDEN_ALIGN_OUT_FLOATS } from "./hidden_align.ts";
 * console.log(4 * HIDDEN_ALIGN_OUT_FLOATS); // 32
 * ```
 */
export const HIDDEN_ALIGN_OUT_FLOATS = 8;

/**
 * Shape of the scratch of {@linkcode hiddenAlignScratchFloats}.
 *
 * @example The 0.6B shape
 * ```ts
 * import type { HiddenAlignShape } from "./hidden_align.ts";
 * const shape: HiddenAlignShape = { batch: 64, hiddenSize: 1024, numGroups: 8 };
 * ```
 */
export interface HiddenAlignShape {
  /** Number of sequences. */
  batch: number;
  /** Hidden size. */
  hiddenSize: number;
  /** Number of groups (group ids are in `[0, numGroups)`). */
  numGroups: number;
}

/**
 * Floats of the `scratch` buffer: the gathered rows and their unit rows (`2·batch·hiddenSize`),
 * the group targets and sums (`2·numGroups·hiddenSize`), and 4 per sequence and per group.
 *
 * @param shape Batch, hidden size and number of groups.
 * @returns The number of floats.
 *
 * @example Scratch of 64 rollouts of 8 prompts at hidden size 1024
 * ```ts
 * import { hiddenAlignScratchFloats } from "./hidden_align.ts";
 * console.log(hiddenAlignScratchFloats({ batch: 64, hiddenSize: 1024, numGroups: 8 })); // 147744
 * ```
 */
export function hiddenAlignScratchFloats(shape: HiddenAlignShape): number {
  const { batch, hiddenSize, numGroups } = shape;
  return 2 * (batch + numGroups) * hiddenSize + 4 * (batch + numGroups);
}

/** Arguments of {@linkcode encodeHiddenAlign}. */
export interface HiddenAlignArgs extends HiddenAlignShape {
  /** Hidden states `[batch, seqLen, hiddenSize]` (f32), e.g. the train step's `acts.lastHidden`. */
  hidden: Binding;
  /** Anchor position per sequence (i32 `[batch]`, −1 for none, else `< seqLen`). */
  anchors: Binding;
  /** Group index per sequence (u32 `[batch]`, `< numGroups`). */
  groups: Binding;
  /** Verifier correctness per sequence (u32 `[batch]`, 0/1). */
  correct: Binding;
  /**
   * Stop-gradient targets `[numGroups, hiddenSize]` (f32) of groups split across micro-batches
   * (as `alignCentroids` computes them); used where `centroidMask` is 1. Not with
   * `"cos-pairwise"`.
   */
  centroids?: Binding;
  /** u32 `[numGroups]`: 1 where `centroids` holds the group's target; needed with `centroids`. */
  centroidMask?: Binding;
  /**
   * Output `d loss / d hidden` `[batch, seqLen, hiddenSize]` (f32), zeroed by the caller (the
   * train step clears `cot.dLastHidden`): only the anchor rows are written.
   */
  dLastHidden: Binding;
  /** Scratch of {@linkcode hiddenAlignScratchFloats} floats. */
  scratch: Binding;
  /** Output of {@linkcode HIDDEN_ALIGN_OUT_FLOATS} floats: value and metrics. */
  out: Binding;
  /** Tokens per sequence. */
  seqLen: number;
  /** Default `"cos-centroid"`. */
  type?: HiddenAlignKernelType;
  /** Replaces N (P for `"cos-pairwise"`), e.g. the mini-batch's row count. */
  normalizer?: number;
  /** Scale of the gradient (the term's weight, e.g. 0.1); default 1. `out` is unscaled. */
  weight?: number;
  /** Add into the anchor rows of `dLastHidden` instead of overwriting them; default false. */
  accumulate?: boolean;
}

const WHERE = "Cannot encode hidden_align";
// The kernel's type codes (the order of ALIGN_TYPES in trainer/losses).
/**
 * The Hidden-Align loss types the kernel computes (the same strings as `AlignType` in
 * `trainer/losses/hidden_align_loss.ts`, which sits above kernels/).
 */
export type HiddenAlignKernelType = "cos-centroid" | "cos-pairwise" | "mse-normalized" | "mse-raw";

const KINDS: readonly HiddenAlignKernelType[] = [
  "cos-centroid",
  "cos-pairwise",
  "mse-normalized",
  "mse-raw",
];

/**
 * Records the Hidden-Align term of `hiddenAlignLoss` (same types, same metrics) as five
 * dispatches into `pass`: gather the anchor rows, per-group targets, counts, the per-row
 * gradient scattered into the anchor rows of `dLastHidden` (scaled by `weight`), and the value.
 * The hidden states never leave the GPU: read `out` with the step's other scalars and turn it
 * into metrics with {@linkcode hiddenAlignMetrics}. Anchors must be in `[−1, seqLen)` and
 * groups in `[0, numGroups)` (not checked on the GPU).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded (e.g. in a train step's loss hook).
 * @param args Buffers, shape and options.
 * @throws {RangeError} When a buffer is too small or a shape or option is out of range.
 * @throws {TypeError} On an unknown type, `centroids` without `centroidMask`, or `centroids`
 *   with `"cos-pairwise"`.
 *
 * @example Inside a train step's loss hook, at weight 0.1
 * ```ts ignore
 * import {
 *   encodeHiddenAlign, HIDDEN_ALIGN_OUT_FLOATS, hiddenAlignScratchFloats,
 * } from "./hidden_align.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, acts: { lastHidden: GPUBuffer };
 * declare const cot: { dLastHidden: GPUBuffer };
 * declare const anchors: GPUBuffer, groups: GPUBuffer, correct: GPUBuffer;
 * const shape = { batch: 16, hiddenSize: 1024, numGroups: 2 };
 * const scratch = ctx.createBuffer(4 * hiddenAlignScratchFloats(shape), "align scratch");
 * const out = ctx.createBuffer(4 * HIDDEN_ALIGN_OUT_FLOATS, "align out");
 * encodeHiddenAlign(ctx, pass, {
 *   ...shape, seqLen: 512, hidden: acts.lastHidden, anchors, groups, correct,
 *   dLastHidden: cot.dLastHidden, scratch, out, weight: 0.1,
 * });
 * ```
 */
export function encodeHiddenAlign(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiddenAlignArgs,
): void {
  const { batch, seqLen, hiddenSize, numGroups } = args;
  for (
    const [name, v] of [
      ["batch", batch],
      ["seqLen", seqLen],
      ["hiddenSize", hiddenSize],
      ["numGroups", numGroups],
    ] as const
  ) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${WHERE}: "${name}" must be an integer ≥ 1: current value is ${v}`);
    }
  }
  const type = args.type ?? "cos-centroid";
  const kind = KINDS.indexOf(type);
  if (kind < 0) {
    throw new TypeError(
      `${WHERE}: "type" must be one of ${KINDS.map((k) => `"${k}"`).join(", ")}: current ` +
        `value is "${type}"`,
    );
  }
  const weight = args.weight ?? 1;
  if (!Number.isFinite(weight)) {
    throw new RangeError(`${WHERE}: "weight" must be a finite number: current value is ${weight}`);
  }
  if (args.normalizer !== undefined && !(Number.isFinite(args.normalizer) && args.normalizer > 0)) {
    throw new RangeError(
      `${WHERE}: "normalizer" must be a finite number > 0: current value is ${args.normalizer}`,
    );
  }
  const withCentroids = args.centroids !== undefined;
  if (withCentroids && args.centroidMask === undefined) {
    throw new TypeError(`${WHERE}: "centroids" needs "centroidMask" (u32 [numGroups])`);
  }
  if (withCentroids && kind === 1) {
    throw new TypeError(
      `${WHERE}: "centroids" must not be given with type "cos-pairwise" (it has no ` +
        `stop-gradient target)`,
    );
  }
  checkSize(args.hidden, "hidden", 4 * batch * seqLen * hiddenSize);
  checkSize(args.dLastHidden, "dLastHidden", 4 * batch * seqLen * hiddenSize);
  for (const name of ["anchors", "groups", "correct"] as const) {
    checkSize(args[name], name, 4 * batch);
  }
  if (withCentroids) {
    checkSize(args.centroids!, "centroids", 4 * numGroups * hiddenSize);
    checkSize(args.centroidMask!, "centroidMask", 4 * numGroups);
  }
  checkSize(args.scratch, "scratch", 4 * hiddenAlignScratchFloats(args));
  checkSize(args.out, "out", 4 * HIDDEN_ALIGN_OUT_FLOATS);
  const flags = (args.normalizer !== undefined ? 1 : 0) | (args.accumulate ? 2 : 0) |
    (withCentroids ? 4 : 0);
  const params = [
    batch,
    seqLen,
    hiddenSize,
    numGroups,
    kind,
    flags,
    f32Bits(args.normalizer ?? 0),
    f32Bits(weight),
  ];
  const pipe = (entryPoint: string) => ctx.pipeline("hidden_align", code, { entryPoint });
  const { scratch, out } = args;
  ctx.dispatch(
    pass,
    pipe("gather"),
    [args.hidden, args.anchors, args.correct, scratch],
    grid(batch),
    params,
  );
  // Without targets, bind read-only stand-ins that the kernel does not read.
  const centroids = args.centroids ?? args.hidden;
  const mask = args.centroidMask ?? args.groups;
  ctx.dispatch(
    pass,
    pipe("centroid"),
    [args.groups, centroids, mask, scratch],
    grid(numGroups),
    params,
  );
  ctx.dispatch(pass, pipe("count"), [scratch, out], [1, 1, 1], params);
  ctx.dispatch(
    pass,
    pipe("grad"),
    [args.anchors, args.groups, scratch, out, args.dLastHidden],
    grid(batch),
    params,
  );
  ctx.dispatch(pass, pipe("finish"), [scratch, out], [1, 1, 1], params);
}

/**
 * The metrics record of a read-back `out` buffer of {@linkcode encodeHiddenAlign}, keyed as
 * `hiddenAlignLoss`'s.
 *
 * @param out The first {@linkcode HIDDEN_ALIGN_OUT_FLOATS} floats of `out`.
 * @returns The metrics (`"align/loss"` is the value).
 *
 * @example Metrics of a read-back buffer
 * ```ts
 * import { hiddenAlignMetrics } from "./hidden_align.ts";
 * const m = hiddenAlignMetrics(new Float32Array([0.25, 6, 3, 0.5, 0.1667, 4, 4, 0]));
 * console.log(m["align/loss"], m["align/groups"]); // 0.25 3
 * ```
 */
export function hiddenAlignMetrics(out: ArrayLike<number>): Record<string, number> {
  const metrics: Record<string, number> = {};
  HIDDEN_ALIGN_METRICS.forEach((key, i) => (metrics[key] = out[i]));
  return metrics;
}

function checkSize(binding: Binding, name: string, bytes: number): void {
  if (binding.size < bytes) {
    throw new RangeError(
      `${WHERE}: "${name}" must hold at least ${bytes} bytes: current size is ${binding.size}`,
    );
  }
}
