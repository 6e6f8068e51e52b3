/**
 * Long recordings (a forward pass, a training step, a generation prefill) submitted in pieces at
 * layer boundaries, so that no single `queue.submit` holds seconds of GPU work.
 *
 * Why: at real sizes one of these recordings is seconds to tens of seconds of GPU time (a 14B
 * prefill of ~30k tokens, or a 14B training micro-step, at tens of TFLOP/s). An OS GPU watchdog
 * (Windows TDR, 2 s by default; macOS) may reset a device that cannot preempt such a command
 * buffer, and Deno's wait for the readback blocks the JS thread for the whole submission. A
 * submit is cheap (no GPU→CPU round trip, unlike a readback, which costs ≥ 10 ms in Deno), so the
 * recording is finished and submitted every `everyLayers` decoder layers (the callers count an
 * LM-head row block as a layer too) and continues in a new encoder; the final readback stays one.
 *
 * Splitting does not change results: submissions run in order, and everything a later piece
 * reads was written either by an earlier piece or by a `queue.writeBuffer` issued before it was
 * submitted. The recordings that use it write their inputs before recording; `GpuContext`'s
 * uniform blocks are written once, when a content is first seen, and never rewritten (a block is
 * written before the submission of the first piece that binds it); scratch buffers are only
 * written by dispatches, which keep their order across submissions.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";

/**
 * Default of `WebGpuQwen3.submitEveryLayers`: on a hardware adapter 1 (a submit after every
 * decoder layer: at Qwen3-14B a forward layer over ~30k tokens is ~2·10¹³ FLOP, about 0.4 s at
 * 50 TFLOP/s, the smallest piece there is without splitting tokens); on a software adapter
 * (`isFallbackAdapter`, e.g. lavapipe) 0, no split: no watchdog runs the CPU, and one submit per
 * recording is what was measured there.
 */
export const DEFAULT_SUBMIT_EVERY_LAYERS: { readonly software: number; readonly hardware: number } =
  Object.freeze({ software: 0, hardware: 1 });

/**
 * The default layers per submission for a context's adapter
 * ({@linkcode DEFAULT_SUBMIT_EVERY_LAYERS}).
 *
 * @param ctx The GPU context.
 * @returns 1 on a hardware adapter, 0 (no split) on a software one.
 *
 * @example On lavapipe
 * ```ts ignore
 * import { defaultSubmitEveryLayers } from "./submit_splitter.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * console.log(defaultSubmitEveryLayers(ctx)); // 0 on a software adapter
 * ```
 */
export function defaultSubmitEveryLayers(ctx: GpuContext): number {
  return DEFAULT_SUBMIT_EVERY_LAYERS[ctx.gpu.isFallbackAdapter ? "software" : "hardware"];
}

/**
 * Checks a `submitEveryLayers` value: an integer ≥ 0 (0: never split).
 *
 * @param value The value.
 * @param where What is being configured, for the error.
 * @returns The value.
 * @throws {RangeError} If it is not an integer ≥ 0.
 *
 * @example
 * ```ts
 * import { checkSubmitEveryLayers } from "./submit_splitter.ts";
 * console.log(checkSubmitEveryLayers(4, "the model")); // 4
 * ```
 */
export function checkSubmitEveryLayers(value: number, where: string): number {
  if (!(Number.isInteger(value) && value >= 0)) {
    throw new RangeError(
      `Cannot configure ${where}: "submitEveryLayers" must be an integer ≥ 0 (0: one submit per ` +
        `recording): current value is ${value}`,
    );
  }
  return value;
}

/**
 * A command encoder and its open compute pass that submit themselves every `everyLayers` layers:
 * record into {@linkcode SubmitSplitter.pass} (or {@linkcode SubmitSplitter.encoder} between
 * passes), call {@linkcode SubmitSplitter.layerDone} after each layer, and read back from (or
 * submit) {@linkcode SubmitSplitter.encoder} at the end. Both getters change after a split: read
 * them again after every `layerDone`.
 *
 * @example A forward recorded in pieces of 4 layers
 * ```ts ignore
 * import { SubmitSplitter } from "./submit_splitter.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare function encodeLayer(pass: GPUComputePassEncoder, l: number): void;
 * const rec = new SubmitSplitter(ctx, ctx.device.createCommandEncoder(), 4, "forward");
 * rec.begin();
 * for (let l = 0; l < 28; l++) {
 *   encodeLayer(rec.pass, l);
 *   rec.layerDone();
 * }
 * rec.end();
 * ctx.device.queue.submit([rec.encoder.finish()]);
 * ```
 */
export class SubmitSplitter {
  readonly #ctx: GpuContext;
  readonly #every: number;
  readonly #label: string;
  #encoder: GPUCommandEncoder;
  #pass: GPUComputePassEncoder | null = null;
  #descriptor: GPUComputePassDescriptor | undefined;
  #layers = 0;
  /** Submissions this splitter made (the final one, by the caller, is not counted). */
  submits = 0;

  /**
   * Wraps an encoder (outside any pass).
   *
   * @param ctx The GPU context.
   * @param encoder The encoder to record into first; it is submitted at the first split.
   * @param everyLayers Layers per submission; 0 never splits.
   * @param label Label of the encoders it makes.
   */
  constructor(ctx: GpuContext, encoder: GPUCommandEncoder, everyLayers: number, label: string) {
    this.#ctx = ctx;
    this.#encoder = encoder;
    this.#every = checkSubmitEveryLayers(everyLayers, `the "${label}" recording`);
    this.#label = label;
  }

  /** The encoder being recorded into now. */
  get encoder(): GPUCommandEncoder {
    return this.#encoder;
  }

  /**
   * The open compute pass.
   *
   * @throws {Error} If no pass is open.
   */
  get pass(): GPUComputePassEncoder {
    if (this.#pass === null) {
      throw new Error(`Cannot record into the "${this.#label}" recording: no compute pass is open`);
    }
    return this.#pass;
  }

  /**
   * Opens a compute pass in the current encoder (reopened with the same descriptor after a
   * split).
   *
   * @param descriptor The pass descriptor.
   * @returns The pass.
   */
  begin(descriptor?: GPUComputePassDescriptor): GPUComputePassEncoder {
    if (this.#pass !== null) {
      throw new Error(`Cannot open a pass in the "${this.#label}" recording: one is open`);
    }
    this.#descriptor = descriptor;
    this.#pass = this.#encoder.beginComputePass(descriptor);
    return this.#pass;
  }

  /** Ends the open compute pass. */
  end(): void {
    this.pass.end();
    this.#pass = null;
  }

  /**
   * Counts one layer recorded; at every `everyLayers`-th since the last submit, ends the pass (if
   * one is open), submits the encoder and continues in a new one (with a new pass if one was
   * open). With `everyLayers` 0 it does nothing.
   */
  layerDone(): void {
    if (this.#every === 0) return;
    if (++this.#layers >= this.#every) this.submit();
  }

  /**
   * Submits what is recorded so far and continues in a new encoder (reopening the pass if one is
   * open); resets the layer count.
   */
  submit(): void {
    const open = this.#pass !== null;
    if (open) this.end();
    this.#ctx.device.queue.submit([this.#encoder.finish()]);
    this.submits++;
    this.#layers = 0;
    this.#encoder = this.#ctx.device.createCommandEncoder({ label: this.#label });
    if (open) this.begin(this.#descriptor);
  }
}
