/**
 * Launcher of causal grouped-query attention over a key/value buffer (a whole sequence, or a KV
 * cache with `qStart` past tokens).
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import type { AttentionShape } from "./attention_ref.ts";
import { checkKvF16Width, kvVariant, kvWords } from "../_kv_f16.ts";
import { attentionParams, flashSlices } from "./_attention_params.ts";
import rowsCode from "./attention.wgsl" with { type: "text" };
import flashSource from "./attention_flash.wgsl" with { type: "text" };
import splitSource from "./attention_split.wgsl" with { type: "text" };
import rowSoftmax from "./_attention_rows.wgsl" with { type: "text" };
import kvLoad from "./_kv_load.wgsl" with { type: "text" };

// The rows and split kernels share one query's online softmax over its keys (attend_row); the
// three read k and v through the f32 / packed-f16 loads of _kv_load.wgsl.
const code = `${rowsCode}\n${rowSoftmax}\n${kvLoad}`;
const splitCode = `${splitSource}\n${rowSoftmax}\n${kvLoad}`;
const flashCode = `${flashSource}\n${kvLoad}`;

const PARAMS = uniformLayout(code, "attention");
const FLASH_PARAMS = uniformLayout(flashCode, "attention_flash");
const SPLIT_PARAMS = uniformLayout(splitCode, "attention_split");

/** Workgroups the split kernel aims for (about two per compute unit of a large GPU). */
const SPLIT_TARGET = 256;
/** Fewest keys per chunk of the split kernel (two blocks of 64). */
const SPLIT_MIN_CHUNK = 128;
/** Most keys per chunk: its loops stay under Mesa's 65,535 iterations (attention_split.wgsl). */
const SPLIT_MAX_CHUNK = 4096;

/**
 * Which attention kernel to record: `"rows"`, one workgroup per (batch row, query, head) that
 * streams every key from memory (decode; any head size ≤ 256); `"flash"`, one workgroup per
 * 16 (query, head) rows of a kv head that share each block of 8 keys and values loaded once into
 * shared memory (prefill; head size ≤ 128 and a multiple of 4); `"split"`, the keys split into
 * chunks of at least 128 handled by separate workgroups, whose partial softmax sums a second
 * dispatch combines (decode over a long cache with few (row, head) pairs; needs `scratch`);
 * `"auto"` picks by shape.
 */
export type AttentionKernel = "auto" | "rows" | "flash" | "split";

/** The shape fields that {@linkcode pickAttentionKernel} and the split kernel's sizes read. */
export type AttentionPickShape =
  & Pick<AttentionShape, "tq" | "hq" | "hkv" | "d">
  & Partial<Pick<AttentionShape, "b" | "s" | "kvLen">>;

/**
 * How the split kernel cuts the keys: `chunks` workgroups per (batch row, kv head) when the
 * partial sums run grouped (head size a multiple of 4, `tq · hq / hkv ≤ 8`: one workgroup serves
 * the group's query heads), else per (batch row, query, head), each over `chunk` slots (a
 * multiple of 64). Enough chunks to bring the workgroups to about 256, none but the last
 * shorter than 128 keys, none longer than 4096; `chunks` is 1 when the workgroups fill the device without
 * splitting and the cache is no longer than that.
 *
 * @param shape Batch, queries, heads and `kvLen` (default `s`; one of them is required).
 * @returns Keys per chunk and chunk count.
 *
 * @example One decode step of Qwen3-0.6B (16 query heads) over 1024 cache slots
 * ```ts
 * import { attentionSplit } from "./attention.ts";
 * console.log(attentionSplit({ b: 1, tq: 1, kvLen: 1024, hq: 16, hkv: 8, d: 128 }));
 * // { chunk: 128, chunks: 8 }
 * ```
 */
export function attentionSplit(shape: AttentionPickShape): { chunk: number; chunks: number } {
  const kv = shape.kvLen ?? shape.s ?? 0;
  const want = splitWant(shape);
  if (want <= 1) return { chunk: Math.max(64, Math.ceil(kv / 64) * 64), chunks: 1 };
  const chunk = Math.ceil(kv / want / 64) * 64;
  return { chunk, chunks: Math.ceil(kv / chunk) };
}

// The chunk count attentionSplit aims at before rounding chunks up to a multiple of 64: an upper
// bound of its `chunks` (chunk >= kv / want) that, unlike `chunks`, never falls as kvLen grows
// (4097 keys of one row of 16 heads give 22 chunks of 192, 2817 keys 23 of 128).
function splitWant(shape: AttentionPickShape): number {
  const kv = shape.kvLen ?? shape.s ?? 0;
  const items = (shape.b ?? 1) * (splitGrouped(shape) ? shape.hkv : shape.tq * shape.hq);
  return Math.max(
    1,
    Math.min(Math.ceil(SPLIT_TARGET / items), Math.ceil(kv / SPLIT_MIN_CHUNK)),
    Math.ceil(kv / SPLIT_MAX_CHUNK),
  );
}

