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
import flashCode from "./attention_flash.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "attention");
const FLASH_PARAMS = uniformLayout(flashCode, "attention_flash");

/**
 * Which attention kernel to record: `"rows"`, one workgroup per (batch row, query, head) that
 * streams every key from memory (decode; any head size ≤ 256); `"flash"`, one workgroup per
 * 16 (query, head) rows of a kv head that share each block of 8 keys and values loaded once into
 * shared memory (prefill; head size ≤ 128 and a multiple of 4); `"auto"` picks by shape.
 */
export type AttentionKernel = "auto" | "rows" | "flash";

/**
 * The kernel that `kernel: "auto"` records: `"flash"` when the head size allows it and the
 * queries fill at least one block of 16 rows (`tq · hq / hkv ≥ 16`), else `"rows"`.
 *
 * @param shape Queries, heads and head size.
 * @returns `"flash"` or `"rows"`.
 *
 * @example Prefill of 64 tokens and one decode step of Qwen3-0.6B (16/8 heads of 128)
 * ```ts
 * import { pickAttentionKernel } from "./attention.ts";
 * const heads = { hq: 16, hkv: 8, d: 128 };
 * console.log(pickAttentionKernel({ tq: 64, ...heads }), pickAttentionKernel({ tq: 1, ...heads }));
 * // flash rows
 * ```
 */
export function pickAttentionKernel(
  shape: Pick<AttentionShape, "tq" | "hq" | "hkv" | "d">,
): "rows" | "flash" {
  const { tq, hq, hkv, d } = shape;
  return d <= 128 && d % 4 === 0 && tq * (hq / hkv) >= 16 ? "flash" : "rows";
}

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
  /** Kernel; default `"auto"` (by shape, see {@linkcode pickAttentionKernel}). */
  kernel?: AttentionKernel;
}

/**
 * Records one attention dispatch, with the kernel picked by shape (see {@linkcode AttentionKernel}).
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
  let kernel = args.kernel ?? "auto";
  if (kernel === "auto") kernel = pickAttentionKernel(args);
  if (kernel === "flash") {
    if (args.d > 128 || args.d % 4 !== 0) {
      throw new RangeError(
        `Cannot run flash attention: need a head size <= 128 and a multiple of 4: current ` +
          `value is d=${args.d}`,
      );
    }
    const rows = args.tq * (args.hq / args.hkv);
    ctx.dispatch(
      pass,
      ctx.pipeline("attention_flash", flashCode, { constants: GRID_CONSTANTS }),
      [args.q, args.k, args.v, args.mask, args.o],
      grid(args.b * args.hkv * Math.ceil(rows / 16)),
      attentionParams("attention", FLASH_PARAMS, args, ["q", "o"], ["k", "v"]),
    );
    return;
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
