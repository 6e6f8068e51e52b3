/**
 * Launcher of the backward of the SwiGLU activation.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./swiglu_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "swiglu_backward");

/** Arguments of {@linkcode encodeSwigluBackward}. */
export interface SwigluBackwardArgs {
  /** Gradient of the activation output. */
  dOut: Binding;
  /** Forward gate projection output. */
  gate: Binding;
  /** Forward up projection output. */
  up: Binding;
  /** Gradient of the gate input (must not alias an input). */
  dGate: Binding;
  /** Gradient of the up input (must not alias an input). */
  dUp: Binding;
  /** Number of elements. */
  n: number;
}

/**
 * Records `dGate` and `dUp` of `out = silu(gate) · up`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and length.
 *
 * @example Gradients of 1000 activations
 * ```ts ignore
 * import { encodeSwigluBackward } from "./swiglu_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dOut: GPUBuffer, gate: GPUBuffer, up: GPUBuffer;
 * declare const dGate: GPUBuffer, dUp: GPUBuffer;
 * encodeSwigluBackward(ctx, pass, { dOut, gate, up, dGate, dUp, n: 1000 });
 * ```
 */
export function encodeSwigluBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: SwigluBackwardArgs,
): void {
  const { n } = args;
  for (const name of ["dOut", "gate", "up", "dGate", "dUp"] as const) {
    checkSize("swiglu backward", name, args[name], n, `[n] = [${n}]`);
  }
  ctx.dispatch(
    pass,
    ctx.pipeline("swiglu_backward", code, { constants: GRID_CONSTANTS }),
    [args.dOut, args.gate, args.up, args.dGate, args.dUp],
    grid(Math.ceil(n / 256)),
    packUniform(PARAMS, { n }),
  );
}
