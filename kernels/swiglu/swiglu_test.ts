import { deepStrictEqual, throws } from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeSwiglu, fusedGateUpRows, type SwigluRows } from "./swiglu.ts";
import { swigluRef } from "./swiglu_ref.ts";

// One f32 exp, divide and multiply per element: a few ulps, so 1e-6 relative.
const TOL = 1e-6;

Deno.test({
  name: "encodeSwiglu() matches the f64 reference, including large negative gates",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const n of [1, 255, 257, 1000]) {
      const gate = randomArray(n, n, -20, 20);
      const up = randomArray(n, n + 1, -2, 2);
      const out = poisoned(ctx, n, "out");
      const enc = recordPass(ctx, (pass) =>
        encodeSwiglu(ctx, pass, {
          gate: ctx.upload(gate, "gate"),
          up: ctx.upload(up, "up"),
          out,
          n,
        }));
      const err = assertClose(
        await readFloats(ctx, out, n, enc),
        swigluRef(gate, up),
        TOL,
        `swiglu ${n}`,
      );
      console.log(`swiglu ${n}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeSwiglu() reads gate and up from the rows of one buffer (a fused gate|up " +
    "projection's output) with the contiguous launch's bits",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // [rows, cols] with each input row [gap | gate | gap | up | tail], NaN outside gate and up.
    for (
      const [rows, cols, gap, tail] of [[1, 7, 0, 0], [3, 5, 2, 3], [37, 13, 0, 0], [9, 129, 1, 4]]
    ) {
      const n = rows * cols;
      const gate = randomArray(n, n + 7, -20, 20);
      const up = randomArray(n, n + 8, -2, 2);
      const stride = 2 * gap + 2 * cols + tail;
      const layout = { cols, stride, gateOffset: gap, upOffset: 2 * gap + cols };
      const fused = new Float32Array(rows * stride).fill(NaN);
      for (let r = 0; r < rows; r++) {
        fused.set(gate.subarray(r * cols, (r + 1) * cols), r * stride + layout.gateOffset);
        fused.set(up.subarray(r * cols, (r + 1) * cols), r * stride + layout.upOffset);
      }
      // Exactly the floats the layout needs: the last row's tail is cut.
      const both = ctx.upload(fused.subarray(0, fused.length - tail), "gate_up");
      const [out, plainOut] = [poisoned(ctx, n, "out"), poisoned(ctx, n, "plain")];
      const enc = recordPass(ctx, (pass) => {
        encodeSwiglu(ctx, pass, { gate: both, up: both, out, n, layout });
        const [g, u] = [ctx.upload(gate, "gate"), ctx.upload(up, "up")];
        encodeSwiglu(ctx, pass, { gate: g, up: u, out: plainOut, n });
      });
      const got = await readFloats(ctx, out, n, enc);
      const plain = await readFloats(ctx, plainOut, n);
      const what = `swiglu ${rows}x${cols} (gap ${gap}, tail ${tail})`;
      const err = assertClose(got, swigluRef(gate, up), TOL, what);
      deepStrictEqual(new Uint32Array(got.buffer), new Uint32Array(plain.buffer), what);
      console.log(`${what}: rel err ${err.toExponential(2)}, bits of the contiguous launch`);
    }
  },
});

Deno.test("fusedGateUpRows() puts the gate columns first, then up", () => {
  deepStrictEqual(fusedGateUpRows(5), { cols: 5, stride: 10, gateOffset: 0, upOffset: 5 });
});

Deno.test({
  name: "encodeSwiglu() refuses a layout that overruns its stride or the buffer",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, cols] = [3, 4];
    const n = rows * cols;
    const out = ctx.createBuffer(4 * n, "out");
    const record = (floats: number, layout: SwigluRows) => {
      const both = ctx.createBuffer(4 * floats, "gate_up");
      recordPass(ctx, (pass) => encodeSwiglu(ctx, pass, { gate: both, up: both, out, n, layout }));
    };
    record(2 * n, fusedGateUpRows(cols)); // fits
    throws(() => record(2 * n - 1, fusedGateUpRows(cols)), /"up" must hold at least 24 elements/);
    throws(
      () => record(2 * n, { ...fusedGateUpRows(cols), upOffset: 5 }),
      /"up" rows of 4 must divide n and lie in the row stride/,
    );
    throws(() => record(2 * n, fusedGateUpRows(5)), /"gate" rows of 5 must divide n/);
  },
});
