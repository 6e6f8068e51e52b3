/**
 * Launchers of HILO's load-balancing loss on the GPU, one term per routed projection (see
 * `moe_balance_ref.ts` for the formula and its source): the projection's statistics and loss
 * (`moe_balance_stats.wgsl`) and the logits' gradient (`moe_balance_backward.wgsl`).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import { MOE_ROUTE_MAX_EXPERTS } from "./moe_route.ts";
import { type MoeActivation, resolveMoeRoute } from "./moe_route_ref.ts";
import statsCode from "./moe_balance_stats.wgsl" with { type: "text" };
import backwardCode from "./moe_balance_backward.wgsl" with { type: "text" };

const STATS = uniformLayout(statsCode, "moe_balance_stats");
const BACKWARD = uniformLayout(backwardCode, "moe_balance_backward");

/** Arguments of {@linkcode encodeMoeBalanceStats}. */
export interface MoeBalanceStatsArgs {
  /** Buffer holding the router logits `[m, E]` from element `offset`. */
  logits: Binding;
  /** First element of the logits; default 0. */
  offset?: number;
  /** 1 for real tokens `[m]` (u32). */
  mask: Binding;
  /** The projection's statistics `[2E + 1]` (written): counts, probability sums, real tokens. */
  stats: Binding;
  /** One float the projection's loss `E·Σ_e f_e·P_e` is added to. */
  total: Binding;
  /** Overwrite `total` (the step's first routed projection) instead of adding; default false. */
  resetTotal?: boolean;
  /** Tokens. */
  m: number;
  /** Experts E (≤ 64). */
  experts: number;
  /** `"top-k"` (default) or `"top-p"`. */
  activation?: MoeActivation;
  /** k of top-k; default `min(2, E)`. */
  topK?: number;
  /** Threshold of top-p; default 0.8. */
  topP?: number;
}

function checkExperts(kernel: string, E: number): void {
  if (E > MOE_ROUTE_MAX_EXPERTS) {
    throw new RangeError(
      `Cannot record ${kernel}: "experts" must be at most ${MOE_ROUTE_MAX_EXPERTS}: current ` +
        `value is ${E}`,
    );
  }
}

/**
 * Records one projection's balance statistics (see `moeBalanceStatsRef`) and adds its loss
 * (`moeBalanceLossRef`) to `total`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Logits, mask, statistics, loss total and the activation rule.
 * @throws {RangeError} If E exceeds 64, an option is out of range or a buffer is too small.
 *
 * @example The first routed projection of a step
 * ```ts ignore
 * import { encodeMoeBalanceStats } from "./moe_balance.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, logits: GPUBuffer, mask: GPUBuffer;
 * declare const stats: GPUBuffer, total: GPUBuffer;
 * encodeMoeBalanceStats(ctx, pass, {
 *   logits, mask, stats, total, resetTotal: true, m: 16, experts: 4,
 * });
 * ```
 */
export function encodeMoeBalanceStats(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MoeBalanceStatsArgs,
): void {
  const r = resolveMoeRoute(args);
  const { m } = args;
  const offset = args.offset ?? 0;
  checkExperts("moe_balance_stats", r.experts);
  checkSize("moe_balance_stats", "logits", args.logits, offset + m * r.experts, "offset + [m, E]");
  checkSize("moe_balance_stats", "mask", args.mask, m, "[m]");
  checkSize("moe_balance_stats", "stats", args.stats, 2 * r.experts + 1, "[2E + 1]");
  checkSize("moe_balance_stats", "total", args.total, 1, "[1]");
  ctx.dispatch(
    pass,
    ctx.pipeline("moe_balance_stats", statsCode),
    [args.logits, args.mask, args.stats, args.total],
    [1, 1, 1],
    packUniform(STATS, {
      m,
      experts: r.experts,
      top_k: r.topK,
      mode: r.activation === "top-k" ? 0 : 1,
      top_p: r.topP,
      offset,
      reset_total: args.resetTotal ?? false,
    }),
  );
}

/** Arguments of {@linkcode encodeMoeBalanceBackward}. */
export interface MoeBalanceBackwardArgs {
  /** Buffer holding the router logits `[m, E]` from `offset`; overwritten by their gradient. */
  buffer: Binding;
  /** First element of the logits; default 0. */
  offset?: number;
  /** 1 for real tokens `[m]` (u32). */
  mask: Binding;
  /** The projection's statistics `[2E + 1]` over the whole backward call. */
  stats: Binding;
  /** Tokens. */
  m: number;
  /** Experts E (≤ 64). */
  experts: number;
  /** Coefficient of the loss. */
  coef: number;
}

/**
 * Records the logits' gradient of `coef ×` the balance loss, in place (see
 * `moeBalanceBackwardRef`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffer, mask, statistics, shape and coefficient.
 * @throws {RangeError} If E exceeds 64 or a buffer is too small.
 *
 * @example Balance gradient of 16 tokens' logits
 * ```ts ignore
 * import { encodeMoeBalanceBackward } from "./moe_balance.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, buf: GPUBuffer, mask: GPUBuffer, stats: GPUBuffer;
 * encodeMoeBalanceBackward(ctx, pass, { buffer: buf, mask, stats, m: 16, experts: 4, coef: 0.01 });
 * ```
 */
export function encodeMoeBalanceBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: MoeBalanceBackwardArgs,
): void {
  const { m, experts: E, coef } = args;
  const offset = args.offset ?? 0;
  checkExperts("moe_balance_backward", E);
  checkSize("moe_balance_backward", "buffer", args.buffer, offset + m * E, "offset + [m, E]");
  checkSize("moe_balance_backward", "mask", args.mask, m, "[m]");
  checkSize("moe_balance_backward", "stats", args.stats, 2 * E + 1, "[2E + 1]");
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("moe_balance_backward", backwardCode, { constants: GRID_CONSTANTS }),
    [args.buffer, args.mask, args.stats],
    grid(Math.ceil(m / 64)),
    packUniform(BACKWARD, { m, experts: E, offset, coef }),
  );
}
