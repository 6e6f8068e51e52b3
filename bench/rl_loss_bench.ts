/**
 * Time of the two RL loss kernels as a train step records them: `clipped_pg` (value, metrics and
 * dLogprobs over batch × seqLen tokens) and `hidden_align` (gather the anchor rows from the
 * [batch, seqLen, hidden] hidden states, group targets, value, dLastHidden scatter).
 *
 * Napkin math: clipped_pg reads logprobs, old logprobs, advantages and the mask twice (per-sequence
 * sums, then the gradient) and writes dLogprobs: 36 B/token, so it is memory-bound (H100 SXM
 * ~3.35 TB/s: 64 × 1024 tokens ≈ 2.4 MB ≈ 1 µs of traffic, i.e. launch-bound). hidden_align
 * touches only the batch anchor rows (not the whole hidden buffer): ~6 · batch · hidden · 4 B
 * plus the group passes, so it is launch-bound at every shape; the figure of merit is its time
 * against a train step's (the "zero overhead" claim: a few dispatches of microseconds each).
 * The baseline of each group is a buffer copy of the clipped_pg bytes.
 *
 * Shapes: tiny by default (8 × 128 tokens, hidden 64: software adapters); `HALO_BENCH_FULL=1`
 * runs the 0.6B-like shape (64 sequences × 1024 tokens, hidden 1024, 8 groups of 8).
 *
 * `deno bench --allow-read --allow-env bench/rl_loss_bench.ts` runs Deno.bench (time per batch of
 * `BATCH` recordings in one submit); `deno run --allow-read --allow-env bench/rl_loss_bench.ts`
 * prints ms per call and GB/s. Both print the adapter first; record it with every number.
 *
 * @module
 */
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import {
  CLIPPED_PG_OUT_FLOATS,
  CLIPPED_PG_STATS_FLOATS,
  encodeClippedPg,
} from "../kernels/clipped_pg/clipped_pg.ts";
import {
  encodeHiddenAlign,
  HIDDEN_ALIGN_OUT_FLOATS,
  hiddenAlignScratchFloats,
} from "../kernels/hidden_align/hidden_align.ts";

const FULL = Deno.env.get("HALO_BENCH_FULL") === "1";
const SHAPE = FULL
  ? { batch: 64, seqLen: 1024, hidden: 1024, groupSize: 8 }
  : { batch: 8, seqLen: 128, hidden: 64, groupSize: 4 };
const PG_BYTES_PER_TOKEN = 36;

const ctx = new GpuContext(await createGpu());
const software = ctx.gpu.isFallbackAdapter ||
  /llvmpipe|lavapipe|swiftshader/i.test(ctx.gpu.description);
console.log(`adapter: ${ctx.gpu.description}${software ? " (software)" : ""}`);
console.log(
  `shape: ${SHAPE.batch} × ${SHAPE.seqLen} tokens, hidden ${SHAPE.hidden}, groups of ` +
    `${SHAPE.groupSize}${FULL ? " (HALO_BENCH_FULL)" : ""}`,
);

/** Recordings per submit in Deno.bench mode (the ≥ 10 ms sync must stay small against them). */
const BATCH: number = software ? 4 : 200;

const { batch, seqLen, hidden, groupSize } = SHAPE;
const n = batch * seqLen;
const numGroups = Math.ceil(batch / groupSize);

function seeded(len: number, seed: number, lo: number, hi: number): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: len }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (a / 4294967296);
  });
}

// clipped_pg buffers: [batch, seqLen] as in the train step (no target at the last position).
const oldLp = seeded(n, 1, -4, -0.05);
const lp = oldLp.map((x, i) => x + 0.3 * Math.sin(i));
const mask = Float32Array.from({ length: n }, (_, i) => (i % seqLen < seqLen - 1 ? 1 : 0));
const pg = {
  logprobs: ctx.upload(lp, "lp"),
  oldLogprobs: ctx.upload(oldLp, "old"),
  advantages: ctx.upload(seeded(n, 2, -1, 1), "adv"),
  lossMask: ctx.upload(mask, "mask"),
  dLogprobs: ctx.createBuffer(4 * n, "dLogprobs"),
  stats: ctx.createBuffer(4 * batch * CLIPPED_PG_STATS_FLOATS, "stats"),
  out: ctx.createBuffer(4 * CLIPPED_PG_OUT_FLOATS, "pg out"),
  batch,
  width: seqLen,
  normalizer: n,
};