/** Whether the split kernel's partial sums run grouped: a kv head's rows in one workgroup. */
function splitGrouped(shape: AttentionPickShape): boolean {
  return shape.d % 4 === 0 && shape.tq * (shape.hq / shape.hkv) <= 8;
}

/**
 * Floats of the `scratch` buffer the split kernel needs for any batch of up to `b` rows and any
 * `kvLen` up to the given one (`s` by default): a decode workspace sized once serves every step.
 *
 * @param shape Largest batch, queries, heads, head size and largest `kvLen`.
 * @returns Floats: `b · tq · hq · chunks · (d + 2)` at the worst batch size.
 *
 * @example Scratch of 8 decode rows of Qwen3-0.6B over a 1024-slot cache
 * ```ts
 * import { attentionScratchSize } from "./attention.ts";
 * console.log(attentionScratchSize({ b: 8, tq: 1, kvLen: 1024, hq: 16, hkv: 8, d: 128 }));
 * // 74880
 * ```
 */
export function attentionScratchSize(shape: AttentionPickShape): number {
  // Sized by the unrounded chunk count, which bounds `chunks` and grows with kvLen: `chunks`
  // itself can be larger at a shorter cache than at the longest one.
  let most = 0;
  for (let b = 1; b <= (shape.b ?? 1); b++) {
    const chunks = splitWant({ ...shape, b });
    most = Math.max(most, b * shape.tq * shape.hq * chunks * (shape.d + 2));
  }
  return most;
}

/**
 * The kernel that `kernel: "auto"` records: `"flash"` when the head size allows it and the
 * queries fill at least one block of 16 rows (`tq · hq / hkv ≥ 16`); else `"split"` for a single
 * query per row when {@linkcode attentionSplit} cuts the keys in two or more chunks (a cache
 * of more than 128 slots and fewer than 256 workgroups without splitting, or a cache over 4096
 * slots; needs `b` and `kvLen` or `s`); else `"rows"`.
 *
 * @param shape Queries, heads and head size; batch and cache length for the split choice.
 * @returns `"flash"`, `"split"` or `"rows"`.
 *
 * @example Prefill of 64 tokens and decode steps of Qwen3-0.6B (16/8 heads of 128)
 * ```ts
 * import { pickAttentionKernel } from "./attention.ts";
 * const heads = { hq: 16, hkv: 8, d: 128 };
 * console.log(
 *   pickAttentionKernel({ tq: 64, ...heads }),
 *   pickAttentionKernel({ b: 1, tq: 1, kvLen: 1024, ...heads }),
 *   pickAttentionKernel({ b: 1, tq: 1, kvLen: 128, ...heads }),
 * ); // flash split rows
 * ```
 */
export function pickAttentionKernel(shape: AttentionPickShape): "rows" | "flash" | "split" {
  const { tq, hq, hkv, d } = shape;
  if (d <= 128 && d % 4 === 0 && tq * (hq / hkv) >= 16) return "flash";
  const long = shape.b !== undefined && (shape.kvLen ?? shape.s) !== undefined;
  return tq === 1 && long && attentionSplit(shape).chunks >= 2 ? "split" : "rows";
}

/** Arguments of {@linkcode encodeAttention}. */
export interface AttentionArgs extends AttentionShape {
  /** Queries `[b, tq, hq, d]`. */
  q: Binding;
  /** Keys `[b, s, hkv, d]`. */
  k: Binding;
  /** Values `[b, s, hkv, d]`. */
  v: Binding;
  /** Key mask `[b, s]` (u32, 1 = real token). */
  mask: Binding;
  /** Output `[b, tq, hq, d]`. */
  o: Binding;
  /** Kernel; default `"auto"` (by shape, see {@linkcode pickAttentionKernel}). */
  kernel?: AttentionKernel;
  /**
   * Scratch of the split kernel, at least {@linkcode attentionScratchSize} floats; without it
   * `"auto"` never picks `"split"`.
   */
  scratch?: Binding;
  /**
   * `k` and `v` hold f16 values packed two per 32-bit word (a `KvCache` of dtype `"f16"`; `d`
   * even), widened to f32 as read; default false (f32). Every kernel reads either.
   */
  kvF16?: boolean;
}

/**
 * Records one attention dispatch, with the kernel picked by shape (see {@linkcode AttentionKernel}).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and causality.
 * @throws {RangeError} If the head size exceeds 256 or `hkv` does not divide `hq`, `"flash"` is
 * asked for a head size over 128 or not a multiple of 4, or `"split"` without a large enough
 * `scratch`, or `kvF16` with an odd head size.
 *
 * @example Self-attention of 2 sequences of 16 tokens
 * ```ts ignore
 * import { encodeAttention } from "./attention.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer;
 * declare const mask: GPUBuffer, o: GPUBuffer;
 * encodeAttention(ctx, pass, { q, k, v, mask, o, b: 2, tq: 16, s: 16, hq: 4, hkv: 2, d: 16 });
 * ```
 */
