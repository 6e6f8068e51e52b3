// The vec4 matvec's input prologues (matvec_prologue.wgsl): RMSNorm and SwiGLU computed on load,
// against the f64 references composed (rms_norm_ref / swiglu_ref, then matmul_ref), on shapes off
// the blocks (1..32 rows, odd column counts, k a multiple of 4) with every K split, poisoned y and
// x; against the separate dispatches (rms_norm or swiglu, then the matvec) bit for bit; f16
// weights; a grid sliced at the device limit; `write: false`; and the refusals.
import assert from "node:assert/strict";
import { uploadMatrix } from "../../gpu/matrix.ts";
import { readback } from "../../gpu/readback.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import type { GpuContext } from "../../gpu/context.ts";
import { matmulRef } from "../matmul/matmul_ref.ts";
import { encodeRmsNorm } from "../rms_norm/rms_norm.ts";
import { rmsNormRef } from "../rms_norm/rms_norm_ref.ts";
import { encodeSwiglu } from "../swiglu/swiglu.ts";
import { swigluRef } from "../swiglu/swiglu_ref.ts";
import { encodeMatvec, type MatvecPrologue } from "./matvec.ts";

// f32 sums of up to 1000 products (and an f32 rsqrt / exp): 1e-5 relative is ample.
const TOL = 1e-5;
const EPS = 1e-6;
const SHAPES = [[1, 1, 4], [1, 7, 100], [3, 131, 64], [5, 33, 68], [8, 259, 256], [13, 9, 1000], [
  32,
  65,
  128,
], [2, 601, 1024]];

type Kind = MatvecPrologue["kind"];

/** Inputs of one case: the prologue's operands (raw rows and norm weight, or gate and up). */
interface Case {
  a: Float32Array;
  b: Float32Array;
  /** x as the f64 reference computes it. */
  x: Float64Array;
}

function inputs(kind: Kind, m: number, k: number): Case {
  if (kind === "rmsnorm") {
    const a = randomArray(m * k, m + 3 * k, -3, 3);
    const b = randomArray(k, k + 1, 0.5, 1.5);
    return { a, b, x: rmsNormRef(a, b, { d: k, eps: EPS }) };
  }
  const a = randomArray(m * k, m + 3 * k, -4, 4);
  const b = randomArray(m * k, m + 5 * k, -2, 2);
  return { a, b, x: swigluRef(a, b) };
}

function prologueOf(kind: Kind, a: GPUBuffer, b: GPUBuffer, write?: boolean): MatvecPrologue {
  return kind === "rmsnorm"
    ? { kind, h: a, g: b, eps: EPS, write }
    : { kind, gate: a, up: b, write };
}

/** The separate dispatches: rms_norm or swiglu into `x`, then the matvec reading it. */
function separate(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  o: { kind: Kind; a: GPUBuffer; b: GPUBuffer; x: GPUBuffer; w: GPUBuffer; y: GPUBuffer },
  m: number,
  n: number,
  k: number,
  splitK?: number,
): void {
  if (o.kind === "rmsnorm") {
    encodeRmsNorm(ctx, pass, { x: o.a, w: o.b, y: o.x, rows: m, d: k, eps: EPS });
  } else encodeSwiglu(ctx, pass, { gate: o.a, up: o.b, out: o.x, n: m * k });
  encodeMatvec(ctx, pass, { x: o.x, w: o.w, y: o.y, m, n, k, splitK });
}

for (const kind of ["rmsnorm", "swiglu"] as Kind[]) {
  Deno.test({
    name: `encodeMatvec() "${kind}" prologue matches the f64 references and the separate ` +
      `dispatches bit for bit, with every K split`,
    ignore: noGpu,
    async fn() {
      const ctx = (await testContext())!;
      for (const [m, n, k] of SHAPES) {
        const c = inputs(kind, m, k);
        const w = randomArray(n * k, n + k);
        const [a, b, wb] = [ctx.upload(c.a, "a"), ctx.upload(c.b, "b"), ctx.upload(w, "w")];
        const want = matmulRef(c.x, w, [m, n, k]);
        let [worstY, worstX] = [0, 0];
        for (const splitK of [undefined, 1, 2, 8, 64]) {
          const [x, y] = [poisoned(ctx, m * k, "x"), poisoned(ctx, m * n, "y")];
          const [x0, y0] = [poisoned(ctx, m * k, "x0"), poisoned(ctx, m * n, "y0")];
          const prologue = prologueOf(kind, a, b);
          const enc = recordPass(ctx, (pass) => {
            encodeMatvec(ctx, pass, { x, w: wb, y, m, n, k, splitK, prologue });
            separate(ctx, pass, { kind, a, b, x: x0, w: wb, y: y0 }, m, n, k, splitK);
          });
          const tag = `${kind} ${m}x${n}x${k} TK ${splitK ?? "auto"}`;
          // One submit and one mapping for the four outputs.
          const [gotY, gotX, sepX, sepY] = (await readback(ctx, [
            { buffer: y, offset: 0, size: m * n * 4 },
            { buffer: x, offset: 0, size: m * k * 4 },
            { buffer: x0, offset: 0, size: m * k * 4 },
            { buffer: y0, offset: 0, size: m * n * 4 },
          ], enc)).map((bytes) => new Float32Array(bytes));
          worstY = Math.max(worstY, assertClose(gotY, want, TOL, `${tag} y`));
          worstX = Math.max(worstX, assertClose(gotX, c.x, TOL, `${tag} x`));
          assert.deepEqual(gotX, sepX, `${tag}: x differs`);
          assert.deepEqual(gotY, sepY, `${tag}: y differs`);
          for (const buf of [x, y, x0, y0]) ctx.release(buf);
        }
        console.log(
          `${kind} ${m}x${n}x${k}: worst rel err y ${worstY.toExponential(2)}, ` +
            `x ${worstX.toExponential(2)}; bit-identical to the separate dispatches`,
        );
        for (const buf of [a, b, wb]) ctx.release(buf);
      }
    },
  });
}

