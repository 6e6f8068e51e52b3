/**
 * Launcher of the router-gate kernel (`moe_route.wgsl`): softmax of each token's E router logits,
 * top-k or top-p selection, renormalised gates, in place.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import type { MoeActivation } from "./moe_route_ref.ts";
import { resolveMoeRoute } from "./moe_route_ref.ts";
import code from "./moe_route.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "moe_route");

/**
 * Most experts the kernel routes among (its private arrays' size).
 *
 * @example Check an expert count before uploading
 * ```ts
 * import { MOE_ROUTE_MAX_EXPERTS } from "./moe_route.ts";
 * console.log(8 <= MOE_ROUTE_MAX_EXPERTS); // true
 * ```
 */
export const MOE_ROUTE_MAX_EXPERTS = 64;

/** Arguments of {@linkcode encodeMoeRoute}. */
export interface MoeRouteArgs {
  /** Buffer holding the logits `[m, experts]` from element `offset`; overwritten by the gates. */
  buffer: Binding;
  /** First element of the logits in `buffer`; default 0. */
  offset?: number;
  /** Tokens. */
  m: number;
  /** Experts E (1 ≤ E ≤ 64). */
  experts: number;
  /** `"top-k"` (default) or `"top-p"`. */
  activation?: MoeActivation;
  /** k of top-k; default `min(2, E)`. */
  topK?: number;
  /** Threshold of top-p; default 0.8. */
  topP?: number;
}

/**
 * Records the in-place routing of `m` tokens: logits → gates (see `moeRouteRef`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffer, offset, shape and activation rule.
 * @throws {RangeError} If E exceeds 64, an option is out of range or the buffer is too small.
 *
 * @example Route 8 tokens among 4 experts, top-2
 * ```ts ignore
 * import { encodeMoeRoute } from "./moe_route.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, logits: GPUBuffer;
 * encodeMoeRoute(ctx, pass, { buffer: logits, m: 8, experts: 4, topK: 2 });
 * ```
 */
export function encodeMoeRoute(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MoeRouteArgs,
): void {
  const r = resolveMoeRoute(args);
  const { m } = args;
  const offset = args.offset ?? 0;
  if (r.experts > MOE_ROUTE_MAX_EXPERTS) {
    throw new RangeError(
      `Cannot record moe_route: "experts" must be at most ${MOE_ROUTE_MAX_EXPERTS}: current ` +
        `value is ${r.experts}`,
    );
  }
  checkSize("moe_route", "buffer", args.buffer, offset + m * r.experts, `offset + [m, E]`);
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("moe_route", code, { constants: GRID_CONSTANTS }),
    [args.buffer],
    grid(Math.ceil(m / 64)),
    packUniform(PARAMS, {
      m,
      experts: r.experts,
      top_k: r.topK,
      mode: r.activation === "top-k" ? 0 : 1,
      top_p: r.topP,
      offset,
    }),
  );
}
