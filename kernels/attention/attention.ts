/**
 * Launcher of causal grouped-query attention over a key/value buffer (a whole sequence, or a KV
 * cache with `qStart` past tokens).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import type { AttentionShape } from "./attention_ref.ts";
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
  const { b, tq, s, hq, hkv, d } = args;
  const qShape = `[b, tq, hq, d] = [${b}, ${tq}, ${hq}, ${d}]`;
  const kvShape = `[b, s, hkv, d] = [${b}, ${s}, ${hkv}, ${d}]`;
  for (const name of ["q", "o"] as const) {
    checkSize("attention", name, args[name], b * tq * hq * d, qShape);
  }
  for (const name of ["k", "v"] as const) {
    checkSize("attention", name, args[name], b * s * hkv * d, kvShape);
  }
  checkSize("attention", "mask", args.mask, b * s, `[b, s] = [${b}, ${s}]`);
  ctx.dispatch(
    pass,
    ctx.pipeline("attention", code, { constants: GRID_CONSTANTS }),
    [args.q, args.k, args.v, args.mask, args.o],
    grid(args.b * args.tq * args.hq),
    packUniform(PARAMS, {
      B: args.b,
      Tq: args.tq,
      S: args.s,
      kv_len: args.kvLen ?? args.s,
      q_start: args.qStart ?? 0,
      Hq: args.hq,
      Hkv: args.hkv,
      D: args.d,
      scale: args.scale ?? 1 / Math.sqrt(args.d),
    }),
  );
}
