// Split-K (matmul.wgsl over chunks of K into the context's scratch, summed by
// matmul_split_k.wgsl), forced through `kernel: "splitK"` on the software adapter, against the
// float64 references (matmul_ref.ts, matmul_backward_ref.ts): the forward (no transpose), dx
// (W_T) and dw (X_T + W_T) of the backward, on shapes off the 64x64 tile and with K not a multiple
// of splits x 16 (a short last chunk), strided operands and outputs with column offsets,
// accumulate true and false, alpha != 1, vec4 and scalar reads; outputs poisoned (NaN where
// written over, random values where they must stay: compared exactly), and the scratch poisoned
// with NaN before the product. Contexts with fillWorkgroups 8 (the software default) and 64 give
// 2 to 32 splits. Tolerance: f32 sums of K products in chunks, relative error ~ sqrt(K)·2^-24;
// 1e-5 as the other tile kernels (K ≤ 1000 here). Also the pick rule (pure, no GPU) and the
// scratch's memory accounting, auto on a context seen as a GPU, and f16 weights.
import assert from "node:assert/strict";
import { assertClose, noGpu, randomArray, recordPass, testContext } from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { GpuContext } from "../../gpu/context.ts";
import { encodeMatmul, pickMatmulKernel, pickSplitK } from "./matmul.ts";
import { encodeMatmulBackward } from "./matmul_backward.ts";
import { matmulBackwardRef } from "./matmul_backward_ref.ts";
import { matmulRef } from "./matmul_ref.ts";
import { checkF16Weights } from "./_test_cases.ts";

const TOL = 1e-5;
const SCRATCH = "matmul split-K";

Deno.test("pickMatmulKernel() splits k of the backward's few-tile, long-k products on a GPU", () => {
  const gpu = { fill: 256, splitK: true };
  // A rank-16 LoRA of a 1024 -> 2048 projection over 4096 tokens: dA [16, 1024] (16 tiles of
  // 64x64), dB [2048, 16] (32 tiles).
  assert.equal(pickMatmulKernel(16, 1024, 4096, gpu), "splitK");
  assert.deepEqual(pickSplitK(16, 1024, 4096, gpu), { splits: 16, chunk: 256 });
  assert.equal(pickMatmulKernel(2048, 16, 4096, gpu), "splitK");
  assert.deepEqual(pickSplitK(2048, 16, 4096, gpu), { splits: 8, chunk: 512 });
  // The LM head's dx for 64 rows against a 151,936-row vocabulary block: 16 tiles.
  assert.equal(pickMatmulKernel(64, 1024, 151936, gpu), "splitK");
  assert.deepEqual(pickSplitK(64, 1024, 151936, gpu), { splits: 16, chunk: 9504 });
  // k = 1024 is the shortest split: 8 tiles want 32 splits, 4 chunks of 256 at most; 1023 is
  // not split.
  assert.deepEqual(pickSplitK(16, 512, 1024, gpu), { splits: 4, chunk: 256 });
  assert.equal(pickMatmulKernel(16, 512, 1024, gpu), "splitK");
  assert.equal(pickMatmulKernel(16, 512, 1023, gpu), "tile64");
  assert.equal(pickMatmulKernel(16, 512, 1020, gpu), "matvec");
  // 127 tiles (below half of 256) split in 3; 128 tiles fill half the GPU: not split.
  assert.equal(pickMatmulKernel(127 * 64, 64, 4096, gpu), "splitK");
  assert.deepEqual(pickSplitK(127 * 64, 64, 4096, gpu), { splits: 3, chunk: 1376 });
  assert.equal(pickMatmulKernel(128 * 64, 64, 4096, gpu), "tile64");
  assert.equal(pickMatmulKernel(1024, 1024, 4096, gpu), "tile64");
  // One tile with a long k: at most 64 splits.
  assert.deepEqual(pickSplitK(16, 16, 1 << 20, gpu), { splits: 64, chunk: 16384 });
  // Scratch bound: splits x m x n <= 2^22.
  assert.equal(pickSplitK(2000, 1000, 1 << 16, { fill: 4096 }).splits, 2);
  // Without fill (llvmpipe) or for a forward product, never.
  for (const [m, n, k] of [[16, 1024, 4096], [2048, 16, 4096], [64, 1024, 151936], [1, 1, 8192]]) {
    assert.notEqual(pickMatmulKernel(m, n, k, { splitK: true }), "splitK");
    assert.equal(pickMatmulKernel(m, n, k, { splitK: true }), pickMatmulKernel(m, n, k));
    assert.notEqual(pickMatmulKernel(m, n, k, { fill: 256 }), "splitK");
  }
});

