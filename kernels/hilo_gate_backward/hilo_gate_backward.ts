/**
 * Launcher of the HILO gate backward kernel (`hilo_gate_backward.wgsl`): one expert's gate
 * gradient `Σ_j du·u` per token, and its rows `du` and `u` multiplied by its gate.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./hilo_gate_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "hilo_gate_backward");

/** Arguments of {@linkcode encodeHiloGateBackward}. */
export interface HiloGateBackwardArgs {
  /** Rows `x·A_eᵀ` `[m, r]` from element 0 and the gates `[m, E]` from `gateOffset`. */
  u: GPUBuffer;
  /** Rows `scale·dy·B_e` `[m, r]` from element 0; the gate gradients go to `[m, E]` at `dgOffset`. */
  du: GPUBuffer;
  /** First element of the gates in `u` (≥ m·r). */
  gateOffset: number;
  /** First element of the gate gradients in `du` (≥ m·r). */
  dgOffset: number;
  /** Tokens. */
  m: number;
  /** Rank. */
  r: number;
  /** Experts E. */
  experts: number;
  /** The expert. */
  expert: number;
}

/**
 * Records one expert's gate backward (see the kernel header).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, offsets and shape.
 * @throws {RangeError} If an area overlaps the rows, the expert is out of range or a buffer is
 * too small.
 *
 * @example Expert 1 of 3 over 8 tokens of rank 4
 * ```ts ignore
 * import { encodeHiloGateBackward } from "./hilo_gate_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, u: GPUBuffer, du: GPUBuffer;
 * encodeHiloGateBackward(ctx, pass, { u, du, gateOffset: 64, dgOffset: 64, m: 8, r: 4, experts: 3, expert: 1 });
 * ```
 */
export function encodeHiloGateBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiloGateBackwardArgs,
): void {
  const { m, r, experts, expert, gateOffset, dgOffset } = args;
  if (gateOffset < m * r || dgOffset < m * r) {
    throw new RangeError(
      `Cannot record hilo_gate_backward: "gateOffset" and "dgOffset" must be at least m·r = ` +
        `${m * r}: current values are ${gateOffset} and ${dgOffset}`,
    );
  }
  if (!Number.isSafeInteger(expert) || expert < 0 || expert >= experts) {
    throw new RangeError(
      `Cannot record hilo_gate_backward: "expert" must be in [0, ${experts}): current value is ` +
        `${expert}`,
    );
  }
  checkSize("hilo_gate_backward", "u", args.u, gateOffset + m * experts, "gates end");
  checkSize("hilo_gate_backward", "du", args.du, dgOffset + m * experts, "gate gradients end");
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("hilo_gate_backward", code, { constants: GRID_CONSTANTS }),
    [args.u, args.du],
    grid(Math.ceil(m / 64)),
    packUniform(PARAMS, { m, r, experts, expert, gate_offset: gateOffset, dg_offset: dgOffset }),
  );
}
