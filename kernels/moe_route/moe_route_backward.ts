/**
 * Launcher of the router-gate backward kernel (`moe_route_backward.wgsl`): the logits' gradient
 * from the gates' gradient, in place.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./moe_route_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "moe_route_backward");

/** Arguments of {@linkcode encodeMoeRouteBackward}. */
export interface MoeRouteBackwardArgs {
  /** Buffer holding the gates `[m, E]` from `gateOffset` (read). */
  gates: Binding;
  /** First element of the gates; default 0. */
  gateOffset?: number;
  /** Buffer holding `d loss / d gates` `[m, E]` from `offset`; overwritten by `d loss / d logits`. */
  d: Binding;
  /** First element of the gradients; default 0. */
  offset?: number;
  /** Tokens. */
  m: number;
  /** Experts E. */
  experts: number;
}

/**
 * Records `dz = g ⊙ (dg − Σ_e g_e·dg_e)` per token, over `dg`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, offsets and shape.
 * @throws {RangeError} If a buffer is too small.
 *
 * @example Logit gradients of 8 tokens among 4 experts
 * ```ts ignore
 * import { encodeMoeRouteBackward } from "./moe_route_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, gates: GPUBuffer, dg: GPUBuffer;
 * encodeMoeRouteBackward(ctx, pass, { gates, d: dg, m: 8, experts: 4 });
 * ```
 */
export function encodeMoeRouteBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MoeRouteBackwardArgs,
): void {
  const { m, experts } = args;
  const gateOffset = args.gateOffset ?? 0;
  const offset = args.offset ?? 0;
  checkSize("moe_route_backward", "gates", args.gates, gateOffset + m * experts, "[m, E]");
  checkSize("moe_route_backward", "d", args.d, offset + m * experts, "[m, E]");
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("moe_route_backward", code, { constants: GRID_CONSTANTS }),
    [args.gates, args.d],
    grid(Math.ceil(m / 64)),
    packUniform(PARAMS, { m, experts, gate_offset: gateOffset, offset }),
  );
}
