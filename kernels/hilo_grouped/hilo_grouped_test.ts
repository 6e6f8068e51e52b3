// The grouped HILO dispatch's kernels against their float64 references: the per-expert token
// index (exact) and one expert's gated output on its tokens (rel 1e-5), on odd shapes, with the
// index area poisoned (NaN) before the build and rows outside the expert's tokens checked
// untouched. The backward launcher's check of the workgroup storage its rows kernel needs, on a
// faked device limit.
import assert from "node:assert/strict";
import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { moeRouteRef } from "../moe_route/moe_route_ref.ts";
import type { GpuContext } from "../../gpu/context.ts";
import { encodeHiloGroupedBackward } from "./hilo_grouped_backward.ts";
import { encodeHiloGroupedExpert } from "./hilo_grouped_expert.ts";
import { encodeHiloGroupedIndex, hiloGroupedIndexSize } from "./hilo_grouped_index.ts";
import {
  hiloGroupedBackwardRef,
  hiloGroupedExpertRef,
  hiloGroupedIndexRef,
} from "./hilo_grouped_ref.ts";
import rowsMain from "./hilo_grouped_backward_rows.wgsl" with { type: "text" };
import hiloRows from "./_hilo_rows.wgsl" with { type: "text" };

// f32 dot products of width ≤ 70 against float64: rel 1e-5 (measured ~1e-7).
const TOL = 1e-5;

/** Gates `[m, E]` in f32 from random logits (some rows tied), routed by the f64 reference. */
function gatesOf(m: number, E: number, k: number, seed: number): Float32Array {
  const logits = randomArray(m * E, seed, -2, 2);
  // Ties: token 0's logits all equal (top-k takes the lowest indices).
  logits.fill(0.5, 0, E);
  return Float32Array.from(moeRouteRef(logits, { experts: E, topK: k }).gates);
}

Deno.test({
  name: "encodeHiloGroupedIndex() builds the per-expert token lists of the f64 reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, E, k] of [[1, 1, 1], [7, 3, 2], [33, 8, 1], [130, 16, 2], [5, 64, 2]]) {
      const gates = gatesOf(m, E, k, m * 7 + E);
      const gateOffset = 3;
      const indexOffset = gateOffset + m * E + 5;
      const size = hiloGroupedIndexSize(m, E);
      const data = new Float32Array(indexOffset + size).fill(NaN);
      data.set(gates, gateOffset);
      const buf = ctx.upload(data, "scratch");
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeHiloGroupedIndex(ctx, pass, {
            buffer: buf,
            gateOffset,
            indexOffset,
            m,
            experts: E,
          }),
      );
      const got = await readFloats(ctx, buf, data.length, enc);
      ctx.release(buf);
      const want = hiloGroupedIndexRef(gates, E);
      assert.deepEqual(Array.from(got.subarray(indexOffset, indexOffset + E)), want.counts);
      assert.deepEqual(
        Array.from(got.subarray(indexOffset + E, indexOffset + 2 * E)),
        want.offsets,
      );
      const lists = got.subarray(indexOffset + 2 * E, indexOffset + 2 * E + want.lists.length);
      assert.deepEqual(Array.from(lists), want.lists);
      assert.equal(want.lists.length, m * k, "top-k assigns k experts per token");
      // The gates are untouched.
      assert.deepEqual(got.subarray(gateOffset, gateOffset + m * E), gates);
    }
  },
});