/** A product: forward `y = x·wᵀ`, or the backward's dx (W_T) or dw (X_T + W_T). */
interface Case {
  op: "y" | "dx" | "dw";
  m: number;
  n: number;
  k: number;
  /** Pad of the strided rows (x / dy input and y / dx output); 0: contiguous. */
  pad: number;
  /** First output column (y / dx) and column of dy. */
  col: number;
  accumulate: boolean;
  alpha: number;
}

// Runs `c` with kernel "splitK" on `ctx`, the scratch first filled with NaN; returns the
// relative error of the written region and checks the rest exactly.
async function run(ctx: GpuContext, c: Case, seed: number): Promise<number> {
  const { m, n, k, pad, col, accumulate, alpha } = c;
  // The forward's x rows (or the backward's dy rows) and the output rows, both strided.
  const inCols = c.op === "y" ? k : n;
  // encodeMatmul's x has no column offset; the backward's dy is read from column `col`.
  const inCol = c.op === "y" ? 0 : col;
  const ldIn = inCols + inCol + pad;
  const outRows = c.op === "dw" ? n : m;
  const outCols = c.op === "dw" ? k : c.op === "y" ? n : k;
  const outCol = c.op === "dw" ? 0 : col;
  const ldOut = c.op === "dw" ? k : outCols + col + pad;
  const input = randomArray(m * ldIn, seed);
  const w = randomArray(n * k, seed + 1);
  // The backward's x (for dw), rows of stride k + pad.
  const ldx = k + pad;
  const xs = randomArray(m * ldx, seed + 2);
  const out0 = randomArray(outRows * ldOut, seed + 3);
  const written = (i: number) => (i % ldOut) >= outCol && (i % ldOut) < outCol + outCols;
  // Elements the kernel overwrites start as NaN: a missed one fails.
  const start = out0.map((v, i) => (written(i) && !accumulate ? NaN : v));
  const scratch = ctx.scratch(SCRATCH, 1 << 20);
  ctx.device.queue.writeBuffer(scratch, 0, new Float32Array(scratch.size / 4).fill(NaN));
  const bufIn = ctx.upload(input, "in");
  const bufW = ctx.upload(w, "w");
  const bufX = ctx.upload(xs, "x");
  const out = ctx.upload(start, "out");
  const enc = recordPass(ctx, (pass) => {
    if (c.op === "y") {
      encodeMatmul(ctx, pass, {
        x: bufIn,
        w: bufW,
        y: out,
        m,
        n,
        k,
        ldx: ldIn,
        ldy: ldOut,
        yCol: col,
        accumulate,
        alpha,
        kernel: "splitK",
      });
    } else {
      const common = { dy: bufIn, m, n, k, ldy: ldIn, yCol: col, alpha, kernel: "splitK" as const };
      if (c.op === "dx") {
        encodeMatmulBackward(ctx, pass, {
          ...common,
          w: bufW,
          dx: out,
          lddx: ldOut,
          dxCol: col,
          accumulateDx: accumulate,
        });
      } else {
        encodeMatmulBackward(ctx, pass, {
          ...common,
          x: bufX,
          ldx,
          dw: out,
          accumulateDw: accumulate,
        });
      }
    }
  });
  const [bytes] = await readback(ctx, [{ buffer: out, offset: 0, size: out0.length * 4 }], enc);
  const got = new Float32Array(bytes);
  assert.equal(ctx.scratch(SCRATCH, 4), scratch, "the product did not reuse the scratch buffer");
  for (const b of [bufIn, bufW, bufX, out]) ctx.release(b);
  // Dense operands for the references.
  const dense = (a: Float32Array, rows: number, cols: number, ld: number, c0: number) => {
    const d = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) d[i * cols + j] = a[i * ld + c0 + j];
    }
    return d;
  };
  let prod: Float64Array;
  if (c.op === "y") prod = matmulRef(dense(input, m, k, ldIn, 0), w, [m, n, k]);
  else {
    const ref = matmulBackwardRef(dense(input, m, n, ldIn, col), dense(xs, m, k, ldx, 0), w, [
      m,
      n,
      k,
    ]);
    prod = c.op === "dx" ? ref.dx : ref.dw;
  }
  const want: number[] = [];
  const have: number[] = [];
  for (let i = 0; i < out0.length; i++) {
    if (!written(i)) {
      assert.ok(Object.is(got[i], out0[i]), `${c.op} element ${i} outside the output changed`);
      continue;
    }
    const r = Math.floor(i / ldOut);
    const j = (i % ldOut) - outCol;
    want.push((accumulate ? out0[i] : 0) + alpha * prod[r * outCols + j]);
    have.push(got[i]);
  }
  assert.equal(want.length, outRows * outCols);
  return assertClose(have, want, TOL, `splitK ${JSON.stringify(c)}`);
}

