/**
 * Launcher of the decode-cursor advance (cache slot, output step and per-row positions).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import code from "./decode_advance.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "decode_advance");

/** Arguments of {@linkcode encodeDecodeAdvance}. */
export interface DecodeAdvanceArgs {
  /** Decode cursor `[slot, step]` (u32), both incremented. */
  ctrl: Binding;
  /** RoPE position of each row (u32), incremented. */
  positions: Binding;
  /** Rows. */
  rows: number;
}

/**
 * Records one advance of the decode cursor.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and number of rows.
 *
 * @example Advance 16 rows
 * ```ts ignore
 * import { encodeDecodeAdvance } from "./decode_advance.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, ctrl: GPUBuffer, positions: GPUBuffer;
 * encodeDecodeAdvance(ctx, pass, { ctrl, positions, rows: 16 });
 * ```
 */
export function encodeDecodeAdvance(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: DecodeAdvanceArgs,
): void {
  checkSize("decode_advance", "positions", args.positions, args.rows, `[rows] = [${args.rows}]`);
  ctx.dispatch(
    pass,
    ctx.pipeline("decode_advance", code),
    [args.ctrl, args.positions],
    [Math.max(1, Math.ceil(args.rows / 64)), 1, 1],
    packUniform(PARAMS, { R: args.rows }),
  );
}
