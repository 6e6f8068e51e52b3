// The decoder layer's decode step with the RMSNorms and the SwiGLU folded into the following
// matvecs (`fusePrologues: true`, the default on hardware adapters) gives the same layer output, activations and KV cache as with them as
// their own dispatches (`fusePrologues: false`), bit for bit (tolerance 0: the prologues repeat
// rms_norm.wgsl's and swiglu.wgsl's arithmetic), without adapters, with LoRA on every projection
// and with HILO (routers read the written x1 / x2 / act), for 1, 3 and 9 rows (two row blocks of
// the matvec), with weights split into row blocks (only the first block's dispatch writes x), and
// with f16 weights; and records 3 dispatches fewer. In a prefill, the tiles route (training's)
// records the same ops as without the option, the matvec route (≤ 32 rows) fuses them.
import { deepStrictEqual, notDeepStrictEqual } from "node:assert/strict";
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, randomArray, recordPass, testContext } from "../gpu/test_utils.ts";
import type { Lora } from "./adapter_types.ts";
import {
  counting,
  DECODE_OUTPUTS,
  decodeStep,
  TINY_CONFIG as CONFIG,
} from "./_decoder_test_utils.ts";
import { encodeDecoderLayer } from "./decoder_layer_webgpu.ts";
import { initQwen3Weights } from "./init.ts";
import { WebGpuQwen3, type WebGpuQwen3Options } from "./qwen3_webgpu.ts";

/** Adapters on every projection with non-zero B (so they change the output). */
function adapters(kind: "lora" | "hilo"): Lora {
  const lora = kind === "lora"
    ? createLora(
      loraConfig({ r: 4, targetModules: "all-linear", initLoraWeights: false }),
      CONFIG,
      { seed: 3 },
    )
    : createHilo(hiloConfig(CONFIG, { experts: "uniform:3", rank: "uniform:4" }), CONFIG, {
      seed: 4,
    });
  let s = 100;
  for (const m of lora.modules) {
    for (const e of m.experts) e.b.set(randomArray(e.b.length, s++, -0.2, 0.2));
    if (m.router) m.router.weight.set(randomArray(m.router.weight.length, s++, -0.5, 0.5));
  }
  return lora;
}

Deno.test({
  name: "encodeDecoderLayer() decode step: fused RMSNorm / SwiGLU prologues equal the separate " +
    "dispatches bit for bit (no adapters, LoRA, HILO; row blocks; f16 weights)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const f16 = ctx.gpu.features.has("shader-f16");
    const variants: { name: string; options: WebGpuQwen3Options; lora?: "lora" | "hilo" }[] = [
      { name: "base", options: {} },
      { name: "LoRA", options: {}, lora: "lora" },
      { name: "HILO", options: {}, lora: "hilo" },
      // 16 rows of 48 floats a block: q_proj in 3 dispatches, gate_proj in 5.
      { name: "row blocks + HILO", options: { maxChunkBytes: 16 * 48 * 4 }, lora: "hilo" },
    ];
    if (f16) {
      variants.push({ name: "f16 weights + LoRA", options: { weightDtype: "f16" }, lora: "lora" });
    } else console.log("the adapter has no shader-f16: f16 weights not run");
    const weights = initQwen3Weights(CONFIG, { seed: 1, std: 0.2 });
    for (const v of variants) {
      const model = new WebGpuQwen3(ctx, CONFIG, weights, v.options);
      try {
        if (v.lora) model.setAdapters(adapters(v.lora));
        for (const rows of [1, 3, 9]) {
          const want = await decodeStep(model, rows, false);
          const got = await decodeStep(model, rows, true);
          DECODE_OUTPUTS.forEach((name, i) => {
            deepStrictEqual(got.outputs[i], want.outputs[i], `${v.name}, ${rows} rows: ${name}`);
          });
          // Not vacuous: the layer changed its input.
          const h0 = new Uint32Array(randomArray(rows * CONFIG.hiddenSize, 3, -2, 2).buffer);
          notDeepStrictEqual(got.outputs[0], h0, "the layer output is its input");
          deepStrictEqual(want.dispatches - got.dispatches, 3, `${v.name}: dispatches saved`);
          console.log(
            `${v.name}, ${rows} rows: bit-identical; dispatches ${want.dispatches} -> ` +
              `${got.dispatches}`,
          );
        }
      } finally {
        model.dispose();
      }
    }
  },
});

Deno.test({
  name: "encodeDecoderLayer() prefill with fusePrologues: the tiles route records the separate " +
    "ops (same output), the matvec route fuses them (same output)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const model = new WebGpuQwen3(ctx, CONFIG, initQwen3Weights(CONFIG, { seed: 2, std: 0.2 }));
    try {
      model.setAdapters(adapters("lora"));
      const [rows, tokens, h, inter] = [2, 5, CONFIG.hiddenSize, CONFIG.intermediateSize];
      const n = rows * tokens;
      const [qd, kvd] = [48, 24];
      const run = async (matvec: boolean, fusePrologues: boolean) => {
        const f = (k: number, label: string) => ctx.createBuffer(4 * n * k, label);
        const acts = {
          ...{ x1: f(h, "x1"), x2: f(h, "x2"), qRaw: f(qd, "qRaw"), kRaw: f(kvd, "kRaw") },
          ...{ q: f(qd, "q"), k: f(kvd, "k"), v: f(kvd, "v"), att: f(qd, "att") },
          ...{ gate: f(inter, "gate"), up: f(inter, "up"), act: f(inter, "act") },
          loraScratch: f(model.adapters!.maxRank, "lora"),
        };
        const hIn = ctx.upload(randomArray(n * h, 7, -2, 2), "h");
        const positions = Uint32Array.from({ length: n }, (_, i) => i % tokens);
        let dispatches = 0;
        const enc = recordPass(ctx, (pass) => {
          encodeDecoderLayer(counting(pass, () => dispatches++), model, {
            layer: 0,
            hIn,
            acts,
            rows,
            tokens,
            positions: ctx.upload(positions, "positions"),
            mask: ctx.upload(new Uint32Array(n).fill(1), "mask"),
            matvec,
            fusePrologues,
          });
        });
        const read = [hIn, acts.x1, acts.x2, acts.act];
        const bytes = await readback(
          ctx,
          read.map((buffer) => ({ buffer, offset: 0, size: buffer.size })),
          enc,
        );
        return { outputs: bytes.map((b) => new Uint32Array(b)), dispatches };
      };
      for (const matvec of [false, true]) {
        const want = await run(matvec, false);
        const got = await run(matvec, true);
        ["layer output", "x1", "x2", "act"].forEach((name, i) => {
          deepStrictEqual(got.outputs[i], want.outputs[i], `matvec ${matvec}: ${name}`);
        });
        deepStrictEqual(want.dispatches - got.dispatches, matvec ? 3 : 0, `matvec ${matvec}`);
      }
    } finally {
      model.dispose();
    }
  },
});
