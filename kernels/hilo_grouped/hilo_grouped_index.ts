/**
 * Launcher of the grouped-dispatch index kernel (`hilo_grouped_index.wgsl`): from a router's gates
 * `[m, E]`, the tokens each expert takes (counts, offsets, ascending token lists), written on the
 * GPU so the grouped expert kernel runs each expert on its own tokens without a readback.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import code from "./hilo_grouped_index.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "hilo_grouped_index");

/**
 * Most experts the grouped index handles (one thread per expert, one workgroup).
 *
 * @example Check an expert count
 * ```ts
 * import { HILO_GROUPED_MAX_EXPERTS } from "./hilo_grouped_index.ts";
 * console.log(32 <= HILO_GROUPED_MAX_EXPERTS); // true
 * ```
 */
export const HILO_GROUPED_MAX_EXPERTS = 64;

/**
 * Floats of the index area for `m` tokens and `E` experts: counts `[E]`, offsets `[E]` and the
 * lists (at most `m · E` entries, when every token takes every expert).
 *
 * @param m Tokens.
 * @param experts Experts E.
 * @returns `2E + m·E`.
 *
 * @example The index of 10 tokens among 4 experts
 * ```ts
 * import { hiloGroupedIndexSize } from "./hilo_grouped_index.ts";
 * console.log(hiloGroupedIndexSize(10, 4)); // 48
 * ```
 */
export function hiloGroupedIndexSize(m: number, experts: number): number {
  return 2 * experts + m * experts;
}

/** Arguments of {@linkcode encodeHiloGroupedIndex}. */
export interface HiloGroupedIndexArgs {
  /** Scratch holding the gates `[m, E]` from `gateOffset` and receiving the index. */
  buffer: Binding;
  /** First element of the gates. */
  gateOffset: number;
  /** First element of the index (counts, offsets, lists); must not overlap the gates. */
  indexOffset: number;
  /** Tokens (below 2^24: the index holds them as f32). */
  m: number;
  /** Experts E (1 ≤ E ≤ 64). */
  experts: number;
}

/**
 * Records the index build: `counts[e]`, `offsets[e]` (exclusive prefix sum) and, at
 * `indexOffset + 2E + offsets[e]`, expert e's tokens (those with a non-zero gate) in ascending
 * order; see `hiloGroupedIndexRef`.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Scratch, layout and shape.
 * @throws {RangeError} If E or m is out of range, the areas overlap or the buffer is too small.
 *
 * @example Index 8 tokens' top-2 choices among 4 experts
 * ```ts ignore
 * import { encodeHiloGroupedIndex } from "./hilo_grouped_index.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, scratch: GPUBuffer;
 * encodeHiloGroupedIndex(ctx, pass, { buffer: scratch, gateOffset: 0, indexOffset: 64, m: 8, experts: 4 });
 * ```
 */
export function encodeHiloGroupedIndex(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: HiloGroupedIndexArgs,
): void {
  const { m, experts: E, gateOffset, indexOffset } = args;
  const where = "Cannot record hilo_grouped_index";
  if (!Number.isSafeInteger(E) || E < 1 || E > HILO_GROUPED_MAX_EXPERTS) {
    throw new RangeError(
      `${where}: "experts" must be in [1, ${HILO_GROUPED_MAX_EXPERTS}]: current value is ${E}`,
    );
  }
  if (!Number.isSafeInteger(m) || m < 0 || m >= 2 ** 24) {
    throw new RangeError(`${where}: "m" must be in [0, 2^24): current value is ${m}`);
  }
  const size = hiloGroupedIndexSize(m, E);
  if (indexOffset < gateOffset + m * E && gateOffset < indexOffset + size) {
    throw new RangeError(
      `${where}: "indexOffset" must not overlap the gates [${gateOffset}, ${
        gateOffset + m * E
      }): ` +
        `current value is ${indexOffset}`,
    );
  }
  checkSize("hilo_grouped_index", "buffer", args.buffer, gateOffset + m * E, "gates end");
  checkSize("hilo_grouped_index", "buffer", args.buffer, indexOffset + size, "index end");
  ctx.dispatch(
    pass,
    ctx.pipeline("hilo_grouped_index", code),
    [args.buffer],
    [1, 1, 1],
    packUniform(PARAMS, { m, experts: E, gate_offset: gateOffset, index_offset: indexOffset }),
  );
}
