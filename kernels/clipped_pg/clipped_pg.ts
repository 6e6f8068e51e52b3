/**
 * Launcher of the clipped policy-gradient loss kernel: value, `dLogprobs` and metric sums on the
 * GPU, recorded into the train step's compute pass (no readback: the scalars land in `out`).
 *
 * @module
 */
import { type Binding, f32Bits, type GpuContext } from "../../gpu/context.ts";
import { grid } from "../_grid.ts";
import code from "./clipped_pg.wgsl" with { type: "text" };

/**
 * Floats of `stats` per sequence (`[Σ l, tokens, clipped low, clipped high, dual-capped,
 * Σ (old − lp), max r, 0]`).
 *
 * @example Scratch for 64 sequences
 * ```ts
 * import { CLIPPED_PG_STATS_FLOATS } from "./clipped_pg.ts";
 * console.log(64 * CLIPPED_PG_STATS_FLOATS); // 512 floats
 * ```
 */
export const CLIPPED_PG_STATS_FLOATS = 8;

/**
 * The metric written at each index of `out` (then `out[8]` = 1 / denominator, used by the
 * gradient, and `out[9]` = sequences with a loss token), as `clippedPolicyLoss` names them.
 *
 * @example Where the clip fraction lands
 * ```ts
 * import { CLIPPED_PG_METRICS } from "./clipped_pg.ts";
 * console.log(CLIPPED_PG_METRICS.indexOf("loss/pg_clipfrac")); // 1
 * ```
 */
export const CLIPPED_PG_METRICS: readonly string[] = [
  "loss/pg",
  "loss/pg_clipfrac",
  "loss/pg_clipfrac_low",
  "loss/pg_clipfrac_high",
  "loss/pg_clipfrac_dual",
  "loss/ppo_kl",
  "loss/ratio_max",
  "loss/pg_tokens",
];

/**
 * Floats `out` must hold.
 *
 * @example Bytes of the output
 * ```ts
 * import { CLIPPED_PG_OUT_FLOATS } from "./clipped_pg.ts";
 * console.log(4 * CLIPPED_PG_OUT_FLOATS); // 40
 * ```
 */
export const CLIPPED_PG_OUT_FLOATS = 10;

/** Arguments of {@linkcode encodeClippedPg}. */
export interface ClippedPgArgs {
  /** Current log-probs `[batch, width]` (f32), e.g. the train step's `acts.logprobs`. */
  logprobs: Binding;
  /** Sampling-policy log-probs, same layout (f32). */
  oldLogprobs: Binding;
  /** Per-token advantages, same layout (f32). */
  advantages: Binding;
  /** Loss mask, same layout (f32 0/1). */
  lossMask: Binding;
  /**
   * Constant per-token weights of the loss and gradient, same layout (f32, finite, ≥ 0): the
   * truncated importance-sampling weights of off-policy rollouts. Default none (the kernel's
   * unweighted variant).
   */
  tokenWeights?: Binding;
  /** Output `d loss / d logprobs`, same layout (f32), e.g. the train step's `cot.dLogprobs`. */
  dLogprobs: Binding;
  /** Scratch of `batch · CLIPPED_PG_STATS_FLOATS` floats (per-sequence sums). */
  stats: Binding;
  /** Output of {@linkcode CLIPPED_PG_OUT_FLOATS} floats: value and metrics (see the constants). */
  out: Binding;
  /** Number of sequences. */
  batch: number;
  /** Values per sequence in the per-token buffers (`seqLen` in the train step's layout). */
  width: number;
  /** Default 0.2. */
  clipLow?: number;
  /** Default 0.28. */
  clipHigh?: number;
  /** Dual-clip constant (> 1); default none. */
  dualClip?: number;
  /** Default `"token-mean"`. */
  aggregation?: ClippedPgAggregation;
  /** Replaces the token (or sequence) count, e.g. the mini-batch's; default computed here. */
  normalizer?: number;
  /**
   * Token budget of `"seq-mean-token-sum-norm"`; default `width` (pass `seqLen − 1` with the
   * train step's `[batch, seqLen]` layout to match the CPU default).
   */
  maxResponseLength?: number;
  /** Scale of the gradient (the term's weight in a sum); default 1. `out` is unscaled. */
  weight?: number;
  /** Add into `dLogprobs` instead of overwriting it; default false. */
  accumulate?: boolean;
}

