/**
 * Launcher of the backward of the embedding gather: a deterministic scatter-add of token
 * gradients into the rows of a (row-split) table gradient. Only needed when the embeddings are
 * trained (full fine-tuning); its cost grows as tokens² · h per row block, split over dispatches
 * of bounded work.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import type { GpuMatrix } from "../../gpu/matrix.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./embedding_backward.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "embedding_backward");

/**
 * Default bound on one dispatch's work, in loop steps (tokens of the dispatch × all tokens × h):
 * 2³⁰ steps take milliseconds even on a small GPU, far under the ~2 s after which Windows (TDR)
 * and macOS reset a display-attached GPU, which one dispatch for 8192 tokens at h = 5120
 * (3.4e11 steps) could reach.
 */
const STEPS_PER_DISPATCH = 2 ** 30;

/** Arguments of {@linkcode encodeEmbeddingBackward}. */
export interface EmbeddingBackwardArgs {
  /** Token ids (u32), validated by the caller to lie in the vocabulary. */
  ids: Binding;
  /** Gradient of the gathered rows `[tokens, h]`. */
  dOut: Binding;
  /** Gradient of the `[vocab, h]` table, split in row blocks like the table. */
  dTable: GpuMatrix;
  /** Number of tokens. */
  tokens: number;
  /** Add into `dTable` instead of overwriting it; default false (rows of absent ids become 0). */
  accumulate?: boolean;
  /**
   * Tokens covered by one dispatch (a positive integer); default ⌊2³⁰ / (tokens · h)⌋, at least 1,
   * so that no dispatch runs long enough to trip a GPU watchdog. The result does not depend on it.
   */
  tokensPerDispatch?: number;
}

/**
 * Records the scatter-add of `dOut` rows into `dTable`: per row block, a clearing dispatch (when
 * not accumulating) and one dispatch per `tokensPerDispatch` tokens.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and accumulation mode.
 *
 * @example Embedding gradient of 16 tokens
 * ```ts ignore
 * import { encodeEmbeddingBackward } from "./embedding_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, ids: GPUBuffer, dOut: GPUBuffer;
 * declare const dTable: import("../../gpu/matrix.ts").GpuMatrix;
 * encodeEmbeddingBackward(ctx, pass, { ids, dOut, dTable, tokens: 16, accumulate: true });
 * ```
 */
export function encodeEmbeddingBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: EmbeddingBackwardArgs,
): void {
  const h = args.dTable.cols;
  const { tokens } = args;
  const kernel = "embedding backward";
  checkSize(kernel, "ids", args.ids, tokens, `[tokens] = [${tokens}]`);
  checkSize(kernel, "dOut", args.dOut, tokens * h, `[tokens, h] = [${tokens}, ${h}]`);
  const step = args.tokensPerDispatch ??
    Math.max(1, Math.floor(STEPS_PER_DISPATCH / Math.max(1, tokens * h)));
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError(
      `Cannot record ${kernel}: "tokensPerDispatch" must be a positive integer, got ${step}`,
    );
  }
  for (const chunk of args.dTable.chunks) {
    const block = { T: tokens, H: h, row_start: chunk.rowStart, rows: chunk.rows };
    const params = packUniform(PARAMS, { ...block, t_start: 0, t_count: tokens });
    if (!args.accumulate) {
      ctx.dispatch(
        pass,
        ctx.pipeline("embedding_backward", code, { entryPoint: "zero", constants: GRID_CONSTANTS }),
        [chunk.buffer],
        grid(Math.ceil((chunk.rows * h) / 256)),
        params,
      );
    }
    for (let start = 0; start < tokens; start += step) {
      const count = Math.min(step, tokens - start);
      ctx.dispatch(
        pass,
        ctx.pipeline("embedding_backward", code, { constants: GRID_CONSTANTS }),
        [args.ids, args.dOut, chunk.buffer],
        grid(Math.ceil((count * h) / 256)),
        packUniform(PARAMS, { ...block, t_start: start, t_count: count }),
      );
    }
  }
}
