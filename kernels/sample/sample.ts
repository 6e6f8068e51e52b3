/**
 * Launcher of the on-GPU sampler: greedy, temperature, top-k, top-p and min-p with a seeded
 * counter-based RNG, stop tokens and per-sequence stop state.
 *
 * @module
 */
import type { Binding, GpuContext } from "../../gpu/context.ts";
import { packUniform, uniformLayout } from "../../gpu/uniforms.ts";
import { checkSize } from "../_check.ts";
import { grid, GRID_CONSTANTS } from "../_grid.ts";
import code from "./sample.wgsl" with { type: "text" };

const PARAMS = uniformLayout(code, "sample");

/** Arguments of {@linkcode encodeSample}. */
export interface SampleArgs {
  /** Logits `[rows, v]`. */
  logits: Binding;
  /** Seed, row → sequence map and stop ids, from {@linkcode sampleInfo} (u32). */
  info: Binding;
  /** Decode cursor `[slot, step]` (u32); `step` is the output index being sampled. */
  ctrl: Binding;
  /** Next input id of each row `[rows]` (u32), written. */
  ids: Binding;
  /** Records `[maxNewTokens, sequences, 3]` (u32): token, bits of the sampling and model log-probs. */
  out: Binding;
  /** Per-sequence `(reason, length)` `[sequences, 2]` (u32; reason 0 running, 1 eos, 2 stop, 3 length). */
  state: Binding;
  /** Rows of logits (active sequences). */
  rows: number;
  /** Vocabulary size. */
  v: number;
  /** Sequences in `out` and `state`. */
  sequences: number;
  /** Output steps in `out`; sampling step `maxNewTokens − 1` ends a running sequence ("length"). */
  maxNewTokens: number;
  /** `0` = greedy; else the softmax temperature. */
  temperature: number;
  /** Top-k (`0` = off). */
  topK?: number;
  /** Top-p in (0, 1] (`1` = off). */
  topP?: number;
  /** Min-p in [0, 1) (`0` = off). */
  minP?: number;
  /** Number of EOS ids in `info`. */
  numEos: number;
  /**
   * Minimum length: while the step (`ctrl[1]`) is below this, the EOS ids in `info` are banned
   * (logit −∞ for the choice and the sampling log-prob; the model log-prob is unmodified), as
   * HuggingFace's `min_new_tokens`; default 0 (off).
   */
  minNewTokens?: number;
  /** Number of other stop ids in `info`. */
  numStop: number;
  /**
   * Added to each row's sequence for its RNG stream (not its output column): the sequences of
   * this call are those at `firstSequence …` of a larger batch split over calls; default 0.
   */
  firstSequence?: number;
}

/** Arguments of {@linkcode sampleInfo}. */
export interface SampleInfoArgs {
  /** RNG seed, a non-negative safe integer. */
  seed: number;
  /** The sequence each row holds (its RNG stream and output column). */
  rowSequence: ArrayLike<number>;
  /** Ids that end a sequence with reason "eos". */
  eosTokenIds: readonly number[];
  /** Other ids that end a sequence with reason "stop". */
  stopTokenIds: readonly number[];
}

/**
 * Packs the `info` buffer of {@linkcode encodeSample}:
 * `[seed_lo, seed_hi, rowSequence..., eos..., stop...]`.
 *
 * @param args Seed, row map and stop ids.
 * @returns The u32 words.
 *
 * @example Two rows, EOS 2
 * ```ts
 * import { sampleInfo } from "./sample.ts";
 * const info = sampleInfo({ seed: 7, rowSequence: [0, 1], eosTokenIds: [2], stopTokenIds: [] });
 * console.log(info); // Uint32Array [7, 0, 0, 1, 2]
 * ```
 */
export function sampleInfo(args: SampleInfoArgs): Uint32Array<ArrayBuffer> {
  const { seed, rowSequence, eosTokenIds, stopTokenIds } = args;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(
      `Cannot pack the sampler info: seed must be a non-negative safe integer: current value is ${seed}`,
    );
  }
  const out = new Uint32Array(2 + rowSequence.length + eosTokenIds.length + stopTokenIds.length);
  out[0] = seed % 2 ** 32;
  out[1] = Math.floor(seed / 2 ** 32);
  out.set(Array.from(rowSequence), 2);
  out.set(eosTokenIds, 2 + rowSequence.length);
  out.set(stopTokenIds, 2 + rowSequence.length + eosTokenIds.length);
  return out;
}

/**
 * Threads per row: a power of two from 32 to 256, about one per 16 logits (a workgroup barrier
 * costs in proportion to its size, and each pass ends in one; software adapters pay the most).
 * The only workgroup size halo sets by an override constant, which no error scope reports when a
 * device cannot run it; at most 256 threads and 6 × 256 × 4 + 4 = 6,148 bytes of workgroup
 * storage, within the limits WebGPU guarantees on every device (256 invocations, 256 in x,
 * 16,384 bytes).
 */
function workgroupSize(v: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, v / 16)))));
}

/**
 * Records one sampling dispatch (one workgroup per row).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args Buffers, shape and sampling parameters.
 *
 * @example Sample 4 rows of a 384-token vocabulary at temperature 0.7, top-p 0.9
 * ```ts ignore
 * import { encodeSample } from "./sample.ts";
 * declare const ctx: import("../../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder;
 * declare const logits: GPUBuffer, info: GPUBuffer, ctrl: GPUBuffer, ids: GPUBuffer;
 * declare const out: GPUBuffer, state: GPUBuffer;
 * encodeSample(ctx, pass, {
 *   logits, info, ctrl, ids, out, state, rows: 4, v: 384, sequences: 4, maxNewTokens: 16,
 *   temperature: 0.7, topP: 0.9, numEos: 1, numStop: 0,
 * });
 * ```
 */
export function encodeSample(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: SampleArgs,
): void {
  const greedy = args.temperature === 0;
  checkSize(
    "sample",
    "logits",
    args.logits,
    args.rows * args.v,
    `[rows, v] = [${args.rows}, ${args.v}]`,
  );
  ctx.dispatch(
    pass,
    ctx.pipeline("sample", code, {
      constants: { ...GRID_CONSTANTS, WG: workgroupSize(args.v) },
    }),
    [args.logits, args.info, args.ctrl, args.ids, args.out, args.state],
    grid(args.rows),
    packUniform(PARAMS, {
      R: args.rows,
      V: args.v,
      n_seq: args.sequences,
      max_new: args.maxNewTokens,
      greedy,
      top_k: greedy ? 0 : args.topK ?? 0,
      n_eos: args.numEos,
      n_stop: args.numStop,
      temperature: greedy ? 1 : args.temperature,
      top_p: greedy ? 1 : args.topP ?? 1,
      min_p: greedy ? 0 : args.minP ?? 0,
      min_new: args.minNewTokens ?? 0,
      seq_base: args.firstSequence ?? 0,
    }),
  );
}
