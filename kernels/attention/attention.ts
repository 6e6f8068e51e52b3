/**
 * Launcher of causal grouped-query attention over a key/value buffer (a whole sequence, or a KV
 * cache with `qStart` past tokens).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { uniformLayout } from "../../gpu/uniforms.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import type { AttentionShape } from "./attention_ref.ts";
import { attentionParams } from "./_attention_params.ts";
import code from "./attention.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "attention");

/** Arguments of {@linkcode encodeAttention}. */
export interface AttentionArgs extends AttentionShape {
  /** Queries `[b, tq, hq, d]`. */
  q: Binding;
  /** Keys `[b, s, hkv, d]`. */
  k: Binding;
  /** Values `[b, s, hkv, d]`. */
  v: Binding;
  /** Key mask `[b, s]` (u32, 1 = real token). */
  mask: Binding;
  /** Output `[b, tq, hq, d]`. */
  o: Binding;
}

/**
 * Records one attention dispatch (one workgroup per batch row, query and head).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and causality.
 *
 * @example Self-attention of 2 sequences of 16 tokens
 * ```ts ignore
 * import { encodeAttention } from "./attention.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer;
 * declare const mask: GPUBuffer, o: GPUBuffer;
 * encodeAttention(ctx, pass, { q, k, v, mask, o, b: 2, tq: 16, s: 16, hq: 4, hkv: 2, d: 16 });
 * ```
 */
export function encodeAttention(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: AttentionArgs,
): void {
  if (args.d > 256 || args.hq % args.hkv !== 0) {
    throw new RangeError(
      `Cannot run attention: need head size <= 256 and query heads divisible by key/value ` +
        `heads: current values are d=${args.d}, hq=${args.hq}, hkv=${args.hkv}`,
    );
  }
  const params = attentionParams("attention", PARAMS, args, ["q", "o"], ["k", "v"]);
  ctx.dispatch(
    pass,
    ctx.pipeline("attention", code, { constants: GRID_CONSTANTS }),
    [args.q, args.k, args.v, args.mask, args.o],
    grid(args.b * args.tq * args.hq),
    params,
  );
}
