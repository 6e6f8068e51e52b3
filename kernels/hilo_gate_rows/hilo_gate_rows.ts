/**
 * Launcher of the gate-rows kernel (`hilo_gate_rows.wgsl`): scales each token's row of an
 * expert's down projection `x·A_eᵀ` by the expert's router gate, so the up projection adds
 * `g_e · scale · (x·A_eᵀ)·B_eᵀ`.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./hilo_gate_rows.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "hilo_gate_rows");

/** Arguments of {@linkcode encodeHiloGateRows}. */
export interface HiloGateRowsArgs {
  /** Scratch holding the rows `[m, r]` from element 0 and the gates `[m, E]` from `gateOffset`. */
  buffer: Binding;
  /** First element of the gates (at least `m·r`: the ranges must not overlap). */
  gateOffset: number;
  /** Tokens. */
  m: number;
  /** Rank (row width). */
  r: number;
  /** Experts E. */
  experts: number;
  /** The expert whose gates scale the rows. */
  expert: number;
}

/**
 * Records `buffer[t·r + j] *= buffer[gateOffset + t·E + expert]` for every token and column.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Scratch, layout and expert.
 * @throws {RangeError} If the ranges overlap, the expert is out of range or the buffer is too
 * small.
 *
 * @example Gate expert 2's rows
 * ```ts ignore
 * import { encodeHiloGateRows } from "./hilo_gate_rows.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, scratch: GPUBuffer;
 * encodeHiloGateRows(ctx, pass, { buffer: scratch, gateOffset: 64, m: 8, r: 4, experts: 4, expert: 2 });
 * ```
 */
export function encodeHiloGateRows(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiloGateRowsArgs,
): void {
  const { m, r, experts, expert, gateOffset } = args;
  if (gateOffset < m * r) {
    throw new RangeError(
      `Cannot record hilo_gate_rows: "gateOffset" must be at least m·r = ${m * r} (the rows and ` +
        `gates must not overlap): current value is ${gateOffset}`,
    );
  }
  if (!Number.isSafeInteger(expert) || expert < 0 || expert >= experts) {
    throw new RangeError(
      `Cannot record hilo_gate_rows: "expert" must be in [0, ${experts}): current value is ` +
        `${expert}`,
    );
  }
  checkSize("hilo_gate_rows", "buffer", args.buffer, gateOffset + m * experts, "gates end");
  if (m * r === 0) return;
  ctx.dispatch(
    pass,
    ctx.pipeline("hilo_gate_rows", code, { constants: GRID_CONSTANTS }),
    [args.buffer],
    grid(Math.ceil((m * r) / 256)),
    packUniform(PARAMS, { m, r, experts, expert, gate_offset: gateOffset }),
  );
}
