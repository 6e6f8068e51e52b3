// Matmul kernel throughput (GFLOP/s), every kernel forced in one run.
// GEMM rows (op y, dx, dw) at square sizes and Qwen3-0.6B-like shapes (hidden 1024, MLP 3072):
// the 64x64-tile kernel (matmul.wgsl) with scalar global reads (the baseline) and with vec4
// reads (its "auto" on these aligned shapes), the 128x128-tile one (matmul_128.wgsl) with scalar
// global reads, with its vec4 reads split into 4 scalar reads of the f32 binding
// ("vec4Split"), and with vec4 reads of array<vec4f> bindings (its "auto" on these aligned
// shapes); a short K (LoRA B in decode) is compared with the one-thread-per-output kernel.
// The backward rows a GPU's "auto" splits along K (LoRA gradients over the tokens: dA, dB, du)
// add split-K (matmul.wgsl over chunks of K, then matmul_split_k.wgsl sums the chunks; forced,
// it splits towards the adapter's fillWorkgroups: 256 on a GPU, 8 on llvmpipe).
// Decode rows (op mv: m = 1..32 rows, the LM head, LoRA A and B): the scalar matvec (matvec.wgsl,
// the baseline), the vec4 one (matvec_vec4.wgsl, its "auto" K split), and the tiles "auto" would
// take without the skinny path; the LM head's 151,936 rows run as row blocks that fit a binding.
// Each iteration records REPS dispatches into one compute pass and waits once; a summary with
// GFLOP/s per shape, kernel and adapter is printed at the end (an unload handler).
//
// Timing: a submit + onSubmittedWorkDone (or mapAsync) round trip costs about 11 ms in Deno 2.9.6
// whatever the work (it polls every 10 ms), which at n = 8192 and 26 TFLOP/s is 13% of an 85 ms
// sample and makes the decode rows (a few µs per dispatch) read 10-20× low. So when the device
// has "timestamp-query" (gpu/device.ts enables it; the H100/H200 and llvmpipe have it) each
// sample is the GPU's own time between the pass's beginning and end timestamps (written by the
// pass's timestampWrites, resolved and read back with the sample), the gaps between its
// dispatches included as in the model's passes; REPS is sized for ~2e12 FLOP (full) per sample.
// Without it (or HALO_BENCH_WALL=1) the sample is the wall time of the round trip and REPS is
// sized for ≥ ~1 s of work at full size (2e13 FLOP, up to 1024 dispatches), so the poll costs ≤ ~1%
// of the big GEMMs; the decode rows then stay an underestimate, said in the summary. A timestamp
// pair that is not increasing or exceeds the wall time falls back to the wall time for that sample
// (bench/_gpu_timer.ts, shared with the other kernel benches).
//
// HALO_MATMUL_VARIANTS=auto (bench/gpu.sh sets it) benches only the kernel "auto" picks for each
// GEMM shape (and the matvecs and tiles on the decode rows), to fit a GPU call's budget.
//   deno task bench bench/matmul_bench.ts          (HALO_BENCH_FULL=1: GPU-sized shapes)
import { createGpu } from "../gpu/device.ts";
import { DEFAULT_FILL_WORKGROUPS, GpuContext } from "../gpu/context.ts";
import {
  encodeMatmul,
  matmulFill,
  type MatmulKernel,
  type MatmulLoads,
  pickMatmulKernel,
} from "../kernels/matmul/matmul.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { encodeMatvec, pickMatvecSplit } from "../kernels/matvec/matvec.ts";
import { benchFull } from "./random_model.ts";
import { createGpuTimer } from "./_gpu_timer.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);
const AUTO_ONLY = Deno.env.get("HALO_MATMUL_VARIANTS") === "auto";
// Each sample's pass is timed by its GPU timestamps when the device has them (see the header).
const timer = createGpuTimer(ctx);
const TIMESTAMPS = timer.timing === "GPU timestamps";
/** The fill the model's "auto" passes on this adapter (as the launchers do). */
const fill = matmulFill(ctx);

