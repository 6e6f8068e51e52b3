// GpuLora and the LoRA branch launchers against float64 references composed from matmulRef and
// matmulBackwardRef (kernels/matmul), with experts of different ranks and scales; the forward
// also into columns of a wider output (`ldy`/`yCol`).
import assert from "node:assert/strict";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../gpu/test_utils.ts";
import { matmulRef } from "../kernels/matmul/matmul_ref.ts";
import { matmulBackwardRef } from "../kernels/matmul/matmul_backward_ref.ts";
import { encodeLoraBackward, encodeLoraForward, GpuLora } from "./lora_webgpu.ts";
import type { Lora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";

// f32 matmuls with inner dimensions ≤ 48: a few ulps, so 1e-5 relative.
const TOL = 1e-5;

const [M, IN, OUT] = [37, 48, 20];

/** One module (layer 0's k_proj shape-wise arbitrary) with experts of ranks 3 and 7. */
function twoExperts(): Lora {
  const experts = [[3, 2], [7, 0.5]].map(([r, scale], i) => ({
    a: randomArray(r * IN, 10 + i),
    b: randomArray(OUT * r, 20 + i),
    r,
    scale,
  }));
  return {
    config: loraConfig({ r: 3 }),
    modules: [{
      name: "model.layers.0.self_attn.k_proj",
      layer: 0,
      target: "k_proj",
      inFeatures: IN,
      outFeatures: OUT,
      experts,
    }],
  };
}

Deno.test({
  name: "encodeLoraForward() adds Σ scale_e·(x·A_eᵀ)·B_eᵀ over experts of different ranks",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const lora = twoExperts();
    const gpu = new GpuLora(ctx, lora);
    assert.equal(gpu.maxRank, 7);
    const x = randomArray(M * IN, 1);
    const y0 = randomArray(M * OUT, 2);
    const xb = ctx.upload(x, "x");
    const yb = ctx.upload(y0, "y");
    const scratch = poisoned(ctx, M * gpu.maxRank, "u");
    const enc = recordPass(
      ctx,
      (pass) =>
        encodeLoraForward(ctx, pass, {
          module: gpu.module(0, "k_proj")!,
          x: xb,
          y: yb,
          m: M,
          scratch,
        }),
    );
    let want: Float64Array = Float64Array.from(y0);
    for (const e of lora.modules[0].experts) {
      const u = matmulRef(x, e.a, [M, e.r, IN]);
      want = matmulRef(u, e.b, [M, OUT, e.r], { alpha: e.scale, accumulate: want });
    }
    const err = assertClose(await readFloats(ctx, yb, M * OUT, enc), want, TOL, "lora forward");
    console.log(`lora forward (ranks 3, 7): rel err ${err.toExponential(2)}`);
    for (const b of [xb, yb, scratch]) ctx.release(b);
    gpu.dispose();
  },
});

Deno.test({
  name: "encodeLoraForward() with ldy/yCol adds into its columns of a wider output (a fused " +
    "q|k|v or gate|up output), the others untouched; a routed module refuses them",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const lora = twoExperts();
    const gpu = new GpuLora(ctx, lora);
    const [ldy, yCol] = [OUT + 13, 5];
    const x = randomArray(M * IN, 6);
    const y0 = randomArray(M * ldy, 7);
    const xb = ctx.upload(x, "x");
    const yb = ctx.upload(y0, "y");
    const scratch = poisoned(ctx, M * gpu.maxRank, "u");
    const module = gpu.module(0, "k_proj")!;
    const enc = recordPass(
      ctx,
      (pass) => encodeLoraForward(ctx, pass, { module, x: xb, y: yb, m: M, scratch, ldy, yCol }),
    );
    let delta: Float64Array = new Float64Array(M * OUT);
    for (const e of lora.modules[0].experts) {
      const u = matmulRef(x, e.a, [M, e.r, IN]);
      delta = matmulRef(u, e.b, [M, OUT, e.r], { alpha: e.scale, accumulate: delta });
    }
    const got = await readFloats(ctx, yb, M * ldy, enc);
    const inside: number[] = [];
    const want: number[] = [];
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < ldy; j++) {
        const at = i * ldy + j;
        if (j < yCol || j >= yCol + OUT) assert.equal(got[at], y0[at], `row ${i} column ${j}`);
        else {
          inside.push(got[at]);
          want.push(y0[at] + delta[i * OUT + j - yCol]);
        }
      }
    }
    assertClose(Float32Array.from(inside), want, TOL, "lora forward into columns");
    const routed = { ...module, router: module.router ?? ({} as never) };
    assert.throws(
      () =>
        recordPass(
          ctx,
          (pass) =>
            encodeLoraForward(ctx, pass, { module: routed, x: xb, y: yb, m: M, scratch, yCol }),
        ),
      (e: Error) => e instanceof TypeError && /"ldy" and "yCol"/.test(e.message),
    );
    for (const b of [xb, yb, scratch]) ctx.release(b);
    gpu.dispose();
  },
});

