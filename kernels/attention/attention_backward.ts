/**
 * Launcher of the backward of causal grouped-query attention: `dq` per (batch row, query, head),
 * then `dk`, `dv` per (batch row, key slot, key/value head) summed over the group's query heads.
 * The softmax statistics are recomputed, so the forward needs to keep nothing but its inputs.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import type { AttentionShape } from "./attention_ref.ts";
import { attentionParams } from "./_attention_params.ts";
import code from "./attention_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "attention_backward");

/** Arguments of {@linkcode encodeAttentionBackward}. */
export interface AttentionBackwardArgs extends AttentionShape {
  /** Queries `[b, tq, hq, d]`, as in the forward. */
  q: Binding;
  /** Keys `[b, s, hkv, d]`. */
  k: Binding;
  /** Values `[b, s, hkv, d]`. */
  v: Binding;
  /** Key mask `[b, s]` (u32, 1 = real token). */
  mask: Binding;
  /** Gradient of the output `[b, tq, hq, d]`. */
  dO: Binding;
  /** Gradient of the queries `[b, tq, hq, d]`. */
  dq: Binding;
  /** Gradient of the keys `[b, s, hkv, d]` (every slot written; unseen slots get 0). */
  dk: Binding;
  /** Gradient of the values `[b, s, hkv, d]` (every slot written; unseen slots get 0). */
  dv: Binding;
  /** Scratch `[b, tq, hq, 2]`: the log-sum-exp and `Σ P·dP` of each query row. */
  stats: Binding;
}

/**
 * Records the two dispatches of the attention backward (`dq` and the row statistics first, then
 * `dk` and `dv`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and causality, as in the forward.
 * @throws {RangeError} If the head size exceeds 256 or `hkv` does not divide `hq`.
 *
 * @example Gradients of self-attention over 2 sequences of 16 tokens
 * ```ts ignore
 * import { encodeAttentionBackward } from "./attention_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer;
 * declare const mask: GPUBuffer, dO: GPUBuffer, dq: GPUBuffer, dk: GPUBuffer, dv: GPUBuffer;
 * declare const stats: GPUBuffer;
 * encodeAttentionBackward(ctx, pass, {
 *   q, k, v, mask, dO, dq, dk, dv, stats, b: 2, tq: 16, s: 16, hq: 4, hkv: 2, d: 16,
 * });
 * ```
 */
export function encodeAttentionBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: AttentionBackwardArgs,
): void {
  if (args.d > 256 || args.hq % args.hkv !== 0) {
    throw new RangeError(
      `Cannot run attention backward: need head size <= 256 and query heads divisible by ` +
        `key/value heads: current values are d=${args.d}, hq=${args.hq}, hkv=${args.hkv}`,
    );
  }
  const { b, tq, hq } = args;
  checkSize(
    "attention backward",
    "stats",
    args.stats,
    b * tq * hq * 2,
    `[b, tq, hq, 2] = [${b}, ${tq}, ${hq}, 2]`,
  );
  const params = attentionParams(
    "attention backward",
    PARAMS,
    args,
    ["q", "dO", "dq"],
    ["k", "v", "dk", "dv"],
  );
  const inputs = [args.q, args.k, args.v, args.mask, args.dO];
  ctx.dispatch(
    pass,
    ctx.pipeline("attention_backward", code, { constants: GRID_CONSTANTS }),
    [...inputs, args.dq, args.stats],
    grid(args.b * args.tq * args.hq),
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("attention_backward", code, { entryPoint: "dkv", constants: GRID_CONSTANTS }),
    [...inputs, args.stats, args.dk, args.dv],
    grid(args.b * args.s * args.hkv),
    params,
  );
}