Deno.test({
  name: "encodeMatvec() prologues with f16 weights, accumulate, and write: false",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const f16 = ctx.gpu.features.has("shader-f16");
    if (!f16) console.log("the adapter has no shader-f16: f16 weights not run");
    const [m, n, k] = [5, 71, 132];
    const w = randomArray(n * k, 9);
    const w16 = Float32Array.from(Float16Array.from(w));
    const y0 = randomArray(m * n, 10);
    for (const kind of ["rmsnorm", "swiglu"] as Kind[]) {
      const c = inputs(kind, m, k);
      const [a, b] = [ctx.upload(c.a, "a"), ctx.upload(c.b, "b")];
      for (const dtype of f16 ? ["f32", "f16"] as const : ["f32"] as const) {
        const mat = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype });
        const prod = matmulRef(c.x, dtype === "f16" ? w16 : w, [m, n, k]);
        for (const write of [true, false]) {
          const x = poisoned(ctx, m * k, "x");
          const y = ctx.upload(y0, "y");
          const enc = recordPass(ctx, (pass) =>
            encodeMatvec(ctx, pass, {
              ...{ x, w: mat.chunks[0].buffer, y, m, n, k, accumulate: true },
              ...{ wF16: dtype === "f16", prologue: prologueOf(kind, a, b, write) },
            }));
          const tag = `${kind} ${dtype} write ${write}`;
          const want = prod.map((v, i) => v + y0[i]);
          assertClose(await readFloats(ctx, y, m * n, enc), want, TOL, `${tag} y`);
          const gotX = await readFloats(ctx, x, m * k);
          if (write) assertClose(gotX, c.x, TOL, `${tag} x`);
          else assert.ok(gotX.every(Number.isNaN), `${tag}: x was written`);
          ctx.release(x);
          ctx.release(y);
        }
        for (const chunk of mat.chunks) ctx.release(chunk.buffer);
      }
    }
  },
});

Deno.test({
  name:
    "encodeMatvec() prologue on a grid sliced at the device limit (x written by the first slice)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const limit = ctx.device.limits.maxComputeWorkgroupsPerDimension;
    // TK = 64: 4 columns per workgroup, so 4·limit + 9 columns take two slices. The slicing and
    // the block-0 write of x are the same code for both prologues (they differ only in how a
    // staged x value is computed, which the tests above check for each, at every K split): the
    // SwiGLU one stands for both. (RMSNorm's per-workgroup sum of squares makes its ~65,536
    // workgroups take four times as long on lavapipe.)
    const [m, n, k] = [2, 4 * limit + 9, 4];
    assert.ok(Math.ceil(n / 4) > limit, `${n} columns in blocks of 4 fit one slice of ${limit}`);
    for (const kind of ["swiglu"] as Kind[]) {
      const c = inputs(kind, m, k);
      const w = randomArray(n * k, 4);
      const [x, y] = [poisoned(ctx, m * k, "x"), poisoned(ctx, m * n, "y")];
      const wb = ctx.upload(w, "w");
      const prologue = prologueOf(kind, ctx.upload(c.a, "a"), ctx.upload(c.b, "b"));
      const enc = recordPass(
        ctx,
        (pass) => encodeMatvec(ctx, pass, { x, w: wb, y, m, n, k, splitK: 64, prologue }),
      );
      const got = await readFloats(ctx, y, m * n, enc);
      assertClose(got, matmulRef(c.x, w, [m, n, k]), TOL, `${kind} wide y`);
      assertClose(await readFloats(ctx, x, m * k), c.x, TOL, `${kind} wide x`);
      for (const buf of [x, y, wb]) ctx.release(buf);
    }
  },
});

