import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { matmulRef } from "../matmul/matmul_ref.ts";
import { encodeMatvec } from "./matvec.ts";

// f32 sums of up to 1000 products split over 64 threads: 1e-5 relative is ample.
const TOL = 1e-5;

Deno.test({
  name: "encodeMatvec() matches the f64 matmul reference on shapes off the block sizes",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    for (
      const [m, n, k] of [[1, 1, 1], [1, 7, 100], [3, 130, 64], [5, 33, 65], [8, 64, 257], [
        13,
        9,
        1000,
      ]]
    ) {
      const x = randomArray(m * k, m + k, -2, 2);
      const w = randomArray(n * k, n + k);
      const y = poisoned(ctx, m * n, "y");
      const enc = recordPass(
        ctx,
        (pass) =>
          encodeMatvec(ctx, pass, { x: ctx.upload(x, "x"), w: ctx.upload(w, "w"), y, m, n, k }),
      );
      const err = assertClose(
        await readFloats(ctx, y, m * n, enc),
        matmulRef(x, w, [m, n, k]),
        TOL,
        `matvec ${m}x${n}x${k}`,
      );
      console.log(`matvec ${m}x${n}x${k}: rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeMatvec() accumulates into a column range of a wider output",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [m, n, k, ldy, yCol] = [3, 10, 48, 25, 7];
    const x = randomArray(m * k, 1);
    const w = randomArray(n * k, 2);
    const y0 = randomArray(m * ldy, 3);
    const y = ctx.upload(y0, "y");
    const enc = recordPass(
      ctx,
      (pass) =>
        encodeMatvec(ctx, pass, {
          x: ctx.upload(x, "x"),
          w: ctx.upload(w, "w"),
          y,
          m,
          n,
          k,
          ldy,
          yCol,
          accumulate: true,
        }),
    );
    const got = await readFloats(ctx, y, m * ldy, enc);
    const want = Float64Array.from(y0);
    const prod = matmulRef(x, w, [m, n, k]);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) want[i * ldy + yCol + j] += prod[i * n + j];
    }
    assertClose(got, want, TOL, "matvec accumulate");
  },
});

Deno.test({
  name: "encodeMatvec() slices a grid wider than the device's workgroup limit",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const limit = ctx.device.limits.maxComputeWorkgroupsPerDimension;
    const [m, n, k] = [1, 4 * limit + 9, 2];
    const x = Float32Array.of(1, 2);
    const w = randomArray(n * k, 4);
    const y = poisoned(ctx, n, "y");
    const enc = recordPass(
      ctx,
      (pass) =>
        encodeMatvec(ctx, pass, { x: ctx.upload(x, "x"), w: ctx.upload(w, "w"), y, m, n, k }),
    );
    assertClose(await readFloats(ctx, y, n, enc), matmulRef(x, w, [m, n, k]), TOL, "matvec wide");
  },
});
