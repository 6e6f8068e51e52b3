// Attention throughput, old kernel against new in one run, at Qwen3-0.6B heads (16 query / 8 kv
// heads of 128), forced through the launchers' `kernel:` option:
//   prefill   causal self-attention over t tokens, "rows" (one workgroup per (query, head), the
//             baseline) vs "flash" (tiled); 4·d FLOPs per visible (query, key) pair (q·k, p·v),
//             t(t+1)/2 pairs per head;
//   backward  the same over t tokens, "rows" vs "flash"; 10·d FLOPs per visible pair (q·k, dO·v,
//             dq, dk, dv), whatever each kernel recomputes on top;
//   decode    one query per row over a kv-slot cache, "rows" vs "split" (split-KV), each also over
//             an f16 KV cache ("rows f16", "split f16": kvF16, half the bytes); 4·d FLOPs per
//             (row, head, slot).
// Each iteration records REPS dispatches into one pass and waits once; a summary table of the best
// GFLOP/s is printed at the end. A sample is the GPU's time between the pass's beginning and end
// timestamps when the device has "timestamp-query" (bench/_gpu_timer.ts; HALO_BENCH_WALL=1 or no
// timestamps: the wall time of submit + readback, which includes a ~11 ms round trip in Deno);
// the summary says which. `deno bench`'s own time column is always the wall time of the round trip.
//   deno task bench bench/attention_bench.ts          (HALO_BENCH_FULL=1: GPU-sized lengths)
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { attentionScratchSize, encodeAttention } from "../kernels/attention/attention.ts";
import { encodeAttentionBackward } from "../kernels/attention/attention_backward.ts";
import { benchFull } from "./random_model.ts";
import { createGpuTimer } from "./_gpu_timer.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);
const timer = createGpuTimer(ctx);

const [hq, hkv, d] = [16, 8, 128];
// [b, t]
const shapes: [number, number][] = benchFull() ? [[8, 512], [1, 2048], [1, 8192]] : [[1, 128], [
  1,
  256,
]];
const kernels = ["rows", "flash"] as const;
const best = new Map<string, number>();

/**
 * Registers one bench per kernel of `shape` (the first one the baseline): each iteration records
 * `reps` launches of `record` into one pass and waits once; the best GFLOP/s goes to `best`.
 */
function benchKernels<K extends string>(
  shape: string,
  kernels: readonly K[],
  flop: number,
  reps: number,
  record: (pass: GPUComputePassEncoder, kernel: K) => void,
): void {
  for (const kernel of kernels) {
    const key = `${shape} ${kernel}`;
    Deno.bench({
      name: `attention ${key} ×${reps}`,
      group: shape,
      baseline: kernel === kernels[0],
      n: 5,
      warmup: 1,
      async fn(bench) {
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass(timer.passDescriptor());
        for (let r = 0; r < reps; r++) record(pass, kernel);
        pass.end();
        bench.start();
        const { ms } = await timer.time(enc);
        bench.end();
        const gflops = (flop * reps) / (ms * 1e6);
        best.set(key, Math.max(best.get(key) ?? 0, gflops));
      },
    });
  }
}

for (const [b, t] of shapes) {
  const flop = 4 * d * hq * b * (t * (t + 1)) / 2;
  const reps = Math.max(1, Math.min(64, Math.round((benchFull() ? 2e12 : 5e8) / flop)));
  const q = ctx.createBuffer(b * t * hq * d * 4, "q");
  const k = ctx.createBuffer(b * t * hkv * d * 4, "k");
  const v = ctx.createBuffer(b * t * hkv * d * 4, "v");
  const mask = ctx.upload(new Uint32Array(b * t).fill(1), "mask");
  const o = ctx.createBuffer(b * t * hq * d * 4, "o");
  const shape = `b${b} t${t} ${hq}/${hkv}x${d}`;
  benchKernels(
    shape,
    kernels,
    flop,
    reps,
    (pass, kernel) =>
      encodeAttention(ctx, pass, { q, k, v, mask, o, b, tq: t, s: t, hq, hkv, d, kernel }),
  );
}

