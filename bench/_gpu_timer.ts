/**
 * GPU-timestamp timing of one benchmark sample: the benches' shared replacement for timing
 * submit + readback by the wall clock.
 *
 * A GPU→CPU round trip (submit, then `mapAsync` or `onSubmittedWorkDone`) costs about 11 ms in
 * Deno 2.9.6 whatever the work (it polls every 10 ms), so a sample timed by the wall clock around
 * it measures the round trip, not the kernels, unless it holds far more work than that. When the
 * device has `"timestamp-query"` (`gpu/device.ts` enables it; the H100/H200 and llvmpipe have it)
 * the sample is the GPU's own time between the beginning and the end of the one compute pass
 * begun with {@linkcode GpuTimer.passDescriptor} (its `timestampWrites`), gaps between its
 * dispatches included as in the model's passes; the two timestamps are resolved and read back
 * with the sample, in the same round trip. Without the feature, or with `HALO_BENCH_WALL=1`, the
 * sample is the wall time of that round trip. A timestamp pair that is not increasing or that
 * exceeds the wall time (a driver that does not honour them) falls back to the wall time for
 * that sample ({@linkcode timestampMs}), counted in {@linkcode GpuTimer.fallbacks}.
 *
 * The launchers record into a pass they are given, so a bench begins the pass with the timer's
 * descriptor and records its kernels into it as before.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";

/** What a sample's time is: the pass's GPU timestamps, or the wall time of its round trip. */
export type GpuTiming = "GPU timestamps" | "wall clock";

/** One timed sample. */
export interface GpuSample {
  /** The sample's time in milliseconds: the GPU's when usable, else the wall time. */
  ms: number;
  /** The wall time of the submit + readback round trip, in milliseconds. */
  wallMs: number;
  /** Which of the two `ms` is. */
  timing: GpuTiming;
}

/** Options of {@linkcode createGpuTimer}. */
export interface GpuTimerOptions {
  /**
   * Time by the wall clock even when the device has `"timestamp-query"`. Default: the
   * environment's `HALO_BENCH_WALL` is `"1"`.
   */
  wallClock?: boolean;
}

/** The timer of one bench file; see the module doc. One timed pass per sample. */
export interface GpuTimer {
  /** How samples are timed: `"GPU timestamps"` when the pass's timestamps are written. */
  readonly timing: GpuTiming;
  /** Samples whose timestamps were unusable and that were timed by the wall clock instead. */
  readonly fallbacks: number;
  /**
   * The descriptor of the compute pass to time: `descriptor` with the timer's `timestampWrites`
   * added (unchanged when timing by the wall clock). Call once per sample, before
   * {@linkcode GpuTimer.time}: every pass begun with it writes the same two timestamps, so of
   * two such passes in one sample only the last would be timed.
   *
   * @param descriptor The pass's own fields (a label).
   * @returns The descriptor to pass to `beginComputePass`.
   */
  passDescriptor(descriptor?: GPUComputePassDescriptor): GPUComputePassDescriptor;
  /**
   * Resolves the pass's timestamps into the encoder, submits it, reads them back (the sample's
   * one round trip) and returns the sample's time.
   *
   * @param encoder The encoder holding the ended pass begun with
   * {@linkcode GpuTimer.passDescriptor}.
   * @returns The sample.
   * @throws {Error} If no pass was begun with {@linkcode GpuTimer.passDescriptor} since the last
   * sample, or if the device reported an error (from `readback`).
   */
  time(encoder: GPUCommandEncoder): Promise<GpuSample>;
  /**
   * How the samples so far were timed, for a summary: `"GPU timestamps"` with the fallbacks if
   * any, or `"wall clock incl. one ~11 ms round trip per sample"`.
   */
  describe(): string;
  /** Destroys the query set and the buffer. */
  dispose(): void;
}

