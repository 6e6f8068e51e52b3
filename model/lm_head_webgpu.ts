/**
 * The LM head on WebGPU in blocks of tokens: `[rows, vocab]` logits of one block at a time, so a
 * real vocabulary (151,936 for Qwen3) never needs `tokens × vocab` floats in one storage binding.
 * Used by `tokenLogprobs` and by the training step: its forward, and its backward, which
 * recomputes a block's logits unless `keepActivations` kept every block's (one buffer each).
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import type { GpuMatrix } from "../gpu/matrix.ts";
import { encodeMatmul } from "../kernels/matmul/matmul.ts";

/**
 * Tokens per LM-head block for `tokens` tokens: all of them when their logits fit one storage
 * binding, else the largest multiple of the storage offset alignment (in floats) that fits; or
 * `requested`, checked.
 *
 * @param ctx The GPU context (its device limits).
 * @param vocab The vocabulary size (logits per token).
 * @param tokens The tokens of the call.
 * @param options `requested`: a fixed block size (a positive multiple of the alignment, or at
 * least `tokens`); `action`: the "Cannot …" phrase of errors; `key`: the option's name in them.
 * @returns The block size (≤ `tokens`).
 * @throws {RangeError} If `requested` is not allowed, or one aligned block does not fit a binding.
 *
 * @example Blocks of a real vocabulary under a 128 MiB binding
 * ```ts ignore
 * import { lmHeadBlockRows } from "./lm_head_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * console.log(lmHeadBlockRows(ctx, 151936, 2048, { action: "run the model" })); // 192
 * ```
 */
export function lmHeadBlockRows(
  ctx: GpuContext,
  vocab: number,
  tokens: number,
  options: { requested?: number; action: string; key?: string },
): number {
  const align = Math.max(1, ctx.device.limits.minStorageBufferOffsetAlignment / 4);
  const { requested, action } = options;
  if (requested !== undefined) {
    if (
      !Number.isSafeInteger(requested) || requested <= 0 ||
      (requested < tokens && requested % align)
    ) {
      throw new RangeError(
        `Cannot ${action}: option "${options.key ?? "headChunkTokens"}" must be a positive ` +
          `multiple of ${align} or at least the call's ${tokens} tokens: current value is ` +
          `${requested}`,
      );
    }
    return Math.min(requested, tokens);
  }
  const fit = Math.floor(ctx.gpu.maxBindingSize / (vocab * 4));
  if (fit >= tokens) return tokens;
  const rows = Math.floor(fit / align) * align;
  if (rows === 0) {
    throw new RangeError(
      `Cannot ${action}: ${align} rows of ${vocab} logits exceed one storage binding ` +
        `(${ctx.gpu.maxBindingSize} bytes)`,
    );
  }
  return rows;
}

/**
 * Records the logits of tokens `[r0, r0 + rows)`: `logits[0..rows) = alpha · x[r0..r0+rows) ·
 * headᵀ`, one matmul per row block of the head (a head larger than one binding is split by
 * vocabulary rows). `alpha` (default 1) is the matmul's output scale: `1 / temperature` gives
 * the logits of the tempered policy `softmax(z / T)` (its backward then scales by the same
 * `alpha`, the chain rule's `1 / T`).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args The head, the final-norm states `x` `[tokens, hidden]`, the block's output
 * `logits` (at least `[rows, vocab]`), the block and the optional scale `alpha`.
 *
 * @example The logits of tokens 64..127
 * ```ts ignore
 * import { encodeLmHeadBlock } from "./lm_head_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, head: import("../gpu/matrix.ts").GpuMatrix;
 * declare const x: GPUBuffer, logits: GPUBuffer;
 * encodeLmHeadBlock(ctx, pass, { head, x, logits, r0: 64, rows: 64 });
 * ```
 */
export function encodeLmHeadBlock(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: {
    head: GpuMatrix;
    x: GPUBuffer;
    logits: GPUBuffer;
    r0: number;
    rows: number;
    alpha?: number;
  },
): void {
  const { head, r0, rows, alpha } = args;
  for (const chunk of head.chunks) {
    encodeMatmul(ctx, pass, {
      x: { buffer: args.x, offset: r0 * head.cols * 4, size: rows * head.cols * 4 },
      w: chunk.buffer,
      y: args.logits,
      m: rows,
      n: chunk.rows,
      k: head.cols,
      ldy: head.rows,
      yCol: chunk.rowStart,
      wF16: head.dtype === "f16",
      alpha,
    });
  }
}
