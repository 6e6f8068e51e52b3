import assert from "node:assert/strict";
import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeHiloGateRows } from "./hilo_gate_rows.ts";
import { hiloGateRowsRef } from "./hilo_gate_rows_ref.ts";

// One f32 multiply per element: 1e-7 relative.
const TOL = 1e-7;

Deno.test({
  name: "encodeHiloGateRows() scales rows by one expert's gates as the f64 reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, r, E, expert] of [[1, 1, 2, 1], [7, 3, 3, 0], [257, 5, 4, 3]]) {
      const u = randomArray(m * r, m + r, -2, 2);
      const gates = randomArray(m * E, m * E, 0, 1);
      const gateOffset = m * r + 5;
      const data = new Float32Array(gateOffset + m * E).fill(3);
      data.set(u, 0);
      data.set(gates, gateOffset);
      const buf = ctx.upload(data, "scratch");
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeHiloGateRows(ctx, pass, { buffer: buf, gateOffset, m, r, experts: E, expert }),
      );
      const got = await readFloats(ctx, buf, data.length, enc);
      ctx.release(buf);
      const err = assertClose(
        got.subarray(0, m * r),
        hiloGateRowsRef(u, gates, { r, experts: E, expert }),
        TOL,
        `m=${m} r=${r}`,
      );
      // The gates and the gap are untouched.
      assert.deepEqual(got.subarray(m * r), data.subarray(m * r));
      console.log(`hilo_gate_rows m=${m} r=${r}: rel err ${err.toExponential(2)}`);
    }
  },
});