// hidden_align buffers: every other rollout correct, anchors spread over the sequence.
const shape = { batch, hiddenSize: hidden, numGroups };
const align = {
  ...shape,
  seqLen,
  hidden: ctx.upload(seeded(n * hidden, 3, -1, 1), "hidden"),
  anchors: ctx.upload(Int32Array.from({ length: batch }, (_, b) => (b * 37) % seqLen), "anchors"),
  groups: ctx.upload(Uint32Array.from({ length: batch }, (_, b) => Math.floor(b / groupSize)), "g"),
  correct: ctx.upload(Uint32Array.from({ length: batch }, (_, b) => (b % 2 === 0 ? 1 : 0)), "c"),
  dLastHidden: ctx.createBuffer(4 * n * hidden, "dLastHidden"),
  scratch: ctx.createBuffer(4 * hiddenAlignScratchFloats(shape), "scratch"),
  out: ctx.createBuffer(4 * HIDDEN_ALIGN_OUT_FLOATS, "align out"),
  weight: 0.1,
};

const copyBytes = Math.ceil((PG_BYTES_PER_TOKEN / 2) * n / 4) * 4;
const src = ctx.createBuffer(copyBytes, "copy src");
const dst = ctx.createBuffer(copyBytes, "copy dst");

async function run(record: (enc: GPUCommandEncoder) => void): Promise<void> {
  const enc = ctx.device.createCommandEncoder();
  record(enc);
  ctx.device.queue.submit([enc.finish()]);
  await ctx.device.queue.onSubmittedWorkDone();
}

function inPass(body: (pass: GPUComputePassEncoder) => void) {
  return (enc: GPUCommandEncoder) => {
    const pass = enc.beginComputePass();
    body(pass);
    pass.end();
  };
}

const cases: Record<string, (k: number) => Promise<void>> = {
  clipped_pg: (k) =>
    run(inPass((pass) => {
      for (let i = 0; i < k; i++) encodeClippedPg(ctx, pass, pg);
    })),
  "clipped_pg seq-mean-token-mean dual": (k) =>
    run(inPass((pass) => {
      for (let i = 0; i < k; i++) {
        encodeClippedPg(ctx, pass, { ...pg, aggregation: "seq-mean-token-mean", dualClip: 3 });
      }
    })),
  "hidden_align cos-centroid": (k) =>
    run(inPass((pass) => {
      for (let i = 0; i < k; i++) encodeHiddenAlign(ctx, pass, align);
    })),
  "hidden_align cos-pairwise": (k) =>
    run(inPass((pass) => {
      for (let i = 0; i < k; i++) encodeHiddenAlign(ctx, pass, { ...align, type: "cos-pairwise" });
    })),
  "copy baseline": (k) =>
    run((enc) => {
      for (let i = 0; i < k; i++) enc.copyBufferToBuffer(src, 0, dst, 0, copyBytes);
    }),
};

/** Milliseconds per call: the batch doubles until one submit takes ≥ 200 ms, best of 3. */
async function measure(fn: (k: number) => Promise<void>): Promise<number> {
  await fn(1); // warm-up: pipelines, bind groups
  let k = 1;
  let ms = 0;
  for (;;) {
    const t0 = performance.now();
    await fn(k);
    ms = performance.now() - t0;
    if (ms >= 200 || k >= 4096) break;
    k *= 2;
  }
  let best = ms / k;
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    await fn(k);
    best = Math.min(best, (performance.now() - t0) / k);
  }
  return best;
}

if (import.meta.main) {
  for (const [name, fn] of Object.entries(cases)) {
    const ms = await measure(fn);
    const pgLike = name.startsWith("clipped_pg") || name === "copy baseline";
    const rate = pgLike
      ? `  ${((PG_BYTES_PER_TOKEN * n) / (ms * 1e-3) / 1e9).toPrecision(3)} GB/s (36 B/token)`
      : "";
    console.log(`${name.padEnd(36)} ${(ms * 1e3).toFixed(1).padStart(9)} µs/call${rate}`);
  }
} else {
  const group = `rl loss ${batch}x${seqLen} h${hidden}`;
  const opts = { group, n: 5, warmup: 1 };
  for (const [name, fn] of Object.entries(cases)) {
    Deno.bench(
      `${name} x${BATCH}`,
      { ...opts, baseline: name === "copy baseline" },
      () => fn(BATCH),
    );
  }
}
