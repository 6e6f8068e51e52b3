// What the launchers of this folder share: their kernels' source with the common WGSL fragments
// appended, the shape checks and Params of the q/k kernels (qk_norm_rope.wgsl,
// qk_norm_rope_kv.wgsl, qk_norm_rope_backward.wgsl), and the dispatch over rows.
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, type UniformLayout, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize, strided } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import normRope from "./_norm_rope.wgsl" with { type: "text" };
import qkRows from "./_qk_rows.wgsl" with { type: "text" };

/** A kernel of this folder, its source completed with the shared fragments. */
export interface NormRopeKernel {
  /** Pipeline name. */
  name: string;
  /** The full WGSL source. */
  code: string;
  /** Its Params struct. */
  layout: UniformLayout;
}

/**
 * Completes a kernel's source: `_norm_rope.wgsl` appended (WGSL has no includes), and
 * `_qk_rows.wgsl` too for the q/k kernels (`qk`, default true); reads its Params struct.
 */
export function normRopeKernel(name: string, code: string, { qk = true } = {}): NormRopeKernel {
  const full = `${code}\n${normRope}${qk ? `\n${qkRows}` : ""}`;
  return { name, code: full, layout: uniformLayout(full, name) };
}

/** Records one dispatch of `kernel` over `rows` rows ({@linkcode ROWS_PER_WORKGROUP} a group). */
export function dispatchRows(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  kernel: NormRopeKernel,
  bindings: Binding[],
  rows: number,
  params: Record<string, number>,
): void {
  ctx.dispatch(
    pass,
    ctx.pipeline(kernel.name, kernel.code, { constants: GRID_CONSTANTS }),
    bindings,
    grid(Math.ceil(rows / ROWS_PER_WORKGROUP)),
    packUniform(kernel.layout, params),
  );
}

/** Checks that the head size `d` is even and positive (the kernels pair i with i + d/2). */
export function checkHeadSize(kernel: string, d: number): void {
  if (d % 2 !== 0 || d <= 0) {
    throw new RangeError(
      `Cannot record ${kernel}: head size must be even and positive: current value is ${d}`,
    );
  }
}

/** Checks one position per token and the RoPE table `[maxPos, d / 2, 2]`. */
export function checkRope(
  kernel: string,
  { tokens, d, maxPos }: { tokens: number; d: number; maxPos: number },
  positions: Binding,
  table: Binding,
): void {
  checkSize(kernel, "positions", positions, tokens, `[tokens] = [${tokens}]`);
  checkSize(kernel, "table", table, maxPos * d, `[maxPos, d / 2, 2] = [${maxPos}, ${d / 2}, 2]`);
}

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

/** What the three q/k kernels read: the raw queries and keys, the norm weights and RoPE inputs. */
export interface QkInputs extends QkShape {
  /** q_proj output `[tokens · hq, d]`. */
  qRaw: Binding;
  /** k_proj output `[tokens · hkv, d]`. */
  kRaw: Binding;
  /** Query norm weight `[d]`. */
  qNorm: Binding;
  /** Key norm weight `[d]`. */
  kNorm: Binding;
  /** Position of each token (u32). */
  positions: Binding;
  /** `[maxPos, d/2, 2]` table from `ropeTable`. */
  table: Binding;
}

/**
 * Where a token's heads lie in an input buffer: head `h` of token `t` at float
 * `t · stride + offset + h · d` (a column range of a wider row, e.g. of a fused q|k|v projection's
 * output `[tokens, (hq + 2·hkv)·d]`).
 */
export interface TokenRows {
  /** Floats from one token's first head to the next token's. */
  stride: number;
  /** Float of token 0's first head. */
  offset: number;
}

/**
 * Checks the buffers of one launch (`qRaw` and `more.q`: `[tokens · hq, d]` each, `kRaw` and
 * `more.k`: `[tokens · hkv, d]` each, or the token rows `layouts` gives for a name; the norms
 * `[d]`, one position per token, the RoPE table) and returns the kernels' Params record and their
 * number of rows.
 */
export function qkParams(
  kernel: string,
  args: QkInputs,
  more: { q: Record<string, Binding>; k: Record<string, Binding> },
  layouts: Record<string, TokenRows | undefined> = {},
): { params: Record<string, number>; rows: number } {
  const { tokens, hq, hkv, d, maxPos, eps } = args;
  checkHeadSize(kernel, d);
  const check = (name: string, b: Binding, heads: number, shape: string) => {
    const at = layouts[name];
    if (!at) return checkSize(kernel, name, b, tokens * heads * d, shape);
    const width = heads * d;
    if (!(at.offset >= 0 && at.offset + width <= at.stride)) {
      throw new RangeError(
        `Cannot record ${kernel}: "${name}" rows of ${width} floats must lie in a token's ` +
          `stride (offset + ${width} <= stride): current offset ${at.offset}, stride ${at.stride}`,
      );
    }
    checkSize(
      kernel,
      name,
      b,
      strided(tokens, at.stride, at.offset, width),
      `[tokens, ${width}] = [${tokens}, ${width}] at offset ${at.offset}, token stride ${at.stride}`,
    );
  };
  for (const [name, b] of Object.entries({ qRaw: args.qRaw, ...more.q })) {
    check(name, b, hq, `[tokens · hq, d] = [${tokens * hq}, ${d}]`);
  }
  for (const [name, b] of Object.entries({ kRaw: args.kRaw, ...more.k })) {
    check(name, b, hkv, `[tokens · hkv, d] = [${tokens * hkv}, ${d}]`);
  }
  checkSize(kernel, "qNorm", args.qNorm, d, `[d] = [${d}]`);
  checkSize(kernel, "kNorm", args.kNorm, d, `[d] = [${d}]`);
  checkRope(kernel, args, args.positions, args.table);
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

/** Rows of one workgroup of every kernel of this folder (`RPW` in _norm_rope.wgsl). */
export const ROWS_PER_WORKGROUP = 4;
