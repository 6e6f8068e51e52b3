/**
 * Launcher of the elementwise `y = [y +] alpha · x` kernel: copies of the residual stream and
 * cotangents added into gradients, without leaving the compute pass.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./add.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "add");

/** Arguments of {@linkcode encodeAdd}. */
export interface AddArgs {
  /** Input `[n]` (must not alias `y`). */
  x: Binding;
  /** Output `[n]`. */
  y: Binding;
  /** Number of elements. */
  n: number;
  /** Factor of `x`; default 1. */
  alpha?: number;
  /** Add to `y` instead of overwriting it; default false (a copy). */
  accumulate?: boolean;
}

/**
 * Records `y = [y +] alpha · x` over `n` elements.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, length, factor and mode.
 *
 * @example Copy a residual stream, then add a cotangent
 * ```ts ignore
 * import { encodeAdd } from "./add.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, h: GPUBuffer, hCopy: GPUBuffer, g: GPUBuffer;
 * encodeAdd(ctx, pass, { x: h, y: hCopy, n: 1024 });
 * encodeAdd(ctx, pass, { x: g, y: hCopy, n: 1024, accumulate: true });
 * ```
 */
export function encodeAdd(ctx: GpuContext, pass: GPUComputePassEncoder, args: AddArgs): void {
  const { n } = args;
  checkSize("add", "x", args.x, n, `[n] = [${n}]`);
  checkSize("add", "y", args.y, n, `[n] = [${n}]`);
  ctx.dispatch(
    pass,
    ctx.pipeline("add", code, { constants: GRID_CONSTANTS }),
    [args.x, args.y],
    grid(Math.ceil(n / 256)),
    packUniform(PARAMS, { n, accumulate: args.accumulate ?? false, alpha: args.alpha ?? 1 }),
  );
}