type Op = "y" | "dx" | "dw" | "mv";
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
    // A rank-16 LoRA of q_proj (1024 -> 2048) over 4096 tokens: dA [16, 1024], dB [2048, 16]
    // and du = dy·B [4096, 16] (16, 32 and 64 workgroups of 64x64 tiles unsplit).
    ["dw", 4096, 16, 1024],
    ["dw", 4096, 2048, 16],
    ["dx", 4096, 2048, 16],
  ]
  : [
    ["y", 256, 256, 256],
    ["y", 512, 512, 512],
    ["y", 256, 3072, 1024],
    ["y", 256, 1024, 3072],
    ["dx", 256, 3072, 1024],
    ["dw", 256, 3072, 1024],
    ["y", 64, 3072, 1024],
    ["y", 32, 3072, 1024],
    ["y", 1024, 64, 1024],
    ["y", 1, 1024, 16],
    ["y", 8, 3072, 16],
    // LoRA dA and dB of rank 16 over 1024 tokens, 64 features (one tile: a GPU splits them).
    ["dw", 1024, 16, 64],
    ["dw", 1024, 64, 16],
  ];
// Decode steps (Qwen3-0.6B): gate/up, down, a few, 32 and 64 rows, LoRA A (rank 16), the LM head,
// LoRA B of rank 16 and 64.
const decode: [Op, number, number, number][] = [
  ["mv", 1, 3072, 1024],
  ["mv", 1, 1024, 3072],
  ["mv", 4, 2048, 1024],
  ["mv", 16, 3072, 1024],
  ["mv", 32, 1024, 3072],
  ["mv", 32, 3072, 1024],
  // A decode step at batch 64 (up/gate, q_proj): the matvecs against the tiles "auto" takes.
  ["mv", 64, 3072, 1024],
  ["mv", 64, 2048, 1024],
  ["mv", 1, 16, 1024],
  ["mv", 1, 151936, 1024],
  ["mv", 1, 3072, 16],
  ["mv", 1, 3072, 64],
];

/** A benchmarked variant: a matmul kernel and its global reads, or a matvec kernel. */
type Variant =
  | { name: string; kind: "matmul"; kernel: Exclude<MatmulKernel, "auto">; loads?: MatmulLoads }
  | { name: string; kind: "matvec"; kernel: "scalar" | "vec4" };

function variantsOf(op: Op, m: number, n: number, k: number): Variant[] {
  if (!AUTO_ONLY || op === "mv") return allVariantsOf(op, m, n, k);
  return allVariantsOf(op, m, n, k).filter((v) => v.name === autoName(op, m, n, k));
}

/** The product [m, n, k] a launcher sees for an op's shape (as encodeMatmulBackward passes it). */
function productOf(op: Op, m: number, n: number, k: number): [number, number, number] {
  return op === "dx" ? [m, k, n] : op === "dw" ? [n, k, m] : [m, n, k];
}