/**
 * The fallback rule: a sample's GPU time from its pass's beginning and end timestamps (ns), or
 * undefined when they are unusable (not increasing, or longer than the wall time of the round
 * trip that contains the pass) and the wall time must be taken instead.
 *
 * @param begin The beginning-of-pass timestamp, in nanoseconds.
 * @param end The end-of-pass timestamp, in nanoseconds.
 * @param wallMs The wall time of the sample's submit + readback, in milliseconds.
 * @returns `(end − begin) / 1e6` milliseconds, or undefined.
 *
 * @example
 * ```ts
 * import { timestampMs } from "./_gpu_timer.ts";
 * console.log(timestampMs(1_000n, 2_501_000n, 12)); // 2.5
 * console.log(timestampMs(5n, 5n, 12)); // undefined: not increasing
 * ```
 */
export function timestampMs(begin: bigint, end: bigint, wallMs: number): number | undefined {
  if (end <= begin) return undefined;
  const ms = Number(end - begin) / 1e6;
  return ms <= wallMs ? ms : undefined;
}

/**
 * A timer of one compute pass per sample, by GPU timestamps when the device has them.
 *
 * @param ctx The GPU context.
 * @param options See {@linkcode GpuTimerOptions}.
 * @returns The timer.
 *
 * @example Time 16 launches in one pass
 * ```ts ignore
 * import { createGpu } from "../gpu/device.ts";
 * import { GpuContext } from "../gpu/context.ts";
 * import { createGpuTimer } from "./_gpu_timer.ts";
 * const ctx = new GpuContext(await createGpu());
 * const timer = createGpuTimer(ctx);
 * const enc = ctx.device.createCommandEncoder();
 * const pass = enc.beginComputePass(timer.passDescriptor({ label: "bench" }));
 * // for (let r = 0; r < 16; r++) encodeSomething(ctx, pass, { … });
 * pass.end();
 * const { ms, timing } = await timer.time(enc);
 * console.log(`${(ms / 16).toFixed(3)} ms a launch (${timing})`);
 * ```
 */
export function createGpuTimer(ctx: GpuContext, options: GpuTimerOptions = {}): GpuTimer {
  const wallClock = options.wallClock ?? Deno.env.get("HALO_BENCH_WALL") === "1";
  const timing: GpuTiming = ctx.gpu.features.has("timestamp-query") && !wallClock
    ? "GPU timestamps"
    : "wall clock";
  const querySet = timing === "GPU timestamps"
    ? ctx.device.createQuerySet({ type: "timestamp", count: 2, label: "bench timestamps" })
    : null;
  // The two timestamps, resolved here and read back with the sample (read back without
  // timestamps too: its readback is the sample's round trip).
  const stamps = ctx.device.createBuffer({
    label: "bench timestamps",
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  let fallbacks = 0;
  let passBegun = false;
  return {
    timing,
    get fallbacks() {
      return fallbacks;
    },
    passDescriptor(descriptor = {}) {
      passBegun = true;
      if (!querySet) return descriptor;
      return {
        ...descriptor,
        timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
      };
    },
    async time(encoder) {
      if (!passBegun) {
        throw new Error(
          "Cannot time the sample: no pass was begun with timer.passDescriptor() since the " +
            "last sample",
        );
      }
      passBegun = false;
      if (querySet) encoder.resolveQuerySet(querySet, 0, 2, stamps, 0);
      const t0 = performance.now();
      const [bytes] = await readback(ctx, [{ buffer: stamps, offset: 0, size: 16 }], encoder);
      const wallMs = performance.now() - t0;
      if (!querySet) return { ms: wallMs, wallMs, timing };
      const [begin, end] = new BigUint64Array(bytes);
      const gpuMs = timestampMs(begin, end, wallMs);
      if (gpuMs === undefined) fallbacks++;
      return gpuMs === undefined
        ? { ms: wallMs, wallMs, timing: "wall clock" }
        : { ms: gpuMs, wallMs, timing: "GPU timestamps" };
    },
    describe() {
      if (timing === "wall clock") return "wall clock incl. one ~11 ms round trip per sample";
      return `GPU timestamps${
        fallbacks ? `, ${fallbacks} samples by wall clock (bad timestamps)` : ""
      }`;
    },
    dispose() {
      querySet?.destroy();
      stamps.destroy();
    },
  };
}
