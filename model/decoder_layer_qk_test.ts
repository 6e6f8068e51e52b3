// The decoder layer's decode step gives the same output and KV cache whether the KV-cache append
// is folded into the q/k norm + RoPE dispatch (devices that bind 12 storage buffers) or runs as
// its own kv_write dispatch (a device limited to WebGPU's default of 8, simulated here).
import { deepStrictEqual } from "node:assert/strict";
import type { GpuContext } from "../gpu/context.ts";
import { noGpu, randomArray, testContext } from "../gpu/test_utils.ts";
import { qkNormRopeKvFits } from "../kernels/qk_norm_rope/qk_norm_rope_kv.ts";
import { initQwen3Weights } from "./init.ts";
import { DECODE_OUTPUTS, decodeStep, TINY_CONFIG } from "./_decoder_test_utils.ts";
import type { GpuModelWeights } from "./decoder_layer_webgpu.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";

/** `ctx` as seen by code asking the device for `maxStorageBuffersPerShaderStage`: `limit`. */
function limitedContext(ctx: GpuContext, limit: number): GpuContext {
  const bind = <T extends object>(target: T, over: Record<string | symbol, unknown>) =>
    new Proxy(target, {
      get(t, prop) {
        if (prop in over) return over[prop];
        const v = Reflect.get(t, prop, t);
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
  const limits = bind(ctx.device.limits, { maxStorageBuffersPerShaderStage: limit });
  return bind(ctx, { device: bind(ctx.device, { limits }) });
}

Deno.test({
  name: "encodeDecoderLayer() decodes identically with and without the KV append folded in",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(
      ctx,
      TINY_CONFIG,
      initQwen3Weights(TINY_CONFIG, { seed: 1, std: 0.2 }),
    );
    try {
      const limited = limitedContext(ctx, 8);
      if (qkNormRopeKvFits(limited)) throw new Error("the limited context should not fit");
      const unfused: GpuModelWeights = {
        ctx: limited,
        config: model.config,
        embedTokens: model.embedTokens,
        lmHead: model.lmHead,
        norm: model.norm,
        layers: model.layers,
        ropeTable: model.ropeTable,
        adapters: model.adapters,
      };
      const want = (await decodeStep(unfused, 2)).outputs;
      const got = (await decodeStep(model, 2)).outputs;
      const [, , , , , vCache, mask] = got;
      // Not vacuous: the step wrote slot 5 of both rows (and the values there are the new ones).
      deepStrictEqual(mask.filter((m) => m === 1).length, 2 * 6, "mask");
      const v0 = randomArray(2 * 16 * 24, 2);
      if (new Float32Array(vCache.buffer)[5 * 24] === v0[5 * 24]) throw new Error("v not appended");
      DECODE_OUTPUTS.forEach((name, i) => deepStrictEqual(got[i], want[i], name));
      console.log(
        `decode step: fused KV append ${
          qkNormRopeKvFits(ctx) ? "taken" : "not available"
        }; output, caches and mask bit-identical`,
      );
    } finally {
      model.dispose();
    }
  },
});
