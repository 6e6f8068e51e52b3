import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { readback } from "../../gpu/readback.ts";
import { encodeSwigluBackward } from "./swiglu_backward.ts";
import { swigluBackwardRef } from "./swiglu_backward_ref.ts";

// One f32 exp, a divide and a few products per element: a few ulps, so 1e-6 relative.
const TOL = 1e-6;

Deno.test({
  name: "encodeSwigluBackward() matches the f64 reference, including saturated gates",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const n of [1, 255, 257, 1000]) {
      // Gates up to ±100: exp(-g) overflows f32 to infinity, sig must come out as 0, not NaN.
      const gate = randomArray(n, n, -100, 100);
      gate[0] = 0.5;
      const up = randomArray(n, n + 1, -2, 2);
      const dOut = randomArray(n, n + 2);
      const dGate = poisoned(ctx, n, "dGate");
      const dUp = poisoned(ctx, n, "dUp");
      const enc = recordPass(ctx, (pass) =>
        encodeSwigluBackward(ctx, pass, {
          dOut: ctx.upload(dOut, "dOut"),
          gate: ctx.upload(gate, "gate"),
          up: ctx.upload(up, "up"),
          dGate,
          dUp,
          n,
        }));
      const [gg, gu] = await readback(ctx, [
        { buffer: dGate, offset: 0, size: n * 4 },
        { buffer: dUp, offset: 0, size: n * 4 },
      ], enc);
      const want = swigluBackwardRef(dOut, gate, up);
      const eg = assertClose(new Float32Array(gg), want.dGate, TOL, `dGate ${n}`);
      const eu = assertClose(new Float32Array(gu), want.dUp, TOL, `dUp ${n}`);
      console.log(
        `swiglu backward ${n}: dGate ${eg.toExponential(2)}, dUp ${eu.toExponential(2)}`,
      );
    }
  },
});
