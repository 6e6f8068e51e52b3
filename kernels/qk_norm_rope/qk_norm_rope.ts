/**
 * Launcher of the fused per-head q/k RMSNorm + RoPE kernel (Qwen3's `q_norm`/`k_norm` then the
 * rotary embedding, queries and keys in one dispatch).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { dispatchRows, normRopeKernel, type QkInputs, qkParams } from "./_shape.ts";
import code from "./qk_norm_rope.wgsl" with { type: "text" };

export type { QkInputs, QkShape } from "./_shape.ts";

const KERNEL = normRopeKernel("qk_norm_rope", code);

/** Arguments of {@linkcode encodeQkNormRope}. */
export interface QkNormRopeArgs extends QkInputs {
  /** Receives the normalised, rotated queries `[tokens · hq, d]` (must not alias `qRaw`). */
  q: Binding;
  /** Receives the normalised, rotated keys `[tokens · hkv, d]` (must not alias `kRaw`). */
  k: Binding;
}

/**
 * Records `q = rope(rms_norm(qRaw) · qNorm)` and `k = rope(rms_norm(kRaw) · kNorm)` per head, one
 * dispatch for both (what `encodeRmsNorm` twice then `encodeRope` twice compute).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 * @throws {RangeError} If the head size is odd, or a buffer is smaller than its shape.
 *
 * @example Queries and keys of 8 tokens at Qwen3-0.6B's head shapes
 * ```ts ignore
 * import { encodeQkNormRope } from "./qk_norm_rope.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, qRaw: GPUBuffer, kRaw: GPUBuffer, q: GPUBuffer;
 * declare const k: GPUBuffer, qNorm: GPUBuffer, kNorm: GPUBuffer, pos: GPUBuffer, table: GPUBuffer;
 * encodeQkNormRope(ctx, pass, {
 *   qRaw, kRaw, qNorm, kNorm, positions: pos, table, q, k,
 *   tokens: 8, hq: 16, hkv: 8, d: 128, maxPos: 40960, eps: 1e-6,
 * });
 * ```
 */
export function encodeQkNormRope(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: QkNormRopeArgs,
): void {
  const { params, rows } = qkParams("q/k norm + RoPE", args, {
    q: { q: args.q },
    k: { k: args.k },
  });
  dispatchRows(
    ctx,
    pass,
    KERNEL,
    [args.qRaw, args.kRaw, args.qNorm, args.kNorm, args.positions, args.table, args.q, args.k],
    rows,
    params,
  );
}