/**
 * The loss aggregations the kernel computes (the same strings as `Aggregation` in
 * `trainer/losses/agg_loss.ts`, which sits above kernels/).
 */
export type ClippedPgAggregation =
  | "token-mean"
  | "seq-mean-token-sum"
  | "seq-mean-token-mean"
  | "seq-mean-token-sum-norm";

const WHERE = "Cannot encode clipped_pg";
// The kernel's aggregation codes (the order of `AGGREGATIONS` in trainer/losses/agg_loss.ts;
// kept here so that kernels/ does not load trainer/ at run time).
const AGG_CODES: readonly ClippedPgAggregation[] = [
  "token-mean",
  "seq-mean-token-sum",
  "seq-mean-token-mean",
  "seq-mean-token-sum-norm",
];

/**
 * Records the clipped policy loss of `clippedPolicyLoss` (same options, same metrics) as three
 * dispatches into `pass`: per-sequence sums, a one-workgroup finish writing the value and
 * metrics into `out`, and the per-token gradient into `dLogprobs` (which it needs the finish's
 * denominator for). Nothing is read back: read `out` with the step's other scalars and turn it
 * into metrics with {@linkcode clippedPgMetrics}.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded (e.g. in a train step's loss hook).
 * @param args Buffers, shape and options.
 * @throws {RangeError} When a buffer is too small or an option is out of range.
 * @throws {TypeError} On an unknown aggregation.
 *
 * @example Inside a train step's loss hook
 * ```ts ignore
 * import { CLIPPED_PG_OUT_FLOATS, CLIPPED_PG_STATS_FLOATS, encodeClippedPg } from "./clipped_pg.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, acts: { logprobs: GPUBuffer }, cot: { dLogprobs: GPUBuffer };
 * declare const old: GPUBuffer, adv: GPUBuffer, mask: GPUBuffer;
 * const [batch, seqLen] = [8, 512];
 * const stats = ctx.createBuffer(4 * batch * CLIPPED_PG_STATS_FLOATS, "pg stats");
 * const out = ctx.createBuffer(4 * CLIPPED_PG_OUT_FLOATS, "pg out");
 * encodeClippedPg(ctx, pass, {
 *   logprobs: acts.logprobs, oldLogprobs: old, advantages: adv, lossMask: mask,
 *   dLogprobs: cot.dLogprobs, stats, out, batch, width: seqLen, normalizer: 12345,
 * });
 * ```
 */
