// The LM head's d x at a tiny hidden size: dx [tokens, 8] = d logits [tokens, V] · W [V, 8] over
// Qwen3's vocabulary (V = 151,936), 128 tokens (a block of tests/webgpu_real_vocab_test.ts's
// training step): the kernels that could take it, forced. "auto" took the 64×64 tiles on
// llvmpipe (two workgroups of 64×64 outputs of which 8 columns are used) and takes the narrow
// kernel now (kernels/matmul/matmul_narrow.wgsl, one thread per two rows); split-K (the 64×64
// tiles over chunks of k, as a GPU's "auto" takes it) is the other candidate. Two smaller rows
// check the threshold NARROW_MIN_K (1,024): a rank-8 LoRA's du = dy · B over 1,024 tokens at
// k = 1,024 and 4,096. Each sample is one dispatch, timed by the GPU timestamps when the device
// has them (bench/_gpu_timer.ts); the best GFLOP/s (useful, 2·m·n·k) of each is printed at the end.
//   deno task bench bench/lm_head_dx_bench.ts
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { matmulFill, type MatmulKernel, pickMatmulKernel } from "../kernels/matmul/matmul.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { createGpuTimer } from "./_gpu_timer.ts";

const ctx = new GpuContext(await createGpu());
const timer = createGpuTimer(ctx);
console.log(`adapter: ${ctx.gpu.description}`);

// [tokens m, rows of W n (the vocabulary), columns k (the hidden size or LoRA rank)]: dx [m, k].
const shapes: [number, number, number][] = [[128, 151936, 8], [1024, 1024, 8], [1024, 4096, 8]];
const kernels: Exclude<MatmulKernel, "auto" | "matvec" | "tile128" | "smallK">[] = [
  "tile64",
  "splitK",
  "narrow",
];
const best = new Map<string, number>();

for (const [m, n, k] of shapes) {
  const fill = (b: GPUBuffer, len: number, seed: number) => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = Math.sin(i * 12.9898 + seed) * 0.5;
    ctx.device.queue.writeBuffer(b, 0, a);
  };
  const dy = ctx.createBuffer(m * n * 4, "dy");
  const w = ctx.createBuffer(n * k * 4, "w");
  const dx = ctx.createBuffer(m * k * 4, "dx");
  fill(dy, m * n, 1);
  fill(w, n * k, 2);
  const shape = `dx ${m}x${k} over ${n}`;
  const auto = pickMatmulKernel(m, k, n, { fill: matmulFill(ctx), splitK: true });
  for (const kernel of kernels) {
    const key = `${shape} ${kernel}${kernel === auto ? " (auto)" : ""}`;
    Deno.bench({
      name: key,
      group: shape,
      baseline: kernel === "tile64",
      n: 3,
      warmup: 1,
      async fn(b) {
        ctx.device.pushErrorScope("validation");
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass(timer.passDescriptor());
        encodeMatmulBackward(ctx, pass, { dy, w, dx, m, n, k, kernel });
        pass.end();
        b.start();
        const { ms } = await timer.time(enc);
        b.end();
        const error = await ctx.device.popErrorScope();
        if (error) throw new Error(`${key}: ${error.message}`);
        const gflops = (2 * m * n * k) / (ms * 1e6);
        best.set(key, Math.max(best.get(key) ?? 0, gflops));
        console.log(`${key}: ${ms.toFixed(1)} ms (${gflops.toFixed(2)} GFLOP/s)`);
      },
    });
  }
}

addEventListener("unload", () => {
  if (best.size === 0) return;
  console.log(`\nbest GFLOP/s on ${ctx.gpu.description} (${timer.describe()}):`);
  for (const [key, g] of best) console.log(`${key}: ${g.toFixed(3)}`);
});