Deno.test({
  name: "encodeMatmul/encodeMatmulBackward with splitK match the f64 references in every variant",
  ignore: noGpu,
  async fn() {
    const shared = (await testContext())!;
    for (const fill of [8, 64]) {
      const ctx = new GpuContext(shared.gpu, { fillWorkgroups: fill });
      let seed = 10;
      const cases: Case[] = [];
      // [m, n, k]: k / splits not a multiple of 16 (a short last chunk), sides off the tiles.
      for (const [m, n, k] of [[37, 45, 1000], [70, 3, 333], [1, 130, 64], [130, 66, 97]]) {
        for (const op of ["y", "dx", "dw"] as const) {
          for (const accumulate of [false, true]) {
            // Aligned strides (vec4 reads where the shape allows) and unaligned ones (scalar).
            for (const [pad, col] of [[0, 0], [3, 5], [4, 4]]) {
              cases.push({ op, m, n, k, pad, col, accumulate, alpha: accumulate ? 0.75 : 1.5 });
            }
          }
        }
      }
      let worst = 0;
      for (const c of cases) worst = Math.max(worst, await run(ctx, c, seed++));
      const splits = [[37, 45, 1000], [70, 3, 333], [130, 66, 97]].map(([m, n, k]) =>
        pickSplitK(m, n, k, { fill, minChunk: 16, minSplits: 2 }).splits
      );
      console.log(
        `splitK fill ${fill} (forward splits ${splits}): ${cases.length} products, worst ` +
          `relative error ${worst.toExponential(2)}`,
      );
      ctx.releaseScratch();
    }
  },
});

