/**
 * Launcher of the in-place backward of the rotary position embedding (rotation by minus the
 * forward's angle).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { encodeRotation } from "./_rotate.ts";

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
  encodeRotation(ctx, pass, {
    ...args,
    kernel: "RoPE backward",
    name: "grad",
    x: args.grad,
    sign: -1,
  });
}
