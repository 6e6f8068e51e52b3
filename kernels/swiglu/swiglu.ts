/**
 * Launcher of the SwiGLU activation kernel.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize, strided } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./swiglu.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "swiglu");

/** Arguments of {@linkcode encodeSwiglu}. */
export interface SwigluArgs {
  /** Gate projection output. */
  gate: Binding;
  /** Up projection output. */
  up: Binding;
  /** Output (must not alias the inputs). */
  out: Binding;
  /** Number of elements. */
  n: number;
  /**
   * Where `gate` and `up` hold the rows of `out` (`[n / cols, cols]`, contiguous): element
   * `(r, c)` of gate at `r·stride + gateOffset + c`, of up at `r·stride + upOffset + c`. Default
   * contiguous (`cols` = `stride` = n, offsets 0). A fused gate|up projection's output
   * `[rows, 2·I]`, bound as both: {@linkcode fusedGateUpRows}.
   */
  layout?: SwigluRows;
}

/** The input layout of {@linkcode SwigluArgs.layout}. */
export interface SwigluRows {
  /** Elements per row of `out`. */
  cols: number;
  /** Floats from one input row to the next. */
  stride: number;
  /** Float of row 0's first gate element. */
  gateOffset: number;
  /** Float of row 0's first up element. */
  upOffset: number;
}

/**
 * The {@linkcode SwigluArgs.layout} of a fused gate|up projection's output `[rows, 2·inter]`
 * (gate columns, then up), bound as `gate` and `up`.
 *
 * @param inter The MLP's intermediate size.
 * @returns The layout.
 *
 * @example Qwen3-0.6B's MLP
 * ```ts
 * import { fusedGateUpRows } from "./swiglu.ts";
 * console.log(fusedGateUpRows(3072)); // { cols: 3072, stride: 6144, gateOffset: 0, upOffset: 3072 }
 * ```
 */
export function fusedGateUpRows(inter: number): SwigluRows {
  return { cols: inter, stride: 2 * inter, gateOffset: 0, upOffset: inter };
}

/**
 * Records `out = silu(gate) * up`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, length and input layout.
 * @throws {RangeError} If a buffer is smaller than its shape (or layout), or a layout's rows do
 * not divide `n` or overrun its row stride.
 *
 * @example Activate 1000 elements
 * ```ts ignore
 * import { encodeSwiglu } from "./swiglu.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, gate: GPUBuffer, up: GPUBuffer, out: GPUBuffer;
 * encodeSwiglu(ctx, pass, { gate, up, out, n: 1000 });
 * ```
 */
export function encodeSwiglu(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: SwigluArgs,
): void {
  const { n } = args;
  const at = args.layout;
  checkSize("swiglu", "out", args.out, n, `[n] = [${n}]`);
  if (!at) {
    checkSize("swiglu", "gate", args.gate, n, `[n] = [${n}]`);
    checkSize("swiglu", "up", args.up, n, `[n] = [${n}]`);
  } else {
    const { cols, stride } = at;
    const rows = n / cols;
    for (const [name, offset] of [["gate", at.gateOffset], ["up", at.upOffset]] as const) {
      if (!(Number.isInteger(rows) && offset >= 0 && offset + cols <= stride)) {
        throw new RangeError(
          `Cannot record swiglu: "${name}" rows of ${cols} must divide n and lie in the row ` +
            `stride (offset + cols <= stride): current n ${n}, offset ${offset}, stride ${stride}`,
        );
      }
      checkSize(
        "swiglu",
        name,
        args[name],
        strided(rows, stride, offset, cols),
        `[n / cols, cols] = [${rows}, ${cols}] at offset ${offset}, row stride ${stride}`,
      );
    }
  }
  const layout = at
    ? { cols: at.cols, ld: at.stride, gate_off: at.gateOffset, up_off: at.upOffset }
    : { cols: Math.max(n, 1), ld: n, gate_off: 0, up_off: 0 };
  ctx.dispatch(
    pass,
    ctx.pipeline("swiglu", code, { constants: GRID_CONSTANTS }),
    [args.gate, args.up, args.out],
    grid(Math.ceil(n / 256)),
    packUniform(PARAMS, { n, ...layout }),
  );
}
