// Matmul kernel throughput (GFLOP/s) at several sizes. Each iteration records REPS dispatches
// into one pass and waits once, so Deno's ≥10 ms readback does not dominate; a summary with
// GFLOP/s per size and the adapter is printed at the end.
//   deno task bench bench/matmul_bench.ts          (HALO_BENCH_FULL=1 adds the large sizes)
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { encodeMatmul } from "../kernels/matmul/matmul.ts";
import { benchFull } from "./random_model.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);
const summary: string[] = [];

// [m, n, k]: square sizes plus the shapes of a Qwen3-0.6B step (64 tokens × 1024 → 3072 MLP).
const sizes: [number, number, number][] = benchFull()
  ? [[1024, 1024, 1024], [4096, 4096, 4096], [8192, 8192, 8192], [512, 3072, 1024], [
    64,
    1024,
    3072,
  ]]
  : [[128, 128, 128], [256, 256, 256], [512, 512, 512], [64, 3072, 1024]];

for (const [m, n, k] of sizes) {
  const flop = 2 * m * n * k;
  const reps = Math.max(1, Math.min(64, Math.round((benchFull() ? 2e12 : 2e9) / flop)));
  const x = ctx.createBuffer(m * k * 4, "x");
  const w = ctx.createBuffer(n * k * 4, "w");
  const y = ctx.createBuffer(m * n * 4, "y");
  const times: number[] = [];
  Deno.bench({
    name: `matmul ${m}x${n}x${k} ×${reps}`,
    group: "matmul",
    n: 5,
    warmup: 1,
    async fn(b) {
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      for (let r = 0; r < reps; r++) encodeMatmul(ctx, pass, { x, w, y, m, n, k });
      pass.end();
      b.start();
      const t0 = performance.now();
      ctx.device.queue.submit([enc.finish()]);
      await ctx.device.queue.onSubmittedWorkDone();
      times.push(performance.now() - t0);
      b.end();
    },
  });
  summary.push(`${m}x${n}x${k}`);
  addEventListener("unload", () => {
    if (times.length === 0) return;
    const best = Math.min(...times);
    console.log(
      `matmul ${m}x${n}x${k}: ${((flop * reps) / (best * 1e6)).toFixed(2)} GFLOP/s ` +
        `(best of ${times.length}, ${reps} dispatches per submit) on ${ctx.gpu.description}`,
    );
  });
}
