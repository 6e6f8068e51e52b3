/**
 * Launcher of the backward of one tensor's per-head RMSNorm + RoPE with the norm weight's
 * gradient: one dispatch for `dx` (RoPE backward and RMSNorm backward fused, saving each head's
 * `1 / rms` and the un-rotated gradient), then RMSNorm's two weight-gradient passes.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { checkSize } from "../_check.ts";
import { encodeRmsNormWeightGrad } from "../rms_norm/rms_norm_backward.ts";
import { checkHeadSize, checkRope, dispatchRows, normRopeKernel } from "./_shape.ts";
import code from "./norm_rope_backward.wgsl" with { type: "text" };

const KERNEL = normRopeKernel("norm_rope_backward", code, { qk: false });

/** Arguments of {@linkcode encodeNormRopeBackward}. */
export interface NormRopeBackwardArgs {
  /** d loss / d (rotated output) `[tokens · heads, d]` on entry; d loss / d (norm output) on exit. */
  dy: Binding;
  /** The forward's input (q_proj or k_proj output) `[tokens · heads, d]`. */
  x: Binding;
  /** Norm weight `[d]`. */
  w: Binding;
  /** Receives d loss / d x `[tokens · heads, d]` (must not alias `dy` or `x`). */
  dx: Binding;
  /** Gradient of the norm weight `[d]`. */
  dw: Binding;
  /** Add into `dw` instead of overwriting it; default false. */
  accumulateDw?: boolean;
  /** Scratch `[tokens · heads]` for each head's `1 / rms`. */
  rstd: Binding;
  /** Scratch `[ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS), d]` for the weight gradient's sums. */
  partials: Binding;
  /** Position of each token (u32), as in the forward. */
  positions: Binding;
  /** The forward's `[maxPos, d/2, 2]` table. */
  table: Binding;
  /** Tokens. */
  tokens: number;
  /** Heads per token. */
  heads: number;
  /** Head dimension (even). */
  d: number;
  /** Positions in the table (larger positions are clamped). */
  maxPos: number;
  /** Added to the mean square, as in the forward. */
  eps: number;
}

/**
 * Records `dx` and `dw (+)=` of `rope(rms_norm(x) · w)` per head: three dispatches (the fused
 * RoPE + norm backward, then the weight gradient's two passes) instead of five.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 * @throws {RangeError} If the head size is odd, or a buffer is smaller than its shape.
 *
 * @example The query norm's backward for 8 tokens of 16 heads of 128
 * ```ts ignore
 * import { encodeNormRopeBackward } from "./norm_rope_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dq: GPUBuffer, qRaw: GPUBuffer, qNorm: GPUBuffer;
 * declare const dqRaw: GPUBuffer, dqNorm: GPUBuffer, rstd: GPUBuffer, partials: GPUBuffer;
 * declare const pos: GPUBuffer, table: GPUBuffer;
 * encodeNormRopeBackward(ctx, pass, {
 *   dy: dq, x: qRaw, w: qNorm, dx: dqRaw, dw: dqNorm, accumulateDw: true, rstd, partials,
 *   positions: pos, table, tokens: 8, heads: 16, d: 128, maxPos: 40960, eps: 1e-6,
 * });
 * ```
 */
export function encodeNormRopeBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: NormRopeBackwardArgs,
): void {
  const { tokens, heads, d, maxPos } = args;
  const kernel = "norm + RoPE backward";
  checkHeadSize(kernel, d);
  const rows = tokens * heads;
  const matrix = `[tokens · heads, d] = [${rows}, ${d}]`;
  for (const name of ["dy", "x", "dx"] as const) {
    checkSize(kernel, name, args[name], rows * d, matrix);
  }
  checkSize(kernel, "w", args.w, d, `[d] = [${d}]`);
  checkSize(kernel, "rstd", args.rstd, rows, `[tokens · heads] = [${rows}]`);
  checkRope(kernel, args, args.positions, args.table);
  dispatchRows(
    ctx,
    pass,
    KERNEL,
    [args.dy, args.x, args.w, args.positions, args.table, args.dx, args.rstd],
    rows,
    { R: rows, D: d, H: heads, max_pos: maxPos, eps: args.eps },
  );
  encodeRmsNormWeightGrad(ctx, pass, {
    dy: args.dy,
    x: args.x,
    rstd: args.rstd,
    dw: args.dw,
    accumulateDw: args.accumulateDw,
    partials: args.partials,
    rows,
    d,
  });
}
