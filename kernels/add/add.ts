/**
 * Launcher of the elementwise `y = [y +] alpha · x` kernel: copies of the residual stream and
 * cotangents added into gradients, without leaving the compute pass.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { f32Bits } from "../../gpu/context.ts";
import { grid } from "../_grid.ts";
import code from "./add.wgsl" with { type: "text" };

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
  ctx.dispatch(
    pass,
    ctx.pipeline("add", code),
    [args.x, args.y],
    grid(Math.ceil(args.n / 256)),
    [args.n, args.accumulate ? 1 : 0, f32Bits(args.alpha ?? 1)],
  );
}