Deno.test({
  name: 'encodeMatvec() "swiglu" prologue reads gate and up rows at a stride (a fused gate|up ' +
    "output bound twice) with the contiguous launch's bits",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const align = ctx.device.limits.minStorageBufferOffsetAlignment / 4;
    // [m, n, k, stride]: rows [gate (k) | NaN | up (k) from float `align` | NaN].
    for (const [m, n, k, extra] of [[5, 33, 8, 4], [3, 65, 68, 0], [9, 7, 132, 12]]) {
      const upAt = Math.ceil(k / align) * align;
      const stride = upAt + k + extra;
      const c = inputs("swiglu", m, k);
      const rows = new Float32Array(m * stride).fill(NaN);
      for (let r = 0; r < m; r++) {
        rows.set(c.a.subarray(r * k, (r + 1) * k), r * stride);
        rows.set(c.b.subarray(r * k, (r + 1) * k), r * stride + upAt);
      }
      const span = 4 * ((m - 1) * stride + k);
      const both = ctx.upload(rows.subarray(0, (m - 1) * stride + upAt + k), "gate_up");
      const gate = { buffer: both, offset: 0, size: span };
      const up = { buffer: both, offset: 4 * upAt, size: span };
      const w = randomArray(n * k, n + 2 * k);
      const wb = ctx.upload(w, "w");
      const [a, b] = [ctx.upload(c.a, "a"), ctx.upload(c.b, "b")];
      const [x, y] = [poisoned(ctx, m * k, "x"), poisoned(ctx, m * n, "y")];
      const [x0, y0] = [poisoned(ctx, m * k, "x0"), poisoned(ctx, m * n, "y0")];
      const enc = recordPass(ctx, (pass) => {
        const prologue = { kind: "swiglu", gate, up, stride } as const;
        encodeMatvec(ctx, pass, { x, w: wb, y, m, n, k, prologue });
        encodeMatvec(ctx, pass, {
          x: x0,
          w: wb,
          y: y0,
          m,
          n,
          k,
          prologue: prologueOf("swiglu", a, b),
        });
      });
      const tag = `swiglu ${m}x${n}x${k} stride ${stride}`;
      const gotY = await readFloats(ctx, y, m * n, enc);
      const gotX = await readFloats(ctx, x, m * k);
      const err = assertClose(gotY, matmulRef(c.x, w, [m, n, k]), TOL, `${tag} y`);
      assertClose(gotX, c.x, TOL, `${tag} x`);
      assert.deepEqual(gotX, await readFloats(ctx, x0, m * k), `${tag}: x differs`);
      assert.deepEqual(gotY, await readFloats(ctx, y0, m * n), `${tag}: y differs`);
      console.log(`${tag}: rel err y ${err.toExponential(2)}; the contiguous launch's bits`);
      for (const buf of [both, wb, a, b, x, y, x0, y0]) ctx.release(buf);
    }
  },
});

Deno.test({
  name: "encodeMatvec() refuses a prologue off the vec4 kernel or on strided rows",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const buf = (n: number) => ctx.createBuffer(4 * n, "b");
    const prologue = { kind: "swiglu", gate: buf(64), up: buf(64) } as const;
    const base = { x: buf(64), w: buf(64), y: buf(64), m: 1, n: 1 };
    assert.throws(
      () => recordPass(ctx, (pass) => encodeMatvec(ctx, pass, { ...base, k: 6, prologue })),
      /"swiglu" prologue: it needs the vec4 kernel .* current values are kernel "auto", k 6/,
    );
    assert.throws(
      () =>
        recordPass(ctx, (pass) => encodeMatvec(ctx, pass, { ...base, k: 8, ldx: 12, prologue })),
      /ldx 12, xCol 0/,
    );
    assert.throws(
      () =>
        recordPass(ctx, (pass) =>
          encodeMatvec(ctx, pass, {
            ...base,
            k: 8,
            prologue: { kind: "rmsnorm", h: buf(8), g: buf(4), eps: EPS },
          })),
      /prologue\.g/,
    );
    for (const stride of [6, 10]) {
      assert.throws(
        () =>
          recordPass(
            ctx,
            (pass) => encodeMatvec(ctx, pass, { ...base, k: 8, prologue: { ...prologue, stride } }),
          ),
        new RegExp(
          `"stride" must be a multiple of 4 and at least k = 8: current value is ${stride}`,
        ),
      );
    }
    assert.throws(
      () =>
        recordPass(
          ctx,
          (pass) =>
            encodeMatvec(ctx, pass, { ...base, m: 2, k: 8, prologue: { ...prologue, stride: 60 } }),
        ),
      /"prologue.gate" must hold at least 68 elements/,
    );
  },
});