export function encodeClippedPg(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: ClippedPgArgs,
): void {
  const { batch, width } = args;
  for (const [name, v] of [["batch", batch], ["width", width]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`${WHERE}: "${name}" must be an integer ≥ 1: current value is ${v}`);
    }
  }
  const aggregation = args.aggregation ?? "token-mean";
  const agg = AGG_CODES.indexOf(aggregation);
  if (agg < 0) {
    throw new TypeError(
      `${WHERE}: "aggregation" must be one of ${AGG_CODES.map((a) => `"${a}"`).join(", ")}: ` +
        `current value is "${aggregation}"`,
    );
  }
  const clipLow = args.clipLow ?? 0.2;
  const clipHigh = args.clipHigh ?? 0.28;
  const weight = args.weight ?? 1;
  const maxLen = args.maxResponseLength ?? width;
  check("clipLow", clipLow, clipLow >= 0 && clipLow < 1, "a number in [0, 1)");
  check("clipHigh", clipHigh, clipHigh >= 0, "a finite number ≥ 0");
  check("weight", weight, true, "a finite number");
  check("maxResponseLength", maxLen, maxLen > 0, "a finite number > 0");
  if (args.dualClip !== undefined) {
    check("dualClip", args.dualClip, args.dualClip > 1, "a finite number > 1");
  }
  if (args.normalizer !== undefined) {
    check("normalizer", args.normalizer, args.normalizer > 0, "a finite number > 0");
  }
  const n = batch * width;
  for (const name of ["logprobs", "oldLogprobs", "advantages", "lossMask", "dLogprobs"] as const) {
    checkSize(args[name], name, 4 * n);
  }
  if (args.tokenWeights !== undefined) checkSize(args.tokenWeights, "tokenWeights", 4 * n);
  checkSize(args.stats, "stats", 4 * batch * CLIPPED_PG_STATS_FLOATS);
  checkSize(args.out, "out", 4 * CLIPPED_PG_OUT_FLOATS);
  const flags = (args.dualClip !== undefined ? 1 : 0) | (args.accumulate ? 2 : 0) |
    (args.normalizer !== undefined ? 4 : 0);
  const params = [
    batch,
    width,
    agg,
    flags,
    f32Bits(clipLow),
    f32Bits(clipHigh),
    f32Bits(args.dualClip ?? 0),
    f32Bits(args.normalizer ?? 0),
    f32Bits(maxLen),
    f32Bits(weight),
  ];
  // Without weights the advantages stand in at the weights' binding (never read there).
  const weighted = args.tokenWeights !== undefined;
  const inputs = [
    args.logprobs,
    args.oldLogprobs,
    args.advantages,
    args.lossMask,
    args.tokenWeights ?? args.advantages,
  ];
  const constants: Record<string, number> = weighted ? { TOKEN_WEIGHTS: 1 } : {};
  ctx.dispatch(
    pass,
    ctx.pipeline("clipped_pg", code, { entryPoint: "seq_stats", constants }),
    [...inputs, args.stats],
    grid(batch),
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("clipped_pg", code, { entryPoint: "finish" }),
    [args.stats, args.out],
    [1, 1, 1],
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("clipped_pg", code, { entryPoint: "grad", constants }),
    [...inputs, args.stats, args.out, args.dLogprobs],
    grid(Math.ceil(n / 256)),
    params,
  );
}

/**
 * The metrics record of a read-back `out` buffer of {@linkcode encodeClippedPg}, keyed as
 * `clippedPolicyLoss`'s.
 *
 * @param out The first {@linkcode CLIPPED_PG_OUT_FLOATS} floats of `out`.
 * @returns The metrics (`"loss/pg"` is the value).
 *
 * @example Metrics of a read-back buffer
 * ```ts
 * import { clippedPgMetrics } from "./clipped_pg.ts";
 * const m = clippedPgMetrics(new Float32Array([0.5, 0.25, 0.125, 0.125, 0, 0.01, 1.3, 16, 0.0625, 2]));
 * console.log(m["loss/pg"], m["loss/pg_tokens"]); // 0.5 16
 * ```
 */
export function clippedPgMetrics(out: ArrayLike<number>): Record<string, number> {
  const metrics: Record<string, number> = {};
  CLIPPED_PG_METRICS.forEach((key, i) => (metrics[key] = out[i]));
  return metrics;
}

function check(name: string, v: number, ok: boolean, what: string): void {
  if (typeof v !== "number" || !Number.isFinite(v) || !ok) {
    throw new RangeError(`${WHERE}: "${name}" must be ${what}: current value is ${v}`);
  }
}

function checkSize(binding: Binding, name: string, bytes: number): void {
  if (binding.size < bytes) {
    throw new RangeError(
      `${WHERE}: "${name}" must hold at least ${bytes} bytes: current size is ${binding.size}`,
    );
  }
}
