// The shape checks and parameters shared by the launchers of qk_norm_rope.wgsl and
// qk_norm_rope_backward.wgsl (both take the same Params struct).
import type { Binding } from "../../gpu/context.ts";
import { checkSize } from "../_check.ts";

/** The shape both kernels are given. */
export interface QkShape {
  /** Tokens (rows × tokens per row): the entries of `positions`. */
  tokens: number;
  /** Query heads per token. */
  hq: number;
  /** Key heads per token. */
  hkv: number;
  /** Head dimension (even). */
  d: number;
  /** Positions in the RoPE table (larger positions are clamped; callers validate). */
  maxPos: number;
  /** Added to the mean square of each head. */
  eps: number;
}

/**
 * Checks the buffers of one launch (`q`: `[tokens · hq, d]` each, `k`: `[tokens · hkv, d]` each,
 * the norms `[d]`, one position per token, the RoPE table) and returns the kernels' Params record
 * and their number of rows.
 */
export function qkParams(
  kernel: string,
  shape: QkShape,
  buffers: {
    q: Record<string, Binding>;
    k: Record<string, Binding>;
    positions: Binding;
    table: Binding;
    qNorm: Binding;
    kNorm: Binding;
  },
): { params: Record<string, number>; rows: number } {
  const { tokens, hq, hkv, d, maxPos, eps } = shape;
  if (d % 2 !== 0 || d <= 0) {
    throw new RangeError(
      `Cannot record ${kernel}: head size must be even and positive: current value is ${d}`,
    );
  }
  for (const [name, b] of Object.entries(buffers.q)) {
    checkSize(kernel, name, b, tokens * hq * d, `[tokens · hq, d] = [${tokens * hq}, ${d}]`);
  }
  for (const [name, b] of Object.entries(buffers.k)) {
    checkSize(kernel, name, b, tokens * hkv * d, `[tokens · hkv, d] = [${tokens * hkv}, ${d}]`);
  }
  checkSize(kernel, "qNorm", buffers.qNorm, d, `[d] = [${d}]`);
  checkSize(kernel, "kNorm", buffers.kNorm, d, `[d] = [${d}]`);
  checkSize(kernel, "positions", buffers.positions, tokens, `[tokens] = [${tokens}]`);
  checkSize(
    kernel,
    "table",
    buffers.table,
    maxPos * d,
    `[maxPos, d / 2, 2] = [${maxPos}, ${d / 2}, 2]`,
  );
  const params = {
    QR: tokens * hq,
    KR: tokens * hkv,
    D: d,
    HQ: hq,
    HKV: hkv,
    max_pos: maxPos,
    eps,
  };
  return { params, rows: tokens * (hq + hkv) };
}

/** Rows of one workgroup of both kernels (`RPW` in the shaders). */
export const ROWS_PER_WORKGROUP = 4;
