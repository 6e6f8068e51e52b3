import {
  assertClose,
  noGpu,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeHiloGateBackward } from "./hilo_gate_backward.ts";
import { hiloGateBackwardRef } from "./hilo_gate_backward_ref.ts";

// dg: an f32 dot of r ≤ 7 terms, 1e-6 relative; gated rows: one multiply, 1e-7.
const DOT_TOL = 1e-6;
const ROW_TOL = 1e-7;

Deno.test({
  name: "encodeHiloGateBackward() gives the f64 reference's gate gradients and gated rows",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [m, r, E, expert] of [[1, 1, 2, 0], [9, 3, 3, 2], [131, 7, 5, 1]]) {
      const u = randomArray(m * r, m, -2, 2);
      const du = randomArray(m * r, m + 1, -2, 2);
      const gates = randomArray(m * E, m + 2, 0, 1);
      const dg0 = randomArray(m * E, m + 3, -1, 1);
      const gateOffset = m * r + 3;
      const dgOffset = m * r + 11;
      const ud = new Float32Array(gateOffset + m * E);
      ud.set(u);
      ud.set(gates, gateOffset);
      const dd = new Float32Array(dgOffset + m * E);
      dd.set(du);
      dd.set(dg0, dgOffset);
      const ub = ctx.upload(ud, "u");
      const db = ctx.upload(dd, "du");
      let enc = recordPass(
        ctx,
        (pass) =>
          encodeHiloGateBackward(ctx, pass, {
            u: ub,
            du: db,
            gateOffset,
            dgOffset,
            m,
            r,
            experts: E,
            expert,
          }),
      );
      const gotDu = await readFloats(ctx, db, dd.length, enc);
      enc = ctx.device.createCommandEncoder();
      const gotU = await readFloats(ctx, ub, ud.length, enc);
      ctx.release(ub);
      ctx.release(db);
      const ref = hiloGateBackwardRef(u, du, gates, { r, experts: E, expert });
      // The expert's column of dg is written; the others are left as they were.
      const wantDg = Float64Array.from(dg0);
      for (let t = 0; t < m; t++) wantDg[t * E + expert] = ref.dGate[t];
      const e1 = assertClose(gotDu.subarray(dgOffset), wantDg, DOT_TOL, `dg m=${m}`);
      const e2 = assertClose(gotDu.subarray(0, m * r), ref.du, ROW_TOL, `du m=${m}`);
      const e3 = assertClose(gotU.subarray(0, m * r), ref.u, ROW_TOL, `u m=${m}`);
      assertClose(gotU.subarray(gateOffset), gates, 0, "gates untouched");
      console.log(
        `hilo_gate_backward m=${m}: rel err dg ${e1.toExponential(2)}, du ${
          e2.toExponential(2)
        }, u ${e3.toExponential(2)}`,
      );
    }
  },
});
