// Copyright 2025 the halo authors. MIT license.
/**
 * Checks shared by the matmul kernels' tests (matmul_tiles_test.ts, matmul_small_k_test.ts,
 * matmul_narrow_test.ts, matmul_split_k_test.ts):
 * one kernel, forced through `kernel`, against the float64 references.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assertClose,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { uploadMatrix } from "../../gpu/matrix.ts";
import { encodeMatmul, type MatmulKernel, type MatmulLoads } from "./matmul.ts";
import { encodeMatmulBackward } from "./matmul_backward.ts";
import { matmulBackwardRef, type MatmulBackwardRefResult } from "./matmul_backward_ref.ts";
import { matmulRef } from "./matmul_ref.ts";

/**
 * `y = x · wᵀ` with the kernel for each shape, `y` poisoned first, against the float64 product
 * (of the f16-rounded weights with `wF16`); logs the errors. With `wF16` and no `shader-f16` it
 * says so and returns (the refusal is tested in kernels/_f16_test.ts).
 *
 * @param kernel The kernel to force.
 * @param shapes `[m, n, k]` each.
 * @param tol Relative tolerance.
 * @param options `wF16`: upload w as f16 and read it so.
 */
export async function checkForward(
  kernel: MatmulKernel,
  shapes: readonly (readonly [number, number, number])[],
  tol: number,
  options: { wF16?: boolean } = {},
): Promise<void> {
  const ctx = (await testContext())!;
  const wF16 = options.wF16 ?? false;
  if (wF16 && !ctx.gpu.features.has("shader-f16")) {
    console.log("the adapter has no shader-f16: f16 variant not run (refusal tested in _f16)");
    return;
  }
  for (const [m, n, k] of shapes) {
    const x = randomArray(m * k, m * 31 + k);
    const w = randomArray(n * k, n * 17 + k);
    // y holds 2 rows past m, poisoned like the rest: they must stay NaN (a view into a taller
    // matrix must not be written past its rows).
    const y = poisoned(ctx, (m + 2) * n, "y");
    const xb = ctx.upload(x, "x");
    const wb = wF16
      ? uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype: "f16" }).chunks[0]
        .buffer
      : ctx.upload(w, "w");
    const enc = recordPass(
      ctx,
      (pass) => encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k, wF16, kernel }),
    );
    const all = await readFloats(ctx, y, (m + 2) * n, enc);
    const got = all.subarray(0, m * n);
    const wRef = wF16 ? Float32Array.from(Float16Array.from(w)) : w;
    const what = `${kernel}${wF16 ? " f16" : ""} ${m}x${n}x${k}`;
    const err = assertClose(got, matmulRef(x, wRef, [m, n, k]), tol, what);
    const past = all.subarray(m * n).findIndex((v) => !Number.isNaN(v));
    if (past >= 0) throw new Error(`${what}: y written past row m (element ${m * n + past})`);
    console.log(`${what}: rel err ${err.toExponential(2)}`);
    for (const b of [xb, wb, y]) ctx.release(b);
  }
}

/**
 * Asserts that recording `y = x · wᵀ` of `[m, n, k]` with the kernel throws `message` (operands
 * one buffer large enough for each).
 *
 * @param kernel The kernel to force.
 * @param shape `[m, n, k]`.
 * @param message The expected error's message.
 */
export async function checkRefuses(
  kernel: MatmulKernel,
  shape: readonly [number, number, number],
  message: RegExp,
): Promise<void> {
  const ctx = (await testContext())!;
  const [m, n, k] = shape;
  const big = ctx.createBuffer(4 * Math.max(m * k, n * k, m * n), "big");
  const pass = ctx.device.createCommandEncoder().beginComputePass();
  try {
    assert.throws(
      () => encodeMatmul(ctx, pass, { x: big, w: big, y: big, m, n, k, kernel }),
      message,
    );
  } finally {
    pass.end();
    ctx.release(big);
  }
}

/**
 * `y[:, yCol .. yCol + n]` (rows of `ldy`) += 0.5 · x (`m × k`, rows of `ldx`) · wᵀ with the
 * kernel, against the float64 product added to the same starting values.
 *
 * @param kernel The kernel to force.
 * @param shape `[m, n, k, ldx, ldy, yCol]`.
 * @param tol Relative tolerance.
 * @param loads The global reads of the 128×128-tile kernel; default "auto".
 */
export async function checkAccumulate(
  kernel: MatmulKernel,
  shape: readonly [number, number, number, number, number, number],
  tol: number,
  loads?: MatmulLoads,
): Promise<void> {
  const ctx = (await testContext())!;
  const [m, n, k, ldx, ldy, yCol] = shape;
  // x and y hold 2 rows past m (as views into larger matrices do): those rows of y must keep
  // their values, however the kernel covers the last rows (x's rows there are not zero).
  const x = randomArray((m + 2) * ldx, 1);
  const w = randomArray(n * k, 2);
  const y0 = randomArray((m + 2) * ldy, 3);
  const y = ctx.upload(y0, "y");
  const enc = recordPass(ctx, (pass) =>
    encodeMatmul(ctx, pass, {
      x: ctx.upload(x, "x"),
      w: ctx.upload(w, "w"),
      y,
      m,
      n,
      k,
      ldx,
      ldy,
      yCol,
      accumulate: true,
      alpha: 0.5,
      kernel,
      loads,
    }));
  const got = await readFloats(ctx, y, (m + 2) * ldy, enc);
  const xs = new Float64Array(m * k);
  for (let i = 0; i < m; i++) for (let t = 0; t < k; t++) xs[i * k + t] = x[i * ldx + t];
  const want = Float64Array.from(y0);
  const prod = matmulRef(xs, w, [m, n, k], { alpha: 0.5 });
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) want[i * ldy + yCol + j] += prod[i * n + j];
  }
  assertClose(got, want, tol, `${kernel} ${loads ?? "auto"} accumulate ${shape}`);
}

