/**
 * Launcher of one routed expert's backward on its own tokens (the grouped dispatch): the gated
 * rows and the gate gradient (`hilo_grouped_backward_rows.wgsl`), `dB` and `dA` summed over the
 * expert's token list (`hilo_grouped_backward_dw.wgsl`) and `dx` on those tokens
 * (`hilo_grouped_backward_dx.wgsl`).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import { HILO_GROUPED_MAX_RANK } from "./hilo_grouped_expert.ts";
import { hiloGroupedIndexSize } from "./hilo_grouped_index.ts";
import rowsCodeMain from "./hilo_grouped_backward_rows.wgsl" with { type: "text" };
import hiloRows from "./_hilo_rows.wgsl" with { type: "text" };
import dwCode from "./hilo_grouped_backward_dw.wgsl" with { type: "text" };
import dxCode from "./hilo_grouped_backward_dx.wgsl" with { type: "text" };

// The kernel and the tile product it shares with the other grouped kernel.
const rowsCode = `${rowsCodeMain}\n${hiloRows}`;

const ROWS = uniformLayout(rowsCode, "hilo_grouped_backward_rows");
const DW = uniformLayout(dwCode, "hilo_grouped_backward_dw");
const DX = uniformLayout(dxCode, "hilo_grouped_backward_dx");

/** Tokens per workgroup of the rows kernel (its `TM`). */
const TM = 16;

/**
 * Workgroup storage of the rows kernel (hilo_grouped_backward_rows.wgsl with _hilo_rows.wgsl),
 * each variable rounded up to 16 bytes as WebGPU counts it: `us` and `dus` 4096 each, `count` 16,
 * `ls` 2048, `ws` 8192, `tok` 64. That is above WebGPU's default limit (16,384), which gpu/device.ts
 * raises to the adapter's maximum (32 KiB on Metal and D3D12, 48-64 KiB on desktop Vulkan); an
 * adapter stuck at the default would fail the pipeline with a generic error at the next readback,
 * so the launcher checks it first. hilo_grouped_test.ts recomputes it from the WGSL.
 */
const ROWS_WORKGROUP_BYTES = 18_512;

