import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeRmsNorm } from "./rms_norm.ts";
import { rmsNormRef } from "./rms_norm_ref.ts";

// f32 sum of d squares then a few multiplies: 1e-5 relative is ample for d ≤ 10^4.
const TOL = 1e-5;

Deno.test({
  name: "encodeRmsNorm() matches the f64 reference on rows off the workgroup size",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (const [rows, d] of [[1, 1], [3, 16], [7, 100], [33, 64], [5, 1000]]) {
      const x = randomArray(rows * d, rows + d, -3, 3);
      const w = randomArray(d, d, 0.5, 1.5);
      // eps 0.5, of the size of the mean square (~3), where eps's placement shows (inside the
      // square root, added to the mean not to the sum); 1e-6 (the models' value) elsewhere.
      const eps = d === 16 || d === 100 ? 0.5 : 1e-6;
      const y = poisoned(ctx, rows * d, "y");
      const enc = recordPass(ctx, (pass) =>
        encodeRmsNorm(ctx, pass, {
          x: ctx.upload(x, "x"),
          w: ctx.upload(w, "w"),
          y,
          rows,
          d,
          eps,
        }));
      const got = await readFloats(ctx, y, rows * d, enc);
      const err = assertClose(
        got,
        rmsNormRef(x, w, { d, eps }),
        TOL,
        `rms_norm ${rows}x${d}`,
      );
      console.log(`rms_norm ${rows}x${d}: rel err ${err.toExponential(2)}`);
    }
  },
});
