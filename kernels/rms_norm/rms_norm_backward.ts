/**
 * Launcher of the backward of row-wise RMSNorm: `dx` per row and, when asked, the weight
 * gradient `dw` summed over rows in two deterministic passes (per-block partials, then their sum).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./rms_norm_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "rms_norm_backward");

/** Rows summed by one workgroup of the first `dw` pass (`BLOCK_ROWS` in the kernel). */
export const RMS_NORM_BACKWARD_BLOCK_ROWS = 256;

/** Arguments of {@linkcode encodeRmsNormBackward}. */
export interface RmsNormBackwardArgs {
  /** Gradient of the output `[rows, d]`. */
  dy: Binding;
  /** Forward input `[rows, d]`. */
  x: Binding;
  /** Weight `[d]`. */
  w: Binding;
  /** Gradient of the input `[rows, d]` (must not alias `dy` or `x`). */
  dx: Binding;
  /** Add into `dx` instead of overwriting it (the residual stream); default false. */
  accumulateDx?: boolean;
  /** Gradient of the weight `[d]`; omit when the weight is frozen (then only `dx` is computed). */
  dw?: Binding;
  /** Add into `dw` instead of overwriting it; default false. */
  accumulateDw?: boolean;
  /** Scratch `[rows]` for `1 / rms` of each row; needed with `dw`. */
  rstd?: Binding;
  /**
   * Scratch `[ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS), d]` for the per-block sums of `dw`;
   * needed with `dw`.
   */
  partials?: Binding;
  /** Number of rows. */
  rows: number;
  /** Row length. */
  d: number;
  /** Added to the mean square, as in the forward. */
  eps: number;
}

/**
 * Records the RMSNorm backward: one dispatch for `dx`, two more for `dw` when it is given.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and accumulation modes.
 * @throws {TypeError} If `dw` is given without the `rstd` and `partials` scratch buffers.
 *
 * @example Gradients of the norm of 4 rows of 64
 * ```ts ignore
 * import { encodeRmsNormBackward } from "./rms_norm_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dy: GPUBuffer, x: GPUBuffer, w: GPUBuffer;
 * declare const dx: GPUBuffer, dw: GPUBuffer, rstd: GPUBuffer, partials: GPUBuffer;
 * encodeRmsNormBackward(ctx, pass, { dy, x, w, dx, dw, rstd, partials, rows: 4, d: 64, eps: 1e-6 });
 * ```
 */
export function encodeRmsNormBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: RmsNormBackwardArgs,
): void {
  const { rows, d } = args;
  const blocks = Math.ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS);
  const kernel = "RMSNorm backward";
  const matrix = `[rows, d] = [${rows}, ${d}]`;
  for (const name of ["dy", "x", "dx"] as const) {
    checkSize(kernel, name, args[name], rows * d, matrix);
  }
  checkSize(kernel, "w", args.w, d, `[d] = [${d}]`);
  const params = packUniform(PARAMS, {
    R: rows,
    D: d,
    eps: args.eps,
    accumulate_dx: args.accumulateDx ?? false,
    accumulate_dw: args.accumulateDw ?? false,
    blocks,
  });
  const constants = GRID_CONSTANTS;
  if (!args.dw) {
    ctx.dispatch(
      pass,
      ctx.pipeline("rms_norm_backward", code, { entryPoint: "dx_only", constants }),
      [args.dy, args.x, args.w, args.dx],
      grid(rows),
      params,
    );
    return;
  }
  if (!args.rstd || !args.partials) {
    throw new TypeError(
      "Cannot record RMSNorm backward: dw needs the rstd and partials scratch buffers: current " +
        `values are ${args.rstd ? "given" : "undefined"} and ${
          args.partials ? "given" : "undefined"
        }`,
    );
  }
  checkSize(kernel, "dw", args.dw, d, `[d] = [${d}]`);
  checkSize(kernel, "rstd", args.rstd, rows, `[rows] = [${rows}]`);
  checkSize(kernel, "partials", args.partials, blocks * d, `[blocks, d] = [${blocks}, ${d}]`);
  ctx.dispatch(
    pass,
    ctx.pipeline("rms_norm_backward", code, { constants }),
    [args.dy, args.x, args.w, args.dx, args.rstd],
    grid(rows),
    params,
  );
  encodeRmsNormWeightGrad(ctx, pass, {
    ...args,
    dw: args.dw,
    rstd: args.rstd,
    partials: args.partials,
  });
}

/** Arguments of {@linkcode encodeRmsNormWeightGrad}. */
export interface RmsNormWeightGradArgs {
  /** Gradient of the output `[rows, d]`. */
  dy: Binding;
  /** Forward input `[rows, d]`. */
  x: Binding;
  /** `1 / rms` of each row `[rows]`, as a backward's `dx` pass saved it. */
  rstd: Binding;
  /** Gradient of the weight `[d]`. */
  dw: Binding;
  /** Add into `dw` instead of overwriting it; default false. */
  accumulateDw?: boolean;
  /** Scratch `[ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS), d]` for the per-block sums. */
  partials: Binding;
  /** Number of rows. */
  rows: number;
  /** Row length. */
  d: number;
}

/**
 * Records the two passes of the RMSNorm weight gradient, `dw (+)= Σ_rows dy ⊙ x · rstd`
 * (per-block partial sums, then their sum; deterministic), from a saved `rstd`. Kernels that
 * compute `dx` themselves (e.g. a fused RoPE + norm backward) use it for `dw`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and accumulation mode.
 *
 * @example The weight gradient of 4 rows of 64
 * ```ts ignore
 * import { encodeRmsNormWeightGrad } from "./rms_norm_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dy: GPUBuffer, x: GPUBuffer, rstd: GPUBuffer;
 * declare const dw: GPUBuffer, partials: GPUBuffer;
 * encodeRmsNormWeightGrad(ctx, pass, { dy, x, rstd, dw, partials, rows: 4, d: 64 });
 * ```
 */
export function encodeRmsNormWeightGrad(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: RmsNormWeightGradArgs,
): void {
  const { rows, d } = args;
  const blocks = Math.ceil(rows / RMS_NORM_BACKWARD_BLOCK_ROWS);
  const kernel = "RMSNorm weight gradient";
  const matrix = `[rows, d] = [${rows}, ${d}]`;
  checkSize(kernel, "dy", args.dy, rows * d, matrix);
  checkSize(kernel, "x", args.x, rows * d, matrix);
  checkSize(kernel, "dw", args.dw, d, `[d] = [${d}]`);
  checkSize(kernel, "rstd", args.rstd, rows, `[rows] = [${rows}]`);
  checkSize(kernel, "partials", args.partials, blocks * d, `[blocks, d] = [${blocks}, ${d}]`);
  const params = packUniform(PARAMS, {
    R: rows,
    D: d,
    eps: 0,
    accumulate_dx: false,
    accumulate_dw: args.accumulateDw ?? false,
    blocks,
  });
  const constants = GRID_CONSTANTS;
  ctx.dispatch(
    pass,
    ctx.pipeline("rms_norm_backward", code, { entryPoint: "dw_partial", constants }),
    [args.dy, args.x, args.rstd, args.partials],
    [Math.ceil(d / 64), blocks, 1],
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("rms_norm_backward", code, { entryPoint: "dw_reduce", constants }),
    [args.partials, args.dw],
    [Math.ceil(d / 64), 1, 1],
    params,
  );
}