Deno.test({
  name: "splitK's scratch is counted in allocatedBytes, reused across products, freed by " +
    "releaseScratch()",
  ignore: noGpu,
  async fn() {
    const shared = (await testContext())!;
    const ctx = new GpuContext(shared.gpu, { fillWorkgroups: 16 });
    const [m, n, k] = [20, 30, 400];
    const x = ctx.upload(randomArray(m * k, 1), "x");
    const w = ctx.upload(randomArray(n * k, 2), "w");
    const y = ctx.createBuffer(m * n * 4, "y");
    const base = ctx.allocatedBytes;
    const record = () =>
      ctx.device.queue.submit([
        recordPass(ctx, (pass) => {
          encodeMatmul(ctx, pass, { x, w, y, m, n, k, kernel: "splitK" });
          encodeMatmul(ctx, pass, { x, w, y, m, n, k, kernel: "splitK", accumulate: true });
        }).finish(),
      ]);
    record();
    // 16 splits of 25 -> chunks of 32: 13 splits x 20 x 30 floats, rounded up to 32 KiB.
    assert.equal(pickSplitK(m, n, k, { fill: 16, minChunk: 16, minSplits: 2 }).splits, 13);
    assert.equal(ctx.allocatedBytes - base, 32768);
    record();
    assert.equal(ctx.allocatedBytes - base, 32768);
    await ctx.device.queue.onSubmittedWorkDone();
    ctx.releaseScratch();
    assert.equal(ctx.allocatedBytes, base);
    for (const b of [x, w, y]) ctx.release(b);
    assert.equal(ctx.allocatedBytes, 0);
  },
});

Deno.test({
  name: "auto splits k only for the backward's products, on a hardware adapter's context",
  ignore: noGpu,
  async fn() {
    const base = (await testContext())!;
    // A LoRA dA-like gradient [16, 64] over 1024 tokens: one 64x64 tile, so a GPU (fill 256)
    // splits it in 4 chunks of 256; its forward u = x·Aᵀ [1024, 16] over 64 is never split.
    const [m, n, k] = [1024, 16, 64];
    assert.deepEqual(pickSplitK(n, k, m, { fill: 256 }), { splits: 4, chunk: 256 });
    const dy = randomArray(m * n, 5);
    const x = randomArray(m * k, 6);
    const want = matmulBackwardRef(dy, x, new Float32Array(n * k), [m, n, k]).dw;
    for (const isFallbackAdapter of [false, true]) {
      const ctx = new GpuContext({ ...base.gpu, isFallbackAdapter });
      const bufs = [ctx.upload(dy, "dy"), ctx.upload(x, "x"), ctx.createBuffer(n * k * 4, "w")];
      const dw = ctx.upload(new Float32Array(n * k).fill(NaN), "dw");
      const u = ctx.createBuffer(m * n * 4, "u");
      const before = ctx.allocatedBytes;
      // The forward first: no scratch on either context.
      const forward = recordPass(
        ctx,
        (pass) => encodeMatmul(ctx, pass, { x: bufs[1], w: bufs[2], y: u, m, n, k }),
      );
      ctx.device.queue.submit([forward.finish()]);
      assert.equal(ctx.allocatedBytes, before, "the forward product made a split-K scratch");
      const enc = recordPass(
        ctx,
        (pass) => encodeMatmulBackward(ctx, pass, { dy: bufs[0], x: bufs[1], dw, m, n, k }),
      );
      const [bytes] = await readback(ctx, [{ buffer: dw, offset: 0, size: n * k * 4 }], enc);
      // 4 splits x 16 x 64 floats = 16 KiB of scratch on the GPU's context, none on llvmpipe's.
      assert.equal(ctx.allocatedBytes - before, isFallbackAdapter ? 0 : 16384);
      const err = assertClose(new Float32Array(bytes), want, TOL, `auto dw ${isFallbackAdapter}`);
      console.log(
        `auto dw ${n}x${k} over ${m}, fallback ${isFallbackAdapter}: rel err ${
          err.toExponential(2)
        }`,
      );
      ctx.releaseScratch();
      for (const b of [...bufs, dw, u]) ctx.release(b);
      assert.equal(ctx.allocatedBytes, 0);
    }
  },
});

Deno.test({
  name: "splitK reads f16 weights (forward and dx) as float64 of the f16 values",
  ignore: noGpu,
  fn: () => checkF16Weights("splitK", TOL),
});
