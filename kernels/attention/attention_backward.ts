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
import { attentionParams, flashSlices } from "./_attention_params.ts";
import code from "./attention_backward.wgsl" with { type: "text" };
import flashCode from "./attention_backward_flash.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "attention_backward");
const FLASH_PARAMS = uniformLayout(flashCode, "attention_backward_flash");

/**
 * Which attention backward kernels to record: `"rows"`, one workgroup per (batch row, query, head)
 * for `dq` and one per (batch row, key slot, kv head) for `dk`, `dv`, each streaming its operands
 * from memory (any head size ≤ 256); `"flash"`, the tiled pair (`attention_backward_flash.wgsl`):
 * one workgroup per 16 (query, head) rows of a kv head sharing each block of 8 keys and values
 * staged in shared memory, then one per 16 key slots sharing each block of 8 query rows (head size
 * ≤ 128 and a multiple of 4); `"auto"` picks by shape.
 */
export type AttentionBackwardKernel = "auto" | "rows" | "flash";

/**
 * The kernels that `kernel: "auto"` records: `"flash"` whenever the head size allows it (≤ 128,
 * a multiple of 4), else `"rows"`. Unlike the forward, no query count is too small: the backward
 * runs in training, over whole sequences, never one decode query at a time.
 *
 * @param shape The head size.
 * @returns `"flash"` or `"rows"`.
 *
 * @example Heads of 128 (Qwen3) and of 256
 * ```ts
 * import { pickAttentionBackwardKernel } from "./attention_backward.ts";
 * console.log(pickAttentionBackwardKernel({ d: 128 }), pickAttentionBackwardKernel({ d: 256 }));
 * // flash rows
 * ```
 */
export function pickAttentionBackwardKernel(
  shape: Pick<AttentionShape, "d">,
): "rows" | "flash" {
  return shape.d <= 128 && shape.d % 4 === 0 ? "flash" : "rows";
}

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
  /** Kernels; default `"auto"` (by shape, see {@linkcode pickAttentionBackwardKernel}). */
  kernel?: AttentionBackwardKernel;
}

/**
 * Records the two dispatches of the attention backward (`dq` and the row statistics first, then
 * `dk` and `dv`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and causality, as in the forward.
 * @throws {RangeError} If the head size exceeds 256 or `hkv` does not divide `hq`, or
 * `kernel: "flash"` is asked for a head size over 128 or not a multiple of 4.
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
  let kernel = args.kernel ?? "auto";
  if (kernel === "auto") kernel = pickAttentionBackwardKernel(args);
  if (kernel === "flash" && (args.d > 128 || args.d % 4 !== 0)) {
    throw new RangeError(
      `Cannot run flash attention backward: need a head size <= 128 and a multiple of 4: ` +
        `current value is d=${args.d}`,
    );
  }
  const flash = kernel === "flash";
  const [name, shader] = flash
    ? ["attention_backward_flash", flashCode]
    : ["attention_backward", code];
  const params = attentionParams(
    "attention backward",
    flash ? FLASH_PARAMS : PARAMS,
    args,
    ["q", "dO", "dq"],
    ["k", "v", "dk", "dv"],
  );
  const inputs = [args.q, args.k, args.v, args.mask, args.dO];
  // DJ (flash only): the vec4s of a thread's quarter of d that hold the head, not zero padding.
  const constants = flash ? { ...GRID_CONSTANTS, DJ: flashSlices(args.d) } : GRID_CONSTANTS;
  // The tiled kernels run per kv head over blocks of 16 (query, head) rows, then 16 key slots.
  const groups = flash
    ? [
      args.b * args.hkv * Math.ceil((args.tq * args.hq / args.hkv) / 16),
      args.b * args.hkv * Math.ceil(args.s / 16),
    ]
    : [args.b * args.tq * args.hq, args.b * args.s * args.hkv];
  ctx.dispatch(
    pass,
    ctx.pipeline(name, shader, { constants }),
    [...inputs, args.dq, args.stats],
    grid(groups[0]),
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline(name, shader, { entryPoint: "dkv", constants }),
    [...inputs, args.stats, args.dk, args.dv],
    grid(groups[1]),
    params,
  );
}
