import assert from "node:assert/strict";
import { assertClose } from "../gpu/test_utils.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { readQwen3Config } from "./config.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import { loadQwen3Weights, type Qwen3LayerWeights, type Qwen3Weights } from "./weights.ts";
import { assertArrayEqual, expectError, fixtureDir } from "../internal/test_utils.ts";

// The merged-weight reference holds W + Σ scale·B·A in float32 (relative rounding ~6e-8 per
// weight), so the two paths differ by ~1e-7 relative; 1e-5 leaves room while any wrong scale,
// transposition or missing expert gives errors of order 1e-2 or more.
const MERGE_TOL = 1e-5;

const dir = fixtureDir();
const config = await readQwen3Config(dir);
const weights = await loadQwen3Weights(dir, config);
const input = { inputIds: [[5, 17, 300, 42, 9], [250, 3, 3, 128, 1]] };

const FIELD = {
  q_proj: "qProj",
  k_proj: "kProj",
  v_proj: "vProj",
  o_proj: "oProj",
  gate_proj: "gateProj",
  up_proj: "upProj",
  down_proj: "downProj",
} as const;

Deno.test("CpuQwen3.setAdapters() equals the base model with merged weights W + Σ scale·B·A", async () => {
  const lora = createLora(
    loraConfig({ r: 3, loraAlpha: 5, targetModules: "all-linear", initLoraWeights: false }),
    config,
    { seed: 9, expertRanks: (m) => (m.layer === 0 ? [2, 5] : [m.r]) },
  );
  const merged: Qwen3Weights = {
    ...weights,
    layers: weights.layers.map((l) => ({ ...l })),
  };
  for (const m of lora.modules) {
    const layer = merged.layers[m.layer];
    const key = FIELD[m.target] as keyof Qwen3LayerWeights;
    const w = Float64Array.from(layer[key]);
    for (const e of m.experts) {
      for (let o = 0; o < m.outFeatures; o++) {
        for (let i = 0; i < m.inFeatures; i++) {
          let s = 0;
          for (let k = 0; k < e.r; k++) s += e.b[o * e.r + k] * e.a[k * m.inFeatures + i];
          w[o * m.inFeatures + i] += e.scale * s;
        }
      }
    }
    layer[key] = Float32Array.from(w);
  }
  const adapted = new CpuQwen3(config, weights);
  adapted.setAdapters(lora);
  const got = await adapted.forward(input);
  const want = await new CpuQwen3(config, merged).forward(input);
  const err = assertClose(got.logits, want.logits, MERGE_TOL, "adapted vs merged logits");
  const base = await new CpuQwen3(config, weights).forward(input);
  assert.throws(() => assertClose(got.logits, base.logits, 100 * MERGE_TOL, "base"));
  console.log(`adapted vs merged weights: rel err ${err.toExponential(2)}`);
});

Deno.test("CpuQwen3.setAdapters() with fresh adapters (B = 0) leaves the outputs unchanged", async () => {
  const model = new CpuQwen3(config, weights);
  const base = await model.tokenLogprobs(input);
  model.setAdapters(
    createLora(loraConfig({ r: 4, targetModules: "all-linear" }), config, { seed: 1 }),
  );
  assert.equal(model.adapters?.modules.length, 7 * config.numHiddenLayers);
  assertArrayEqual((await model.tokenLogprobs(input)).logprobs, base.logprobs, "logprobs");
});

Deno.test("CpuQwen3.setAdapters() rejects adapters that do not fit", async () => {
  const model = new CpuQwen3(config, weights);
  const lora = createLora(loraConfig({ r: 2 }), config, { seed: 1 });
  lora.modules[0].experts[0].b = new Float32Array(7);
  await expectError(() => model.setAdapters(lora), {
    type: RangeError,
    includes: ['"model.layers.0.self_attn.q_proj" expert 0', "B must be", "current length is 7"],
  });
  assert.equal(model.adapters, null);
});

Deno.test("CpuQwen3.trace() applies LoRA dropout only with a seed, deterministically", () => {
  const model = new CpuQwen3(config, weights);
  model.setAdapters(
    createLora(loraConfig({ r: 2, loraDropout: 0.5, initLoraWeights: false }), config, {
      seed: 2,
    }),
  );
  const evalMode = model.trace(input).logits;
  const a = model.trace(input, { dropoutSeed: 1 });
  const b = model.trace(input, { dropoutSeed: 1 }).logits;
  const c = model.trace(input, { dropoutSeed: 2 }).logits;
  assertArrayEqual(a.logits, b, "logits with the same dropout seed");
  assert.ok(a.logits.some((x, i) => !Object.is(x, c[i])), "seeds 1 and 2 give the same logits");
  assert.ok(
    a.logits.some((x, i) => !Object.is(x, evalMode[i])),
    "dropout did not change the logits",
  );
  // Inverted dropout: kept elements are scaled by 1 / (1 − p) = 2; about half are dropped.
  const mask = a.layers[0].lora.q_proj!.dropoutMask!;
  assert.ok(mask.every((x) => x === 0 || x === 2));
  const kept = mask.reduce((s, x) => s + (x > 0 ? 1 : 0), 0) / mask.length;
  assert.ok(Math.abs(kept - 0.5) < 0.1, `kept fraction ${kept}`);
  assert.equal(model.trace(input).layers[0].lora.q_proj!.dropoutMask, undefined);
});