Deno.test({
  name: "encodeLoraBackward() adds dA, dB and dx of every expert",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const lora = twoExperts();
    const gpu = new GpuLora(ctx, lora);
    gpu.ensureGrads();
    const x = randomArray(M * IN, 3);
    const dy = randomArray(M * OUT, 4);
    const dx0 = randomArray(M * IN, 5);
    const [xb, dyb, dxb] = [ctx.upload(x, "x"), ctx.upload(dy, "dy"), ctx.upload(dx0, "dx")];
    const [u, du] = [poisoned(ctx, M * 7, "u"), poisoned(ctx, M * 7, "du")];
    const module = gpu.module(0, "k_proj")!;
    // Twice: the gradients accumulate (2×), dx gets both contributions added to dx0.
    const enc = recordPass(ctx, (pass) => {
      for (let i = 0; i < 2; i++) {
        encodeLoraBackward(ctx, pass, { module, x: xb, dy: dyb, dx: dxb, m: M, u, du });
      }
    });
    const gotDx = await readFloats(ctx, dxb, M * IN, enc);
    const grads = await gpu.readGrads();
    const wantDx = Float64Array.from(dx0);
    lora.modules[0].experts.forEach((e, i) => {
      const uRef = matmulRef(x, e.a, [M, e.r, IN]);
      const up = matmulBackwardRef(dy.map((v) => v * e.scale), uRef, e.b, [M, OUT, e.r]);
      const down = matmulBackwardRef(up.dx, x, e.a, [M, e.r, IN]);
      const name = (m: "A" | "B") =>
        `model.layers.0.self_attn.k_proj.experts.${i}.lora_${m}.weight`;
      const eA = assertClose(grads.get(name("A"))!, down.dw.map((v) => 2 * v), TOL, name("A"));
      const eB = assertClose(grads.get(name("B"))!, up.dw.map((v) => 2 * v), TOL, name("B"));
      for (let j = 0; j < wantDx.length; j++) wantDx[j] += 2 * down.dx[j];
      console.log(`expert ${i} (r=${e.r}): dA ${eA.toExponential(2)}, dB ${eB.toExponential(2)}`);
    });
    const eDx = assertClose(gotDx, wantDx, TOL, "dx");
    console.log(`dx: rel err ${eDx.toExponential(2)}`);
    for (const b of [xb, dyb, dxb, u, du]) ctx.release(b);
    gpu.dispose();
  },
});

Deno.test({
  name: "GpuLora reads back, writes, lists tensors and frees exactly what it allocated",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const before = ctx.allocatedBytes;
    const lora = twoExperts();
    const gpu = new GpuLora(ctx, lora);
    const paramBytes = (3 + 7) * (IN + OUT) * 4;
    assert.equal(ctx.allocatedBytes - before, paramBytes);
    assert.equal(gpu.hasGrads, false);
    await assert.rejects(() => gpu.readGrads(), TypeError);
    const tensors = gpu.tensors();
    assert.equal(ctx.allocatedBytes - before, 2 * paramBytes);
    assert.deepEqual(tensors.map((t) => [t.name, t.n]), [
      ["model.layers.0.self_attn.k_proj.experts.0.lora_A.weight", 3 * IN],
      ["model.layers.0.self_attn.k_proj.experts.0.lora_B.weight", OUT * 3],
      ["model.layers.0.self_attn.k_proj.experts.1.lora_A.weight", 7 * IN],
      ["model.layers.0.self_attn.k_proj.experts.1.lora_B.weight", OUT * 7],
    ]);
    // Bit-exact round trip, then a write seen by the next read.
    const back = await gpu.read();
    back.modules[0].experts.forEach((e, i) => {
      assert.deepEqual(e.a, lora.modules[0].experts[i].a);
      assert.deepEqual(e.b, lora.modules[0].experts[i].b);
      assert.equal(e.scale, lora.modules[0].experts[i].scale);
    });
    back.modules[0].experts[1].b.fill(0.25);
    gpu.write(back);
    assert.ok((await gpu.read()).modules[0].experts[1].b.every((v) => v === 0.25));
    const bad = twoExperts();
    bad.modules[0].experts[0].a = new Float32Array(5);
    assert.throws(
      () => gpu.write(bad),
      (e: Error) => e instanceof RangeError && /current lengths are 5/.test(e.message),
    );
    assert.equal(gpu.module(0, "q_proj"), undefined);
    gpu.dispose();
    assert.equal(ctx.allocatedBytes, before);
    await assert.rejects(() => gpu.read(), TypeError);
  },
});