/** Arguments of {@linkcode encodeHiloGroupedBackward}. */
export interface HiloGroupedBackwardArgs {
  /** The forward's input `[m, inFeatures]`. */
  x: Binding;
  /** The expert's `A` `[r, inFeatures]`. */
  a: Binding;
  /** The expert's `B` `[outFeatures, r]`. */
  b: Binding;
  /** Gradient of the projection's output `[m, outFeatures]`. */
  dy: Binding;
  /** Gradient of `x`, added to on the expert's tokens; omit when nobody needs it. */
  dx?: Binding;
  /** Gradient of `A`, added to. */
  gradA: Binding;
  /** Gradient of `B`, added to. */
  gradB: Binding;
  /**
   * Scratch: the gates `[m, E]` at `gateOffset` and the index at `indexOffset` (read); the gated
   * rows `g·x·Aᵀ` `[m, r]` from element 0 (written on the expert's tokens).
   */
  u: GPUBuffer;
  /**
   * Scratch: the gated row gradients `g·scale·dy·B` `[m, r]` from element 0 and the gate
   * gradient `dg[t, e]` at `gateOffset + t·E + e` (written on the expert's tokens).
   */
  du: GPUBuffer;
  /** First element of the gates in `u` and of the gate gradient in `du` (at least `m·r`). */
  gateOffset: number;
  /** First element of the index in `u` (as written by `encodeHiloGroupedIndex`). */
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
 * Records one expert's backward over the tokens of its list: with `u = x·Aᵀ` and
 * `du = scale·dy·B` per token, `dg[t, e] = Σ du·u`, `dB += scale·Σ_t dy[t]ᵀ·(g·u)`,
 * `dA += Σ_t (g·du)ᵀ·x[t]` and `dx[t] += (g·du)·A`; see `hiloGroupedBackwardRef`. Entries of `dg`
 * for tokens the expert did not take are not written (`moe_route_backward` ignores them: g = 0).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Operands, gradients, scratch layout and the expert.
 * @throws {RangeError} If the rank or expert is out of range, the rows overlap the gates, a
 * buffer is too small, or the device's `maxComputeWorkgroupStorageSize` is below the 18,512 bytes
 * of the rows kernel.
 *
 * @example The backward of expert 2 of 8
 * ```ts ignore
 * import { encodeHiloGroupedBackward } from "./hilo_grouped_backward.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const x: GPUBuffer, a: GPUBuffer, b: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer;
 * declare const gradA: GPUBuffer, gradB: GPUBuffer, u: GPUBuffer, du: GPUBuffer;
 * encodeHiloGroupedBackward(ctx, pass, {
 *   x, a, b, dy, dx, gradA, gradB, u, du, gateOffset: 256, indexOffset: 512, m: 32,
 *   inFeatures: 64, outFeatures: 64, r: 4, experts: 8, expert: 2, scale: 2,
 * });
 * ```
 */
export function encodeHiloGroupedBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiloGroupedBackwardArgs,
): void {
  const { m, inFeatures: inF, outFeatures: outF, r, experts: E, expert } = args;
  const { gateOffset, indexOffset } = args;
  const where = "Cannot record hilo_grouped_backward";
  if (!Number.isSafeInteger(r) || r < 1 || r > HILO_GROUPED_MAX_RANK) {
    throw new RangeError(
      `${where}: "r" must be in [1, ${HILO_GROUPED_MAX_RANK}]: current value is ${r}`,
    );
  }
  if (!Number.isSafeInteger(expert) || expert < 0 || expert >= E) {
    throw new RangeError(`${where}: "expert" must be in [0, ${E}): current value is ${expert}`);
  }
  if (gateOffset < m * r) {
    throw new RangeError(
      `${where}: "gateOffset" must be at least m·r = ${m * r} (the rows and gates must not ` +
        `overlap): current value is ${gateOffset}`,
    );
  }
  const k = "hilo_grouped_backward";
  checkSize(k, "x", args.x, m * inF, "[m, in]");
  checkSize(k, "a", args.a, r * inF, "[r, in]");
  checkSize(k, "b", args.b, outF * r, "[out, r]");
  checkSize(k, "dy", args.dy, m * outF, "[m, out]");
  if (args.dx) checkSize(k, "dx", args.dx, m * inF, "[m, in]");
  checkSize(k, "gradA", args.gradA, r * inF, "[r, in]");
  checkSize(k, "gradB", args.gradB, outF * r, "[out, r]");
  checkSize(k, "u", args.u, gateOffset + m * E, "gates end");
  checkSize(k, "u", args.u, indexOffset + hiloGroupedIndexSize(m, E), "index end");
  checkSize(k, "du", args.du, gateOffset + m * E, "gate gradient end");
  const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
  if (limit < ROWS_WORKGROUP_BYTES) {
    throw new RangeError(
      `${where}: its kernel hilo_grouped_backward_rows needs ${ROWS_WORKGROUP_BYTES} bytes of ` +
        `workgroup storage, more than the device allows (maxComputeWorkgroupStorageSize ` +
        `${limit}, adapter "${ctx.gpu.description}"): use an adapter that allows at least ` +
        `${ROWS_WORKGROUP_BYTES} bytes`,
    );
  }
  if (m === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("hilo_grouped_backward_rows", rowsCode, { constants: GRID_CONSTANTS }),
    [args.x, args.a, args.b, args.dy, args.u, args.du],
    grid(Math.ceil(m / TM)),
    packUniform(ROWS, {
      in_f: inF,
      out_f: outF,
      r,
      experts: E,
      expert,
      gate_offset: gateOffset,
      index_offset: indexOffset,
      scale: args.scale,
    }),
  );
  const dw = ctx.pipeline("hilo_grouped_backward_dw", dwCode, { constants: GRID_CONSTANTS });
  const index = { experts: E, expert, index_offset: indexOffset };
  // dB [out, r] += scale · Σ dy[t]ᵀ · (g·u)[t]
  ctx.dispatch(
    pass,
    dw,
    [args.dy, args.u, args.u, args.gradB],
    grid(Math.ceil((outF * r) / 256)),
    packUniform(DW, { rows: outF, cols: r, ...index, alpha: args.scale }),
  );
  // dA [r, in] += Σ (g·du)[t]ᵀ · x[t]
  ctx.dispatch(
    pass,
    dw,
    [args.du, args.x, args.u, args.gradA],
    grid(Math.ceil((r * inF) / 256)),
    packUniform(DW, { rows: r, cols: inF, ...index, alpha: 1 }),
  );
  if (args.dx) {
    ctx.dispatch(
      pass,
      ctx.pipeline("hilo_grouped_backward_dx", dxCode, { constants: GRID_CONSTANTS }),
      [args.du, args.a, args.u, args.dx],
      grid(Math.ceil((m * inF) / 256)),
      packUniform(DX, { in_f: inF, r, ...index }),
    );
  }
}
