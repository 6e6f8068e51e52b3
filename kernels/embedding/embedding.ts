/**
 * Launcher of the embedding gather over a row-split matrix.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { checkF16, f16Weights } from "../_f16.ts";
import type { GpuMatrix } from "../../gpu/matrix.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./embedding.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "embedding");

/** Arguments of {@linkcode encodeEmbedding}. */
export interface EmbeddingArgs {
  /** Token ids (u32), validated by the caller to lie in the vocabulary. */
  ids: Binding;
  /** The `[vocab, h]` embedding matrix (one dispatch per row block). */
  table: GpuMatrix;
  /** Output `[tokens, h]`. */
  out: Binding;
  /** Number of tokens. */
  tokens: number;
}

/**
 * Records the gather of one embedding row per token.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers and shape.
 *
 * @example Embed 16 tokens
 * ```ts ignore
 * import { encodeEmbedding } from "./embedding.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, ids: GPUBuffer, out: GPUBuffer;
 * declare const table: import("../../gpu/matrix.ts").GpuMatrix;
 * encodeEmbedding(ctx, pass, { ids, table, out, tokens: 16 });
 * ```
 */
export function encodeEmbedding(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: EmbeddingArgs,
): void {
  const h = args.table.cols;
  const { tokens } = args;
  checkSize("embedding", "ids", args.ids, tokens, `[tokens] = [${tokens}]`);
  checkSize("embedding", "out", args.out, tokens * h, `[tokens, h] = [${tokens}, ${h}]`);
  const f16 = args.table.dtype === "f16";
  if (f16) checkF16(ctx, "embedding");
  const pipeline = f16
    ? ctx.pipeline("embedding_f16", f16Weights(code, "table"), { constants: GRID_CONSTANTS })
    : ctx.pipeline("embedding", code, { constants: GRID_CONSTANTS });
  for (const chunk of args.table.chunks) {
    ctx.dispatch(
      pass,
      pipeline,
      [args.ids, chunk.buffer, args.out],
      grid(Math.ceil((tokens * h) / 256)),
      packUniform(PARAMS, { T: tokens, H: h, row_start: chunk.rowStart, rows: chunk.rows }),
    );
  }
}