// Backward (training step over t tokens): 10·d FLOPs per visible pair (q·k, dO·v, dq, dk, dv),
// whatever each kernel recomputes on top.
const bwdShapes: [number, number][] = benchFull() ? [[8, 512], [1, 2048]] : [[1, 64], [1, 128]];
for (const [b, t] of bwdShapes) {
  const flop = 10 * d * hq * b * (t * (t + 1)) / 2;
  const reps = Math.max(1, Math.min(64, Math.round((benchFull() ? 2e12 : 3e8) / flop)));
  const qn = b * t * hq * d;
  const kn = b * t * hkv * d;
  const buf = (n: number, label: string) => ctx.createBuffer(n * 4, label);
  const bufs = {
    q: buf(qn, "q"),
    k: buf(kn, "k"),
    v: buf(kn, "v"),
    mask: ctx.upload(new Uint32Array(b * t).fill(1), "mask"),
    dO: buf(qn, "dO"),
    dq: buf(qn, "dq"),
    dk: buf(kn, "dk"),
    dv: buf(kn, "dv"),
    stats: buf(b * t * hq * 2, "stats"),
  };
  const shape = `backward b${b} t${t} ${hq}/${hkv}x${d}`;
  benchKernels(
    shape,
    kernels,
    flop,
    reps,
    (pass, kernel) =>
      encodeAttentionBackward(ctx, pass, { ...bufs, b, tq: t, s: t, hq, hkv, d, kernel }),
  );
}

// Decode (one query per row at the end of a kv-slot cache): 4·d FLOPs per (row, head, key).
const decShapes: [number, number][] = benchFull()
  ? [[1, 4096], [8, 4096], [1, 32768]]
  : [[1, 512], [1, 1024], [8, 512], [8, 1024]];
for (const [b, kv] of decShapes) {
  const flop = 4 * d * hq * b * kv;
  const reps = Math.max(1, Math.min(256, Math.round((benchFull() ? 2e11 : 3e8) / flop)));
  const dims = { b, tq: 1, s: kv, kvLen: kv, qStart: kv - 1, hq, hkv, d };
  const bufs = {
    q: ctx.createBuffer(b * hq * d * 4, "q"),
    k: ctx.createBuffer(b * kv * hkv * d * 4, "k"),
    v: ctx.createBuffer(b * kv * hkv * d * 4, "v"),
    mask: ctx.upload(new Uint32Array(b * kv).fill(1), "mask"),
    o: ctx.createBuffer(b * hq * d * 4, "o"),
    scratch: ctx.createBuffer(attentionScratchSize(dims) * 4, "scratch"),
  };
  const shape = `decode b${b} kv${kv} ${hq}/${hkv}x${d}`;
  // The f16 variants read the first half of the same k and v buffers (zeros: finite f16 pairs).
  benchKernels(
    shape,
    ["rows", "split", "rows f16", "split f16"] as const,
    flop,
    reps,
    (pass, name) => {
      const [kernel, dtype] = name.split(" ") as ["rows" | "split", string | undefined];
      encodeAttention(ctx, pass, { ...bufs, ...dims, kernel, kvF16: dtype === "f16" });
    },
  );
}

addEventListener("unload", () => {
  if (best.size === 0) return;
  console.log(`\nbest GFLOP/s on ${ctx.gpu.description} (${timer.describe()}):`);
  console.log("| shape | old | new | ratio |");
  console.log("|---|---|---|---|");
  const row = (shape: string, old: string, neu: string) => {
    const a = best.get(`${shape} ${old}`);
    const f = best.get(`${shape} ${neu}`);
    if (a === undefined || f === undefined) return;
    console.log(
      `| ${shape} (${old} → ${neu}) | ${a.toFixed(2)} | ${f.toFixed(2)} | ${(f / a).toFixed(2)}× |`,
    );
  };
  for (const [b, t] of shapes) row(`b${b} t${t} ${hq}/${hkv}x${d}`, "rows", "flash");
  for (const [b, t] of bwdShapes) row(`backward b${b} t${t} ${hq}/${hkv}x${d}`, "rows", "flash");
  for (const [b, kv] of decShapes) {
    const shape = `decode b${b} kv${kv} ${hq}/${hkv}x${d}`;
    row(shape, "rows", "split");
    row(shape, "rows", "rows f16");
    row(shape, "split", "split f16");
  }
});