export function encodeAttention(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: AttentionArgs,
): void {
  if (args.d > 256 || args.hq % args.hkv !== 0) {
    throw new RangeError(
      `Cannot run attention: need head size <= 256 and query heads divisible by key/value ` +
        `heads: current values are d=${args.d}, hq=${args.hq}, hkv=${args.hkv}`,
    );
  }
  checkKvF16Width("attention", "head size d", args.d, args.kvF16);
  let kernel = args.kernel ?? "auto";
  if (kernel === "auto") {
    kernel = pickAttentionKernel(args);
    if (kernel === "split" && !args.scratch) kernel = "rows";
  }
  if (kernel === "split") {
    encodeSplit(ctx, pass, args);
    return;
  }
  if (kernel === "flash") {
    if (args.d > 128 || args.d % 4 !== 0) {
      throw new RangeError(
        `Cannot run flash attention: need a head size <= 128 and a multiple of 4: current ` +
          `value is d=${args.d}`,
      );
    }
    const rows = args.tq * (args.hq / args.hkv);
    const params = attentionParams("attention", FLASH_PARAMS, args, ["q", "o"], keyShaped(args));
    // DJ: the vec4s of a thread's quarter of d that hold the head (the rest are zero padding).
    const flash = kvVariant(flashCode, args.kvF16, { ...GRID_CONSTANTS, DJ: flashSlices(args.d) });
    ctx.dispatch(
      pass,
      ctx.pipeline("attention_flash", flash.code, { constants: flash.constants }),
      [args.q, args.k, args.v, args.mask, args.o],
      grid(args.b * args.hkv * Math.ceil(rows / 16)),
      params,
    );
    return;
  }
  const params = attentionParams("attention", PARAMS, args, ["q", "o"], keyShaped(args));
  const rows = kvVariant(code, args.kvF16, GRID_CONSTANTS);
  ctx.dispatch(
    pass,
    ctx.pipeline("attention", rows.code, { constants: rows.constants }),
    [args.q, args.k, args.v, args.mask, args.o],
    grid(args.b * args.tq * args.hq),
    params,
  );
}

/** Records the split kernel's two dispatches: partial sums per key chunk, then their combination. */
function encodeSplit(ctx: GpuContext, pass: GPUComputePassEncoder, args: AttentionArgs): void {
  const { b, tq, hq, d } = args;
  const { chunk, chunks } = attentionSplit(args);
  const need = b * tq * hq * chunks * (d + 2);
  if (!args.scratch) {
    throw new RangeError(
      `Cannot run split attention: need "scratch" of at least ${need} floats ` +
        `([b, tq, hq, chunks, d + 2] = [${b}, ${tq}, ${hq}, ${chunks}, ${d + 2}]): current value ` +
        `is undefined`,
    );
  }
  checkSize(
    "split attention",
    "scratch",
    args.scratch,
    need,
    `[b, tq, hq, chunks, d + 2] = [${b}, ${tq}, ${hq}, ${chunks}, ${d + 2}]`,
  );
  const params = attentionParams("attention", SPLIT_PARAMS, args, ["q", "o"], keyShaped(args), {
    chunk,
    chunks,
  });
  const grouped = splitGrouped(args);
  const split = kvVariant(splitCode, args.kvF16, GRID_CONSTANTS);
  ctx.dispatch(
    pass,
    ctx.pipeline("attention_split", split.code, {
      entryPoint: grouped ? "grouped" : "main",
      constants: split.constants,
    }),
    [args.q, args.k, args.v, args.mask, args.scratch],
    grid((grouped ? b * args.hkv : b * tq * hq) * chunks),
    params,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("attention_split", splitCode, {
      entryPoint: "combine",
      constants: GRID_CONSTANTS,
    }),
    [args.scratch, args.o],
    grid(b * tq * hq),
    params,
  );
}

/**
 * The key-shaped operands for `attentionParams` to check: `k` and `v` as f32; none for a packed-f16
 * cache, checked here at half the words.
 */
function keyShaped(args: AttentionArgs): ("k" | "v")[] {
  if (!args.kvF16) return ["k", "v"];
  const { b, s, hkv, d } = args;
  for (const name of ["k", "v"] as const) {
    const shape = `[b, s, hkv, d] = [${b}, ${s}, ${hkv}, ${d}] f16 values`;
    checkSize("attention", name, args[name], kvWords(b * s * hkv * d, true), shape);
  }
  return [];
}
