/**
 * Launcher of the backward of the fused per-head q/k RMSNorm + RoPE: the gradients of the raw
 * queries and keys, written in place over the gradients of the rotated ones, in one dispatch.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { dispatchRows, normRopeKernel, qkParams } from "./_shape.ts";
import type { QkInputs } from "./qk_norm_rope.ts";
import code from "./qk_norm_rope_backward.wgsl" with { type: "text" };

const KERNEL = normRopeKernel("qk_norm_rope_backward", code);

/** Arguments of {@linkcode encodeQkNormRopeBackward}: the forward's inputs, and the gradients. */
export interface QkNormRopeBackwardArgs extends QkInputs {
  /** d loss / d q `[tokens · hq, d]` on entry; d loss / d qRaw on exit. */
  dq: Binding;
  /** d loss / d k `[tokens · hkv, d]` on entry; d loss / d kRaw on exit. */
  dk: Binding;
}

/**
 * Records the input gradients of `encodeQkNormRope` in place: `dq ← d loss / d qRaw` and
 * `dk ← d loss / d kRaw` (RoPE backward then RMSNorm backward per head, one dispatch). The norm
 * weights' gradients are not computed: when they train, use `encodeRopeBackward` and
 * `encodeRmsNormBackward` instead.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape, as in the forward.
 * @throws {RangeError} If the head size is odd, or a buffer is smaller than its shape.
 *
 * @example Gradients of the raw queries and keys of 8 tokens
 * ```ts ignore
 * import { encodeQkNormRopeBackward } from "./qk_norm_rope_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, dq: GPUBuffer, dk: GPUBuffer, qRaw: GPUBuffer;
 * declare const kRaw: GPUBuffer, qNorm: GPUBuffer, kNorm: GPUBuffer, pos: GPUBuffer;
 * declare const table: GPUBuffer;
 * encodeQkNormRopeBackward(ctx, pass, {
 *   dq, dk, qRaw, kRaw, qNorm, kNorm, positions: pos, table,
 *   tokens: 8, hq: 16, hkv: 8, d: 128, maxPos: 40960, eps: 1e-6,
 * });
 * ```
 */
export function encodeQkNormRopeBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: QkNormRopeBackwardArgs,
): void {
  const kernel = "q/k norm + RoPE backward";
  const { params, rows } = qkParams(kernel, args, { q: { dq: args.dq }, k: { dk: args.dk } });
  dispatchRows(
    ctx,
    pass,
    KERNEL,
    [args.dq, args.dk, args.qRaw, args.kRaw, args.qNorm, args.kNorm, args.positions, args.table],
    rows,
    params,
  );
}