Deno.test({
  name:
    "encodeHiloGroupedExpert() adds one expert's gated output on its tokens as the f64 reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let seed = 40;
    const cases = [
      { m: 1, E: 1, k: 1, inF: 7, outF: 5, r: 1, expert: 0 },
      { m: 37, E: 3, k: 2, inF: 70, outF: 9, r: 5, expert: 1 },
      { m: 19, E: 8, k: 1, inF: 33, outF: 17, r: 64, expert: 7 },
      // Every token routed to both experts: a full tile of 16 rows at rank 64 (phase 1's
      // outputs o >= 512, rows 8 .. 15).
      { m: 19, E: 2, k: 2, inF: 33, outF: 17, r: 64, expert: 1 },
      { m: 50, E: 16, k: 2, inF: 19, outF: 23, r: 3, expert: 0 },
    ];
    for (const c of cases) {
      const gates = gatesOf(c.m, c.E, c.k, seed++);
      const gateOffset = 0;
      const indexOffset = c.m * c.E + 1;
      const data = new Float32Array(indexOffset + hiloGroupedIndexSize(c.m, c.E)).fill(NaN);
      data.set(gates, gateOffset);
      const x = randomArray(c.m * c.inF, seed++, -1, 1);
      const a = randomArray(c.r * c.inF, seed++, -0.5, 0.5);
      const b = randomArray(c.outF * c.r, seed++, -0.5, 0.5);
      const y0 = randomArray(c.m * c.outF, seed++, -1, 1);
      const bufs = {
        buffer: ctx.upload(data, "scratch"),
        x: ctx.upload(x, "x"),
        a: ctx.upload(a, "a"),
        b: ctx.upload(b, "b"),
        y: ctx.upload(y0, "y"),
      };
      const scale = 2 / c.r;
      const enc = recordPass(ctx, (pass) => {
        encodeHiloGroupedIndex(ctx, pass, {
          buffer: bufs.buffer,
          gateOffset,
          indexOffset,
          m: c.m,
          experts: c.E,
        });
        encodeHiloGroupedExpert(ctx, pass, {
          ...bufs,
          gateOffset,
          indexOffset,
          m: c.m,
          inFeatures: c.inF,
          outFeatures: c.outF,
          r: c.r,
          experts: c.E,
          expert: c.expert,
          scale,
        });
      });
      const got = await readFloats(ctx, bufs.y, c.m * c.outF, enc);
      for (const buf of Object.values(bufs)) ctx.release(buf);
      const ref = hiloGroupedExpertRef(x, { a, b }, gates, {
        inFeatures: c.inF,
        outFeatures: c.outF,
        r: c.r,
        experts: c.E,
        expert: c.expert,
        scale,
      });
      const want = ref.map((v, i) => v + y0[i]);
      const err = assertClose(got, want, TOL, `m=${c.m} E=${c.E} r=${c.r}`);
      // Rows of tokens the expert did not take are exactly y0.
      let untouched = 0;
      for (let t = 0; t < c.m; t++) {
        if (gates[t * c.E + c.expert] !== 0) continue;
        untouched++;
        const row = (v: ArrayLike<number>) =>
          Array.from({ length: c.outF }, (_, n) => v[t * c.outF + n]);
        assert.deepEqual(row(got), row(y0), `token ${t} untouched`);
      }
      console.log(
        `hilo_grouped_expert m=${c.m} E=${c.E} r=${c.r}: rel err ${err.toExponential(2)}, ` +
          `${untouched} rows untouched`,
      );
    }
  },
});

Deno.test({
  name:
    "encodeHiloGroupedBackward() gives one expert's dA, dB, dx and gate gradient on its tokens as the f64 reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    let seed = 90;
    const cases = [
      { m: 1, E: 1, k: 1, inF: 7, outF: 5, r: 1, expert: 0, dx: true },
      { m: 37, E: 3, k: 2, inF: 70, outF: 9, r: 5, expert: 1, dx: true },
      { m: 19, E: 8, k: 1, inF: 33, outF: 40, r: 64, expert: 7, dx: false },
      { m: 19, E: 2, k: 2, inF: 33, outF: 40, r: 64, expert: 1, dx: true },
      { m: 50, E: 16, k: 2, inF: 19, outF: 23, r: 3, expert: 0, dx: true },
    ];
    for (const c of cases) {
      const gates = gatesOf(c.m, c.E, c.k, seed++);
      const gateOffset = c.m * c.r + 3;
      const indexOffset = gateOffset + c.m * c.E + 2;
      // u: rows and the gap poisoned, gates, index (built below) poisoned; du all poisoned.
      const uData = new Float32Array(indexOffset + hiloGroupedIndexSize(c.m, c.E)).fill(NaN);
      uData.set(gates, gateOffset);
      const x = randomArray(c.m * c.inF, seed++, -1, 1);
      const a = randomArray(c.r * c.inF, seed++, -0.5, 0.5);
      const b = randomArray(c.outF * c.r, seed++, -0.5, 0.5);
      const dy = randomArray(c.m * c.outF, seed++, -1, 1);
      const dx0 = randomArray(c.m * c.inF, seed++, -1, 1);
      const dA0 = randomArray(c.r * c.inF, seed++, -1, 1);
      const dB0 = randomArray(c.outF * c.r, seed++, -1, 1);
      const bufs = {
        u: ctx.upload(uData, "u"),
        du: ctx.upload(new Float32Array(gateOffset + c.m * c.E).fill(NaN), "du"),
        x: ctx.upload(x, "x"),
        a: ctx.upload(a, "a"),
        b: ctx.upload(b, "b"),
        dy: ctx.upload(dy, "dy"),
        dx: ctx.upload(dx0, "dx"),
        gradA: ctx.upload(dA0, "gradA"),
        gradB: ctx.upload(dB0, "gradB"),
      };
      const scale = 2 / c.r;
      const shape = {
        m: c.m,
        inFeatures: c.inF,
        outFeatures: c.outF,
        r: c.r,
        experts: c.E,
        expert: c.expert,
        scale,
      };
      const enc = recordPass(ctx, (pass) => {
        encodeHiloGroupedIndex(ctx, pass, {
          buffer: bufs.u,
          gateOffset,
          indexOffset,
          m: c.m,
          experts: c.E,
        });
        encodeHiloGroupedBackward(ctx, pass, {
          ...bufs,
          dx: c.dx ? bufs.dx : undefined,
          gateOffset,
          indexOffset,
          ...shape,
        });
      });
      const du = await readFloats(ctx, bufs.du, gateOffset + c.m * c.E, enc);
      const dx = await readFloats(ctx, bufs.dx, c.m * c.inF);
      const dA = await readFloats(ctx, bufs.gradA, c.r * c.inF);
      const dB = await readFloats(ctx, bufs.gradB, c.outF * c.r);
      for (const buf of Object.values(bufs)) ctx.release(buf);
      const ref = hiloGroupedBackwardRef(x, { a, b }, dy, gates, shape);
      const what = `m=${c.m} E=${c.E} r=${c.r}`;
      const errs = [
        assertClose(dA, ref.dA.map((v, i) => v + dA0[i]), TOL, `${what} dA`),
        assertClose(dB, ref.dB.map((v, i) => v + dB0[i]), TOL, `${what} dB`),
        assertClose(dx, c.dx ? ref.dx.map((v, i) => v + dx0[i]) : dx0, TOL, `${what} dx`),
      ];
      // The gate gradient on the expert's tokens; every other entry of the gate area untouched.
      const taken = Array.from({ length: c.m }, (_, t) => t).filter((t) =>
        gates[t * c.E + c.expert] !== 0
      );
      errs.push(
        assertClose(
          taken.map((t) => du[gateOffset + t * c.E + c.expert]),
          taken.map((t) => ref.dg[t]),
          TOL,
          `${what} dg`,
        ),
      );
      const untouched = Array.from(du.subarray(gateOffset)).filter((_, i) =>
        !(i % c.E === c.expert && gates[i] !== 0)
      );
      assert.ok(untouched.every(Number.isNaN), `${what}: other gate-gradient entries untouched`);
      console.log(
        `hilo_grouped_backward ${what}: worst rel err ${Math.max(...errs).toExponential(2)}`,
      );
    }
  },
});

