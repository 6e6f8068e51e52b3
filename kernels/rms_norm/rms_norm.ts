/**
 * Launcher of the row-wise RMSNorm kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./rms_norm.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "rms_norm");

/** Arguments of {@linkcode encodeRmsNorm}. */
export interface RmsNormArgs {
  /** Input `[rows, d]`. */
  x: Binding;
  /** Weight `[d]`. */
  w: Binding;
  /** Output `[rows, d]` (must not alias `x`). */
  y: Binding;
  /** Number of rows. */
  rows: number;
  /** Row length. */
  d: number;
  /** Added to the mean square. */
  eps: number;
}

/**
 * Records one RMSNorm dispatch.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 *
 * @example Normalise 4 rows of 64
 * ```ts ignore
 * import { encodeRmsNorm } from "./rms_norm.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer;
 * encodeRmsNorm(ctx, pass, { x, w, y, rows: 4, d: 64, eps: 1e-6 });
 * ```
 */
export function encodeRmsNorm(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: RmsNormArgs,
): void {
  const { rows, d } = args;
  checkSize("rms_norm", "x", args.x, rows * d, `[rows, d] = [${rows}, ${d}]`);
  checkSize("rms_norm", "w", args.w, d, `[d] = [${d}]`);
  checkSize("rms_norm", "y", args.y, rows * d, `[rows, d] = [${rows}, ${d}]`);
  ctx.dispatch(
    pass,
    ctx.pipeline("rms_norm", code, { constants: GRID_CONSTANTS }),
    [args.x, args.w, args.y],
    grid(rows),
    packUniform(PARAMS, { R: rows, D: d, eps: args.eps }),
  );
}
