/**
 * Launcher of the SwiGLU activation kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./swiglu.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "swiglu");

/** Arguments of {@linkcode encodeSwiglu}. */
export interface SwigluArgs {
  /** Gate projection output. */
  gate: Binding;
  /** Up projection output. */
  up: Binding;
  /** Output (must not alias the inputs). */
  out: Binding;
  /** Number of elements. */
  n: number;
}

/**
 * Records `out = silu(gate) * up`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and length.
 *
 * @example Activate 1000 elements
 * ```ts ignore
 * import { encodeSwiglu } from "./swiglu.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, gate: GPUBuffer, up: GPUBuffer, out: GPUBuffer;
 * encodeSwiglu(ctx, pass, { gate, up, out, n: 1000 });
 * ```
 */
export function encodeSwiglu(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: SwigluArgs,
): void {
  const { n } = args;
  for (const name of ["gate", "up", "out"] as const) {
    checkSize("swiglu", name, args[name], n, `[n] = [${n}]`);
  }
  ctx.dispatch(
    pass,
    ctx.pipeline("swiglu", code, { constants: GRID_CONSTANTS }),
    [args.gate, args.up, args.out],
    grid(Math.ceil(n / 256)),
    packUniform(PARAMS, { n }),
  );
}