// Workgroup storage of a shader's `var<workgroup>` scalars and arrays of 4-byte scalars (their
// lengths literals or `const`s), each rounded up to 16 bytes as WebGPU counts it.
function workgroupBytes(code: string): number {
  const consts = new Map<string, number>();
  for (const [, name, value] of code.matchAll(/const\s+(\w+)\s*:\s*u32\s*=\s*(\d+)u?\s*;/g)) {
    consts.set(name, Number(value));
  }
  let bytes = 0;
  for (const [, type] of code.matchAll(/var<workgroup>\s+\w+\s*:\s*([^;]+);/g)) {
    const array = /^array<\s*(?:f32|u32|i32)\s*,\s*(\w+)\s*>$/.exec(type.trim());
    const n = array
      ? Number(consts.get(array[1]) ?? array[1])
      : /^(?:f32|u32|i32)$/.test(type.trim())
      ? 1
      : NaN;
    assert.ok(Number.isSafeInteger(n), `unexpected workgroup type ${type}`);
    bytes += Math.ceil((4 * n) / 16) * 16;
  }
  return bytes;
}

Deno.test("encodeHiloGroupedBackward() refuses a device whose workgroup storage is too small", () => {
  const need = workgroupBytes(`${rowsMain}\n${hiloRows}`);
  assert.equal(need, 18512);
  // A context with only a device's limit and an adapter's name: the check comes before any
  // pipeline is made (the fake has none, so passing the check fails on `pipeline`).
  const fake = (limit: number) =>
    ({
      device: { limits: { maxComputeWorkgroupStorageSize: limit } },
      gpu: { description: "fake 16 KiB adapter" },
    }) as unknown as GpuContext;
  const buffer = { size: 1 << 20 } as GPUBuffer;
  const args = {
    x: buffer,
    a: buffer,
    b: buffer,
    dy: buffer,
    gradA: buffer,
    gradB: buffer,
    u: buffer,
    du: buffer,
    gateOffset: 64,
    indexOffset: 128,
    m: 4,
    inFeatures: 8,
    outFeatures: 8,
    r: 4,
    experts: 2,
    expert: 1,
    scale: 1,
  };
  const pass = {} as GPUComputePassEncoder;
  for (const limit of [16384, need - 1]) {
    assert.throws(() => encodeHiloGroupedBackward(fake(limit), pass, args), {
      name: "RangeError",
      message: `Cannot record hilo_grouped_backward: its kernel hilo_grouped_backward_rows needs ` +
        `${need} bytes of workgroup storage, more than the device allows ` +
        `(maxComputeWorkgroupStorageSize ${limit}, adapter "fake 16 KiB adapter"): use an ` +
        `adapter that allows at least ${need} bytes`,
    });
  }
  assert.throws(() => encodeHiloGroupedBackward(fake(need), pass, args), {
    name: "TypeError",
    message: /pipeline is not a function/,
  });
});
