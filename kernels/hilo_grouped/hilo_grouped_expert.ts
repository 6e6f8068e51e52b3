/**
 * Launcher of the grouped expert kernel (`hilo_grouped_expert.wgsl`): one routed LoRA expert
 * evaluated on the tokens the router gave it (from `encodeHiloGroupedIndex`), its gated output
 * added to those tokens' rows of `y`.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import { hiloGroupedIndexSize } from "./hilo_grouped_index.ts";
import codeMain from "./hilo_grouped_expert.wgsl" with { type: "text" };
import hiloRows from "./_hilo_rows.wgsl" with { type: "text" };

// The kernel and the tile product it shares with the other grouped kernel.
const code = `${codeMain}\n${hiloRows}`;

const PARAMS = uniformLayout(code, "hilo_grouped_expert");

/** Tokens per workgroup (the kernel's `TM`). */
const TM = 16;

/**
 * Largest expert rank the grouped kernel handles (its shared tile's `MAX_R`).
 *
 * @example Check a rank
 * ```ts
 * import { HILO_GROUPED_MAX_RANK } from "./hilo_grouped_expert.ts";
 * console.log(8 <= HILO_GROUPED_MAX_RANK); // true
 * ```
 */
export const HILO_GROUPED_MAX_RANK = 64;

/** Arguments of {@linkcode encodeHiloGroupedExpert}. */
export interface HiloGroupedExpertArgs {
  /** Input `[m, inFeatures]`. */
  x: Binding;
  /** The expert's `A` `[r, inFeatures]`. */
  a: Binding;
  /** The expert's `B` `[outFeatures, r]`. */
  b: Binding;
  /** Output `[m, outFeatures]`, added to on the expert's tokens. */
  y: Binding;
  /** Scratch with the gates `[m, E]` at `gateOffset` and the index at `indexOffset`. */
  buffer: Binding;
  /** First element of the gates. */
  gateOffset: number;
  /** First element of the index (as written by `encodeHiloGroupedIndex`). */
  indexOffset: number;
  /** Tokens. */
  m: number;
  /** Input width. */
  inFeatures: number;
  /** Output width. */
  outFeatures: number;
  /** The expert's rank (1 ≤ r ≤ 64). */
  r: number;
  /** Experts E of the module. */
  experts: number;
  /** Which expert. */
  expert: number;
  /** The expert's output factor (α / r). */
  scale: number;
}

/**
 * Records `y[t] += g[t, e]·scale·(x[t]·Aᵀ)·Bᵀ` for the tokens t of expert e's list; a grid of
 * `ceil(m / 16)` workgroups of which those past the expert's count exit at once.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands, scratch layout and the expert.
 * @throws {RangeError} If the rank or expert is out of range or a buffer is too small.
 *
 * @example Add expert 3's output on its tokens
 * ```ts ignore
 * import { encodeHiloGroupedExpert } from "./hilo_grouped_expert.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const x: GPUBuffer, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, scratch: GPUBuffer;
 * encodeHiloGroupedExpert(ctx, pass, {
 *   x, a, b, y, buffer: scratch, gateOffset: 0, indexOffset: 64, m: 8, inFeatures: 32,
 *   outFeatures: 32, r: 4, experts: 8, expert: 3, scale: 2,
 * });
 * ```
 */
export function encodeHiloGroupedExpert(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiloGroupedExpertArgs,
): void {
  const { m, inFeatures: inF, outFeatures: outF, r, experts: E, expert } = args;
  const where = "Cannot record hilo_grouped_expert";
  if (!Number.isSafeInteger(r) || r < 1 || r > HILO_GROUPED_MAX_RANK) {
    throw new RangeError(
      `${where}: "r" must be in [1, ${HILO_GROUPED_MAX_RANK}]: current value is ${r}`,
    );
  }
  if (!Number.isSafeInteger(expert) || expert < 0 || expert >= E) {
    throw new RangeError(`${where}: "expert" must be in [0, ${E}): current value is ${expert}`);
  }
  const k = "hilo_grouped_expert";
  checkSize(k, "x", args.x, m * inF, "[m, in]");
  checkSize(k, "a", args.a, r * inF, "[r, in]");
  checkSize(k, "b", args.b, outF * r, "[out, r]");
  checkSize(k, "y", args.y, m * outF, "[m, out]");
  checkSize(k, "buffer", args.buffer, args.gateOffset + m * E, "gates end");
  checkSize(k, "buffer", args.buffer, args.indexOffset + hiloGroupedIndexSize(m, E), "index end");
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("hilo_grouped_expert", code, { constants: GRID_CONSTANTS }),
    [args.x, args.a, args.b, args.buffer, args.y],
    grid(Math.ceil(m / TM)),
    packUniform(PARAMS, {
      in_f: inF,
      out_f: outF,
      r,
      experts: E,
      expert,
      gate_offset: args.gateOffset,
      index_offset: args.indexOffset,
      scale: args.scale,
    }),
  );
}
