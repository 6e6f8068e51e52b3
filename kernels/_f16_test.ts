// The f16-weight variants of matmul (forward and d x), matvec and the embedding gather against
// float64 references over the same weights rounded to f16 (Float16Array): the kernels widen each
// weight to f32 exactly, so what is left is f32 accumulation (1e-5 relative, as the f32 kernels).
// k = 44 takes the vec4 reads (vec4<f16>) of matvec_vec4.wgsl.
import assert from "node:assert/strict";
import { uploadMatrix } from "../gpu/matrix.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../gpu/test_utils.ts";
import { encodeEmbedding } from "./embedding/embedding.ts";
import { embeddingRef } from "./embedding/embedding_ref.ts";
import { f16Weights } from "./_f16.ts";
import { encodeMatmul } from "./matmul/matmul.ts";
import { encodeMatmulBackward } from "./matmul/matmul_backward.ts";
import { matmulBackwardRef } from "./matmul/matmul_backward_ref.ts";
import { matmulRef } from "./matmul/matmul_ref.ts";
import { encodeMatvec } from "./matvec/matvec.ts";

const TOL = 1e-5;

/** The values an f16 buffer holds: each rounded to the nearest f16. */
function asF16(values: Float32Array): Float32Array {
  return Float32Array.from(Float16Array.from(values));
}

Deno.test("f16Weights() rewrites the weight binding and widens every read", () => {
  const code = `@group(0) @binding(1) var<storage, read> w: array<f32>;
fn f(i: u32) -> f32 { return w[i * 2u + 1u] + ww[i] + w[min(i, 3u)]; }`;
  const out = f16Weights(code, "w");
  assert.match(out, /^enable f16;/);
  assert.match(out, /var<storage, read> w: array<f16>;/);
  assert.match(out, /f32\(w\[i \* 2u \+ 1u\]\) \+ ww\[i\] \+ f32\(w\[min\(i, 3u\)\]\)/);
  assert.throws(() => f16Weights(code, "v"), /no binding "var<storage, read> v: array<f32>;"/);
});

Deno.test("f16Weights() rebinds a vec4 weight binding as vec4<f16> and widens every read", () => {
  const code = `@group(0) @binding(1) var<storage, read> w: array<vec4f>;
fn f(i: u32) -> vec4f { return w[i / 4u] + w[i]; }`;
  const out = f16Weights(code, "w");
  assert.match(out, /var<storage, read> w: array<vec4<f16>>;/);
  assert.match(out, /vec4f\(w\[i \/ 4u\]\) \+ vec4f\(w\[i\]\)/);
});

Deno.test({
  name: "f16 weights: matmul, its d x, matvec and the embedding gather match float64",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    if (!ctx.gpu.features.has("shader-f16")) {
      console.log("the adapter has no shader-f16: f16 weights are refused (checked below)");
    }
    for (const [m, n, k] of [[3, 5, 7], [65, 63, 17], [2, 130, 33], [3, 130, 44]]) {
      const x = randomArray(m * k, m + k);
      const w = randomArray(n * k, n * k + 1);
      const dy = randomArray(m * n, m * n + 2);
      const mat = uploadMatrix(ctx, { name: "w", data: w, rows: n, cols: k }, { dtype: "f16" });
      const wb = mat.chunks[0].buffer;
      assert.equal(wb.size, Math.ceil((n * k) / 2) * 4, "f16 storage is half of f32");
      if (!ctx.gpu.features.has("shader-f16")) {
        assert.throws(
          () =>
            recordPass(
              ctx,
              (pass) =>
                encodeMatmul(ctx, pass, {
                  x: ctx.upload(x, "x"),
                  w: wb,
                  y: poisoned(ctx, m * n, "y"),
                  m,
                  n,
                  k,
                  wF16: true,
                }),
            ),
          /shader-f16/,
        );
        return;
      }
      const y = poisoned(ctx, m * n, "y");
      const yv = poisoned(ctx, m * n, "yv");
      const dx = poisoned(ctx, m * k, "dx");
      const xb = ctx.upload(x, "x");
      const enc = recordPass(ctx, (pass) => {
        encodeMatmul(ctx, pass, { x: xb, w: wb, y, m, n, k, wF16: true });
        encodeMatvec(ctx, pass, { x: xb, w: wb, y: yv, m, n, k, wF16: true });
        encodeMatmulBackward(ctx, pass, {
          dy: ctx.upload(dy, "dy"),
          m,
          n,
          k,
          w: wb,
          dx,
          wF16: true,
        });
      });
      const w16 = asF16(w);
      const want = matmulRef(x, w16, [m, n, k]);
      assertClose(await readFloats(ctx, y, m * n, enc), want, TOL, `matmul f16 ${m}x${n}x${k}`);
      assertClose(await readFloats(ctx, yv, m * n), want, TOL, `matvec f16 ${m}x${n}x${k}`);
      const ref = matmulBackwardRef(dy, x, w16, [m, n, k]);
      assertClose(await readFloats(ctx, dx, m * k), ref.dx, TOL, `matmul dx f16 ${m}x${n}x${k}`);
    }
    // The embedding gather from an f16 table split in row blocks: exact (a copy).
    const [rows, h] = [37, 12];
    const table = randomArray(rows * h, 9);
    const mat = uploadMatrix(ctx, { name: "emb", data: table, rows, cols: h }, {
      dtype: "f16",
      maxChunkBytes: 10 * h * 2,
    });
    assert.equal(mat.chunks.length, 4);
    const ids = new Uint32Array([0, 36, 11, 20, 9, 30]);
    const out = poisoned(ctx, ids.length * h, "out");
    const enc = recordPass(
      ctx,
      (pass) =>
        encodeEmbedding(ctx, pass, {
          ids: ctx.upload(ids, "ids"),
          table: mat,
          out,
          tokens: ids.length,
        }),
    );
    assert.deepEqual(
      Array.from(await readFloats(ctx, out, ids.length * h, enc)),
      Array.from(embeddingRef(ids, asF16(table), h)),
    );
  },
});