function allVariantsOf(op: Op, m: number, n: number, k: number): Variant[] {
  if (op === "mv") {
    // What "auto" took before the matvec (one thread per output, or the tiles); past the
    // matvec's rows (64), the tiles "auto" takes on this adapter.
    const tiles = m > 32
      ? pickMatmulKernel(m, n, k, { fill }) as "tile64" | "tile128"
      : k <= 32 && m <= 16
      ? "smallK"
      : m >= 32 && n >= 32
      ? "tile128"
      : "tile64";
    return [
      { name: "matvec scalar", kind: "matvec", kernel: "scalar" },
      {
        name: `matvec vec4 TK ${pickMatvecSplit(m, n, k, { fill: ctx.fillWorkgroups })}`,
        kind: "matvec",
        kernel: "vec4",
      },
      { name: tiles, kind: "matmul", kernel: tiles },
    ];
  }
  // The inner dimension of the product (the tokens for dw).
  const [pm, pn, pk] = productOf(op, m, n, k);
  if (pk <= 32) {
    return [
      { name: "tile64 scalar", kind: "matmul", kernel: "tile64", loads: "scalar" },
      { name: "smallK", kind: "matmul", kernel: "smallK" },
      { name: "matvec", kind: "matmul", kernel: "matvec" },
    ];
  }
  const tiles: Variant[] = [
    { name: "tile64 scalar", kind: "matmul", kernel: "tile64", loads: "scalar" },
    { name: "tile64 vec4", kind: "matmul", kernel: "tile64", loads: "auto" },
    { name: "tile128 scalar", kind: "matmul", kernel: "tile128", loads: "scalar" },
    { name: "tile128 vec4Split", kind: "matmul", kernel: "tile128", loads: "vec4Split" },
    { name: "tile128 vec4", kind: "matmul", kernel: "tile128", loads: "auto" },
  ];
  // Split-K on the backward rows a GPU's "auto" splits.
  const gpuFill = DEFAULT_FILL_WORKGROUPS.hardware;
  if (pickMatmulKernel(pm, pn, pk, { fill: gpuFill, splitK: op !== "y" }) === "splitK") {
    tiles.push({ name: "splitK", kind: "matmul", kernel: "splitK" });
  }
  return tiles;
}

const best = new Map<string, number>();
const samples = new Map<string, number>();

/** The variant name of the kernel "auto" picks for a GEMM shape on this adapter. */
function autoName(op: Op, m: number, n: number, k: number): string {
  const kernel = pickMatmulKernel(...productOf(op, m, n, k), { fill, splitK: op !== "y" });
  return kernel === "smallK" || kernel === "matvec" || kernel === "splitK"
    ? kernel
    : `${kernel} vec4`;
}

/** The line perf_table.ts reads: the "auto" kernel's best GFLOP/s on a GEMM shape, if timed. */
function autoLine(op: Op, m: number, n: number, k: number): string | undefined {
  const name = autoName(op, m, n, k);
  const key = `${op} ${m}x${n}x${k} ${name}`;
  const g = best.get(key);
  if (g === undefined) return undefined;
  const timing = timer.timing;
  return `matmul${op === "y" ? "" : ` ${op}`} ${m}x${n}x${k}: ${g.toFixed(2)} GFLOP/s ` +
    `(kernel ${name}, best of ${samples.get(key)}, ${timing}) on ${ctx.gpu.description}`;
}

const rowsPerBinding = (k: number) =>
  Math.floor(ctx.device.limits.maxStorageBufferBindingSize / (4 * k));

