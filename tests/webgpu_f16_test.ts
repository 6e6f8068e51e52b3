// f16 weight storage on WebGPU (`weightDtype: "f16"`): the fixture model's matrices stored as f16
// (half the bytes) and read into f32 arithmetic. Reference: the float64 CPU model over the same
// weights rounded to f16 (Float16Array), so the only differences left are the f32 kernels' own
// (1e-4 relative, the golden tests' bound): logits, greedy generation, LoRA gradients. The cost
// of the rounding itself is reported against the f32 model (stated bound 3e-2 relative on the
// logits of this random-init fixture) and "full" training is refused (f16 weights are frozen).
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { assertClose, noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { readQwen3Config } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward } from "../model/qwen3_cpu_backward.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights, type Qwen3Weights } from "../model/weights.ts";

const TOL = 1e-4;
const ROUNDING_TOL = 3e-2;
const dir = fixtureDir();
const config = await readQwen3Config(dir);
const inputIds = [[3, 17, 250, 99, 4, 311, 8, 42], [12, 7, 300, 64, 5, 6, 7, 8]];

/** The weights as an f16 store holds them: every matrix rounded to f16, norms kept. */
function roundedToF16(w: Qwen3Weights): Qwen3Weights {
  const r = (a: Float32Array) => Float32Array.from(Float16Array.from(a));
  const embed = r(w.embedTokens);
  return {
    embedTokens: embed,
    lmHead: w.lmHead === w.embedTokens ? embed : r(w.lmHead),
    norm: w.norm,
    layers: w.layers.map((l) => ({
      ...l,
      qProj: r(l.qProj),
      kProj: r(l.kProj),
      vProj: r(l.vProj),
      oProj: r(l.oProj),
      gateProj: r(l.gateProj),
      upProj: r(l.upProj),
      downProj: r(l.downProj),
    })),
  };
}

Deno.test({
  name: "WebGpuQwen3 with f16 weights equals the float64 model over f16-rounded weights, in half " +
    "the weight memory",
  ignore: noGpu,
  async fn() {
    const shared = (await testContext())!;
    const weights = await loadQwen3Weights(dir, config);
    if (!shared.gpu.features.has("shader-f16")) {
      // Without the feature the model says so (this machine's lavapipe has it).
      const ctx = new GpuContext(shared.gpu);
      assert.throws(
        () => new WebGpuQwen3(ctx, config, weights, { weightDtype: "f16" }),
        /shader-f16/,
      );
      return;
    }
    const ctx16 = new GpuContext(shared.gpu);
    const ctx32 = new GpuContext(shared.gpu);
    const gpu16 = new WebGpuQwen3(ctx16, config, weights, { weightDtype: "f16" });
    const gpu32 = new WebGpuQwen3(ctx32, config, weights);
    const cpu = new CpuQwen3(config, roundedToF16(weights));
    try {
      const ratio = ctx16.allocatedBytes / ctx32.allocatedBytes;
      console.log(
        `weights on the GPU: f16 ${ctx16.allocatedBytes} B, f32 ${ctx32.allocatedBytes} B ` +
          `(ratio ${ratio.toFixed(3)}; norms and the RoPE table stay f32)`,
      );
      assert.ok(ratio < 0.55, `f16 weights take ${ratio} of the f32 bytes`);
      const got = await gpu16.forward({ inputIds });
      const want = await cpu.forward({ inputIds });
      const err = assertClose(got.logits, want.logits, TOL, "f16 logits vs f64 over f16 weights");
      const f32 = await gpu32.forward({ inputIds });
      const rounding = assertClose(got.logits, f32.logits, ROUNDING_TOL, "f16 vs f32 logits");
      console.log(
        `f16 logits: ${err.toExponential(2)} from the f64 reference over the same weights, ` +
          `${rounding.toExponential(2)} from the f32 model`,
      );
      const options = { prompts: inputIds, maxNewTokens: 8, temperature: 0, eosTokenIds: [] };
      const g16 = await generate(gpu16, options);
      const gCpu = await generate(cpu, options);
      assert.deepEqual(
        g16.sequences.map((s) => [...s.tokens]),
        gCpu.sequences.map((s) => [...s.tokens]),
      );
      // LoRA on the frozen f16 base: gradients as the f64 backward over the rounded weights.
      gpu16.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
      cpu.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
      const dLogprobs = new Float64Array(2 * 7).map((_, i) => (i % 3) - 1);
      const { grads } = await gpu16.backward({ inputIds }, { mode: "adapters", dLogprobs });
      const ref = cpuBackward(cpu, { inputIds }, { mode: "adapters", dLogprobs }).grads;
      for (const [name, g] of ref) assertClose(grads.get(name)!, g, TOL, `f16 LoRA grad ${name}`);
      await assert.rejects(
        gpu16.backward({ inputIds }, { mode: "full", dLogprobs }),
        /mode "full" trains the base weights, which this model stores as f16/,
      );
    } finally {
      gpu16.dispose();
      gpu32.dispose();
    }
  },
});
