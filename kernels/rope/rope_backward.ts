/**
 * Launcher of the in-place backward of the rotary position embedding (rotation by minus the
 * forward's angle).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./rope.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "rope_backward");

/** Arguments of {@linkcode encodeRopeBackward}. */
export interface RopeBackwardArgs {
  /** Gradient of the rotated output `[tokens · heads, d]`, turned into that of the input in place. */
  grad: Binding;
  /** Position of each token (u32), as in the forward. */
  positions: Binding;
  /** The forward's `[maxPos, d/2, 2]` table from `ropeTable`. */
  table: Binding;
  /** Rows of `grad` (tokens · heads). */
  rows: number;
  /** Head dimension (even). */
  d: number;
  /** Heads per token. */
  heads: number;
  /** Positions in the table (larger positions are clamped; callers validate). */
  maxPos: number;
}

/**
 * Records the in-place backward rotation of `grad`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 * @throws {RangeError} If the head size is odd.
 *
 * @example Back-rotate the query gradients of 8 tokens
 * ```ts ignore
 * import { encodeRopeBackward } from "./rope_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dq: GPUBuffer, pos: GPUBuffer, table: GPUBuffer;
 * encodeRopeBackward(ctx, pass, {
 *   grad: dq, positions: pos, table, rows: 8 * 16, d: 128, heads: 16, maxPos: 4096,
 * });
 * ```
 */
export function encodeRopeBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: RopeBackwardArgs,
): void {
  if (args.d % 2 !== 0) {
    throw new RangeError(
      `Cannot apply RoPE backward: head size must be even: current value is ${args.d}`,
    );
  }
  const { rows, d, heads, maxPos } = args;
  checkSize("RoPE backward", "grad", args.grad, rows * d, `[rows, d] = [${rows}, ${d}]`);
  const tokens = heads > 0 ? Math.ceil(rows / heads) : 0;
  checkSize("RoPE backward", "positions", args.positions, tokens, `[rows / heads] = [${tokens}]`);
  checkSize(
    "RoPE backward",
    "table",
    args.table,
    maxPos * d,
    `[maxPos, d / 2, 2] = [${maxPos}, ${d / 2}, 2]`,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("rope_backward", code, { constants: { ...GRID_CONSTANTS, SIGN: -1 } }),
    [args.grad, args.positions, args.table],
    grid(Math.ceil((args.rows * args.d) / 2 / 256)),
    packUniform(PARAMS, { rows, D: d, heads, max_pos: maxPos }),
  );
}
