import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeSwiglu } from "./swiglu.ts";
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
