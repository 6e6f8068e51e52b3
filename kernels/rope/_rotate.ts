// The one launcher body of rope.wgsl, shared by the forward (SIGN = 1) and the backward
// (SIGN = -1, the inverse rotation): checks, parameters and the dispatch.
import type { GpuContext } from "../../gpu/context.ts";
import type { RopeArgs } from "./rope.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./rope.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "rope");

/** What {@linkcode encodeRotation} rotates (`x`), and how it is named in errors. */
export interface RotationArgs extends RopeArgs {
  /** The kernel's name in errors: `"RoPE"` or `"RoPE backward"`. */
  kernel: string;
  /** The argument's name in errors: `"x"` or `"grad"`. */
  name: string;
  /** 1 rotates by the angle (forward), -1 by minus the angle (backward). */
  sign: 1 | -1;
}

/** Records the in-place rotation of `args.x` after checking its shape. */
export function encodeRotation(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: RotationArgs,
): void {
  const { kernel, name, rows, d, heads, maxPos } = args;
  if (d % 2 !== 0) {
    throw new RangeError(`Cannot apply ${kernel}: head size must be even: current value is ${d}`);
  }
  checkSize(kernel, name, args.x, rows * d, `[rows, d] = [${rows}, ${d}]`);
  const tokens = heads > 0 ? Math.ceil(rows / heads) : 0;
  checkSize(kernel, "positions", args.positions, tokens, `[rows / heads] = [${tokens}]`);
  const table = `[maxPos, d / 2, 2] = [${maxPos}, ${d / 2}, 2]`;
  checkSize(kernel, "table", args.table, maxPos * d, table);
  const constants = args.sign === 1 ? GRID_CONSTANTS : { ...GRID_CONSTANTS, SIGN: -1 };
  ctx.dispatch(
    pass,
    ctx.pipeline(args.sign === 1 ? "rope" : "rope_backward", code, { constants }),
    [args.x, args.positions, args.table],
    grid(Math.ceil((rows * d) / 2 / 256)),
    packUniform(PARAMS, { rows, D: d, heads, max_pos: maxPos }),
  );
}
