import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeAdd } from "./add.ts";
import { addRef } from "./add_ref.ts";

// One f32 multiply-add per element: within an ulp or two, so 1e-7 relative.
const TOL = 1e-7;

Deno.test({
  name: "encodeAdd() copies, scales and accumulates as the f64 reference",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const n of [1, 255, 257, 1000]) {
      const x = randomArray(n, n, -3, 3);
      const y0 = randomArray(n, n + 1, -3, 3);
      // A scaled copy into a poisoned buffer: every element must be written.
      const copy = poisoned(ctx, n, "copy");
      const xb = ctx.upload(x, "x");
      let enc = recordPass(ctx, (pass) => encodeAdd(ctx, pass, { x: xb, y: copy, n, alpha: -0.5 }));
      const e1 = assertClose(
        await readFloats(ctx, copy, n, enc),
        addRef(x, { alpha: -0.5 }),
        TOL,
        `copy ${n}`,
      );
      const acc = ctx.upload(y0, "y");
      enc = recordPass(ctx, (pass) => {
        encodeAdd(ctx, pass, { x: xb, y: acc, n, accumulate: true });
        encodeAdd(ctx, pass, { x: xb, y: acc, n, alpha: 2, accumulate: true });
      });
      const e2 = assertClose(
        await readFloats(ctx, acc, n, enc),
        addRef(x, { alpha: 2, accumulate: addRef(x, { accumulate: y0 }) }),
        TOL,
        `accumulate ${n}`,
      );
      console.log(`add ${n}: rel err ${e1.toExponential(2)}, ${e2.toExponential(2)}`);
      for (const b of [copy, xb, acc]) ctx.release(b);
    }
  },
});