// The inputs and float64 gradients of each backward shape, made once per test file: a shape's
// inputs depend on the shape alone, and the callers check it under several kernels and loads.
const backwardCases = new Map<string, {
  dy: Float32Array;
  x: Float32Array;
  w: Float32Array;
  want: MatmulBackwardRefResult;
}>();

function backwardCase(m: number, n: number, k: number) {
  const key = `${m}x${n}x${k}`;
  let c = backwardCases.get(key);
  if (!c) {
    const dy = randomArray(m * n, m * 13 + n);
    const x = randomArray(m * k, m * 31 + k);
    const w = randomArray(n * k, n * 17 + k);
    c = { dy, x, w, want: matmulBackwardRef(dy, x, w, [m, n, k]) };
    backwardCases.set(key, c);
  }
  return c;
}

/**
 * dx and dw of `y = x · wᵀ` with the kernel (its transposed variants), outputs poisoned, against
 * `matmulBackwardRef` for each shape; logs the errors.
 *
 * @param kernel The kernel to force.
 * @param shapes `[m, n, k]` each.
 * @param tol Relative tolerance.
 * @param loads The global reads of the 128×128-tile kernel; default "auto".
 */
export async function checkBackward(
  kernel: MatmulKernel,
  shapes: readonly (readonly [number, number, number])[],
  tol: number,
  loads?: MatmulLoads,
): Promise<void> {
  const ctx = (await testContext())!;
  for (const [m, n, k] of shapes) {
    const { dy, x, w, want } = backwardCase(m, n, k);
    const dx = poisoned(ctx, m * k, "dx");
    const dw = poisoned(ctx, n * k, "dw");
    const bufs = [ctx.upload(dy, "dy"), ctx.upload(x, "x"), ctx.upload(w, "w")];
    const enc = recordPass(ctx, (pass) =>
      encodeMatmulBackward(ctx, pass, {
        dy: bufs[0],
        x: bufs[1],
        w: bufs[2],
        dx,
        dw,
        m,
        n,
        k,
        kernel,
        loads,
      }));
    const [gx, gw] = await readback(ctx, [
      { buffer: dx, offset: 0, size: m * k * 4 },
      { buffer: dw, offset: 0, size: n * k * 4 },
    ], enc);
    const ex = assertClose(new Float32Array(gx), want.dx, tol, `${kernel} dx ${m}x${n}x${k}`);
    const ew = assertClose(new Float32Array(gw), want.dw, tol, `${kernel} dw ${m}x${n}x${k}`);
    console.log(
      `${kernel} ${loads ?? "auto"} backward ${m}x${n}x${k}: dx ${ex.toExponential(2)}, dw ${
        ew.toExponential(2)
      }`,
    );
    for (const b of [...bufs, dx, dw]) ctx.release(b);
  }
}

/**
 * The forward product and `dx` of the kernel with f16 weights, against the float64 products of
 * the f16-rounded weights, at `k = 45` (scalar reads) and `132×136×44` (w, x and dy read as
 * vec4s, vec4<f16> for w); outputs poisoned first. Without `shader-f16` it says so and returns
 * (the refusal is tested in kernels/_f16_test.ts).
 *
 * @param kernel The kernel to force.
 * @param tol Relative tolerance.
 */
export async function checkF16Weights(kernel: MatmulKernel, tol: number): Promise<void> {
  const ctx = (await testContext())!;
  if (!ctx.gpu.features.has("shader-f16")) {
    console.log("the adapter has no shader-f16: f16 variant not run (refusal tested in _f16)");
    return;
  }
  for (const [m, n, k] of [[130, 133, 45], [132, 136, 44]]) {
    const x = randomArray(m * k, 21);
    const w = randomArray(n * k, 22);
    const dy = randomArray(m * n, 23);
    const w16 = Float32Array.from(Float16Array.from(w));
    const mat = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype: "f16" });
    const wb = mat.chunks[0].buffer;
    // y holds 2 rows past m, poisoned like the rest: they must stay NaN (a view into a taller
    // matrix must not be written past its rows).
    const y = poisoned(ctx, (m + 2) * n, "y");
    const dx = poisoned(ctx, m * k, "dx");
    const xb = ctx.upload(x, "x");
    const dyb = ctx.upload(dy, "dy");
    const enc = recordPass(ctx, (pass) => {
      encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k, wF16: true, kernel });
      encodeMatmulBackward(ctx, pass, { dy: dyb, w: wb, dx, m, n, k, wF16: true, kernel });
    });
    const [gy, gx] = await readback(ctx, [
      { buffer: y, offset: 0, size: m * n * 4 },
      { buffer: dx, offset: 0, size: m * k * 4 },
    ], enc);
    const ey = assertClose(
      new Float32Array(gy),
      matmulRef(x, w16, [m, n, k]),
      tol,
      `${kernel} f16 y`,
    );
    const ex = assertClose(
      new Float32Array(gx),
      matmulBackwardRef(dy, x, w16, [m, n, k]).dx,
      tol,
      `${kernel} f16 dx`,
    );
    console.log(
      `${kernel} f16 ${m}x${n}x${k}: y ${ey.toExponential(2)}, dx ${ex.toExponential(2)}`,
    );
    for (const b of [wb, y, dx, xb, dyb]) ctx.release(b);
  }
}