for (const [op, m, n, k] of [...shapes, ...decode]) {
  const flop = 2 * m * n * k;
  // Dispatches per submit for `work` FLOPs each (tiny products: 64, so the time is mostly
  // per-dispatch cost); the tiles on a decode shape count their padded rows.
  // Without timestamps a sample needs ≥ ~1 s of GPU work at full size (see the header).
  const repsFor = (work: number) =>
    TIMESTAMPS
      ? Math.max(1, Math.min(64, Math.round((benchFull() ? 2e12 : 1e9) / work)))
      : Math.max(1, Math.min(1024, Math.round((benchFull() ? 2e13 : 1e9) / work)));
  const x = ctx.createBuffer(m * k * 4, "x");
  // Weights in row blocks that each fit one binding (the LM head), as GpuMatrix chunks.
  const blocks: [GPUBuffer, number, number][] = [];
  for (let r0 = 0; r0 < n; r0 += rowsPerBinding(k)) {
    const rows = Math.min(rowsPerBinding(k), n - r0);
    blocks.push([ctx.createBuffer(rows * k * 4, "w"), r0, rows]);
  }
  const w = blocks[0][0];
  const y = ctx.createBuffer(m * n * 4, "y");
  const shape = `${op} ${m}x${n}x${k}`;
  const variants = variantsOf(op, m, n, k);
  for (const v of variants) {
    const key = `${shape} ${v.name}`;
    const padded = op === "mv" && v.kind === "matmul" && v.kernel !== "smallK";
    const reps = repsFor(padded ? 2 * Math.ceil(m / 64) * 64 * n * k : flop);
    Deno.bench({
      name: `matmul ${key} ×${reps}`,
      group: shape,
      baseline: v === variants[0],
      n: 3,
      warmup: 1,
      async fn(b) {
        ctx.device.pushErrorScope("validation");
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass(timer.passDescriptor());
        for (let r = 0; r < reps; r++) {
          if (op === "mv") {
            for (const [wb, yCol, rows] of blocks) {
              const a = { x, w: wb, y, m, n: rows, k, ldy: n, yCol };
              if (v.kind === "matvec") encodeMatvec(ctx, pass, { ...a, kernel: v.kernel });
              else encodeMatmul(ctx, pass, { ...a, kernel: v.kernel });
            }
          } else if (v.kind === "matmul") {
            const { kernel, loads } = v;
            if (op === "y") encodeMatmul(ctx, pass, { x, w, y, m, n, k, kernel, loads });
            else if (op === "dx") {
              encodeMatmulBackward(ctx, pass, { dy: y, w, dx: x, m, n, k, kernel, loads });
            } else encodeMatmulBackward(ctx, pass, { dy: y, x, dw: w, m, n, k, kernel, loads });
          }
        }
        pass.end();
        b.start();
        const { ms } = await timer.time(enc);
        b.end();
        const gflops = (flop * reps) / (ms * 1e6);
        const error = await ctx.device.popErrorScope();
        if (error) throw new Error(`${key}: ${error.message}`);
        best.set(key, Math.max(best.get(key) ?? 0, gflops));
        samples.set(key, (samples.get(key) ?? 0) + 1);
        // The "auto" kernel's best so far after each sample too (perf_table.ts takes the best),
        // in case a time limit cuts the run before the summary at unload.
        if (op !== "mv" && v.name === autoName(op, m, n, k)) console.log(autoLine(op, m, n, k));
      },
    });
  }
}

addEventListener("unload", () => {
  if (best.size === 0) return;
  const timing = timer.describe() + (TIMESTAMPS ? "" : ": decode rows read low");
  console.log(
    `\nbest GFLOP/s on ${ctx.gpu.description} (${timing}; ratio: last kernel / first):`,
  );
  for (const group of [shapes, decode]) {
    const names = allVariantsOf(group[0][0], 64, 64, 64).map((v) => v.name.replace(/ TK.*/, ""));
    if (group === shapes) names.push("splitK");
    console.log(`| shape (op m×n×k) | ${names.join(" | ")} | ratio |`);
    console.log(`|---|${names.map(() => "---|").join("")}---|`);
    for (const [op, m, n, k] of group) {
      const shape = `${op} ${m}x${n}x${k}`;
      const cells = names.map(() => "–");
      const got: number[] = [];
      for (const v of variantsOf(op, m, n, k)) {
        const g = best.get(`${shape} ${v.name}`);
        if (g === undefined) continue;
        let i = names.indexOf(v.name.replace(/ TK.*/, ""));
        if (i < 0) i = cells.findIndex((c, j) => j > 0 && c === "–");
        cells[i] = g.toFixed(3) + (v.name === names[i] ? "" : ` (${v.name})`);
        got.push(g);
      }
      if (got.length === 0) continue;
      // Decode: the vec4 matvec over the scalar one; GEMM: the last kernel over the scalar tile64.
      const ratio = op === "mv" ? got[1] / got[0] : got[got.length - 1] / got[0];
      const r = got.length < 2 ? "–" : `${ratio.toFixed(2)}×`;
      console.log(`| ${shape} | ${cells.join(" | ")} | ${r} |`);
    }
  }
  // One line per shape with the kernel the model gets ("auto"), the form bench/perf_table.ts reads.
  for (const [op, m, n, k] of shapes) {
    const line = autoLine(op, m, n, k);
    if (line) console.log(line);
  }
});
