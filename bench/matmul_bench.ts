// Matmul kernel throughput (GFLOP/s), the 64x64-tile kernel (matmul.wgsl, the baseline) against
// the 128x128-tile one (matmul_128.wgsl), at square sizes and Qwen3-0.6B-like shapes (hidden
// 1024, MLP 3072): the forward y = x · wᵀ and the backward's d x = dy · w and d w = dyᵀ · x.
// Each iteration records REPS dispatches into one pass and waits once, so Deno's ≥10 ms
// readback does not dominate; a summary with GFLOP/s per shape, kernel and adapter is printed at
// the end.
//   deno task bench bench/matmul_bench.ts          (HALO_BENCH_FULL=1: GPU-sized shapes)
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { encodeMatmul, type MatmulKernel, pickMatmulKernel } from "../kernels/matmul/matmul.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { benchFull } from "./random_model.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);

type Op = "y" | "dx" | "dw";
// [op, m (tokens), n (out features), k (in features)]; FLOPs 2·m·n·k for each op.
const shapes: [Op, number, number, number][] = benchFull()
  ? [
    ["y", 1024, 1024, 1024],
    ["y", 4096, 4096, 4096],
    ["y", 8192, 8192, 8192],
    ["y", 4096, 3072, 1024],
    ["y", 4096, 1024, 3072],
    ["dx", 4096, 3072, 1024],
    ["dw", 4096, 3072, 1024],
    ["y", 512, 3072, 1024],
    ["y", 64, 1024, 3072],
    ["y", 1, 1024, 16],
    ["y", 16, 3072, 16],
  ]
  : [
    ["y", 256, 256, 256],
    ["y", 512, 512, 512],
    ["y", 256, 3072, 1024],
    ["y", 256, 1024, 3072],
    ["dx", 256, 3072, 1024],
    ["dw", 256, 3072, 1024],
    ["y", 64, 3072, 1024],
    ["y", 1, 1024, 16],
    ["y", 8, 3072, 16],
  ];

// The 64x64-tile kernel is the baseline of each shape; a short K (LoRA B in decode) is compared
// with the one-thread-per-output kernel instead of the 128x128 tiles.
const kernelsOf = (k: number): Exclude<MatmulKernel, "auto">[] =>
  k <= 32 ? ["tile64", "smallK"] : ["tile64", "tile128"];
const best = new Map<string, number>();

for (const [op, m, n, k] of shapes) {
  const flop = 2 * m * n * k;
  const reps = Math.max(1, Math.min(64, Math.round((benchFull() ? 2e12 : 1e9) / flop)));
  // (tiny products: 64 dispatches per submit, so the time is mostly per-dispatch cost)
  const x = ctx.createBuffer(m * k * 4, "x");
  const w = ctx.createBuffer(n * k * 4, "w");
  const y = ctx.createBuffer(m * n * 4, "y");
  const shape = `${op} ${m}x${n}x${k}`;
  for (const kernel of kernelsOf(k)) {
    const key = `${shape} ${kernel}`;
    Deno.bench({
      name: `matmul ${key} ×${reps}`,
      group: shape,
      baseline: kernel === "tile64",
      n: 3,
      warmup: 1,
      async fn(b) {
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        for (let r = 0; r < reps; r++) {
          if (op === "y") encodeMatmul(ctx, pass, { x, w, y, m, n, k, kernel });
          else if (op === "dx") {
            encodeMatmulBackward(ctx, pass, { dy: y, w, dx: x, m, n, k, kernel });
          } else encodeMatmulBackward(ctx, pass, { dy: y, x, dw: w, m, n, k, kernel });
        }
        pass.end();
        b.start();
        const t0 = performance.now();
        ctx.device.queue.submit([enc.finish()]);
        await ctx.device.queue.onSubmittedWorkDone();
        const gflops = (flop * reps) / ((performance.now() - t0) * 1e6);
        b.end();
        best.set(key, Math.max(best.get(key) ?? 0, gflops));
      },
    });
  }
}

addEventListener("unload", () => {
  if (best.size === 0) return;
  console.log(`\nbest GFLOP/s on ${ctx.gpu.description}:`);
  console.log("| shape (op m×n×k) | tile64 | new | new kernel | ratio |");
  console.log("|---|---|---|---|---|");
  for (const [op, m, n, k] of shapes) {
    const shape = `${op} ${m}x${n}x${k}`;
    const other = kernelsOf(k)[1];
    const a = best.get(`${shape} tile64`);
    const b = best.get(`${shape} ${other}`);
    if (a === undefined || b === undefined) continue;
    console.log(
      `| ${shape} | ${a.toFixed(3)} | ${b.toFixed(3)} | ${other} | ${(b / a).toFixed(2)}× |`,
    );
  }
  // One line per shape with the kernel the model gets ("auto"), the form bench/perf_table.ts reads.
  for (const [op, m, n, k] of shapes) {
    const [pm, pn, pk] = op === "y" ? [m, n, k] : op === "dx" ? [m, k, n] : [n, k, m];
    const kernel = pickMatmulKernel(pm, pn, pk);
    const g = best.get(`${op} ${m}x${n}x${k} ${kernel}`);
    if (g === undefined) continue;
    console.log(
      `matmul${op === "y" ? "" : ` ${op}`} ${m}x${n}x${k}: ${g.toFixed(2)} GFLOP/s ` +
        `(kernel ${kernel}, best of 3) on ${ctx.gpu.description}`,
    );
  }
});
