/**
 * Launcher of the in-place rotary position embedding kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./rope.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "rope");

/** Arguments of {@linkcode encodeRope}. */
export interface RopeArgs {
  /** `[tokens · heads, d]`, rotated in place. */
  x: Binding;
  /** Position of each token (u32). */
  positions: Binding;
  /** `[maxPos, d/2, 2]` table from `ropeTable`. */
  table: Binding;
  /** Rows of `x` (tokens · heads). */
  rows: number;
  /** Head dimension. */
  d: number;
  /** Heads per token. */
  heads: number;
  /** Positions in the table (larger positions are clamped; callers validate). */
  maxPos: number;
}

/**
 * Records the in-place rotation of `x`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 *
 * @example Rotate the queries of 8 tokens
 * ```ts ignore
 * import { encodeRope } from "./rope.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, q: GPUBuffer, pos: GPUBuffer, table: GPUBuffer;
 * encodeRope(ctx, pass, { x: q, positions: pos, table, rows: 8 * 16, d: 128, heads: 16, maxPos: 4096 });
 * ```
 */
export function encodeRope(ctx: GpuContext, pass: GPUComputePassEncoder, args: RopeArgs): void {
  if (args.d % 2 !== 0) {
    throw new RangeError(`Cannot apply RoPE: head size must be even: current value is ${args.d}`);
  }
  const { rows, d, heads, maxPos } = args;
  checkSize("RoPE", "x", args.x, rows * d, `[rows, d] = [${rows}, ${d}]`);
  const tokens = heads > 0 ? Math.ceil(rows / heads) : 0;
  checkSize("RoPE", "positions", args.positions, tokens, `[rows / heads] = [${tokens}]`);
  checkSize(
    "RoPE",
    "table",
    args.table,
    maxPos * d,
    `[maxPos, d / 2, 2] = [${maxPos}, ${d / 2}, 2]`,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("rope", code, { constants: GRID_CONSTANTS }),
    [args.x, args.positions, args.table],
    grid(Math.ceil((args.rows * args.d) / 2 / 256)),
    packUniform(PARAMS, { rows, D: d, heads, max_pos: maxPos }),
  );
}
