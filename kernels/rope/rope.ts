/**
 * Launcher of the in-place rotary position embedding kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { encodeRotation } from "./_rotate.ts";

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
  encodeRotation(ctx, pass, { ...args, kernel: "RoPE", name: "x", x: args.x, sign: 1 });
}
