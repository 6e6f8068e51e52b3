import assert from "node:assert/strict";
import type { Qwen3Config } from "../model/config.ts";
import { expectError } from "../internal/test_utils.ts";
import { checkLoraFits, createLora, loraParameterCount, loraTensorName } from "./lora.ts";
import { loraConfig } from "./lora_config.ts";

const model = {
  numHiddenLayers: 2,
  hiddenSize: 64,
  intermediateSize: 128,
  headDim: 16,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
} as Qwen3Config;

function stats(a: Float32Array): { mean: number; variance: number; maxAbs: number } {
  let s = 0;
  let s2 = 0;
  let maxAbs = 0;
  for (const x of a) {
    s += x;
    s2 += x * x;
    maxAbs = Math.max(maxAbs, Math.abs(x));
  }
  const mean = s / a.length;
  return { mean, variance: s2 / a.length - mean * mean, maxAbs };
}

Deno.test("createLora() initialises A Kaiming-uniform with bound 1/sqrt(in) and B zero", () => {
  const lora = createLora(loraConfig({ r: 8, loraAlpha: 16, targetModules: "all-linear" }), model, {
    seed: 1,
  });
  assert.equal(lora.modules.length, 14);
  for (const m of lora.modules) {
    const [e] = m.experts;
    assert.equal(e.r, 8);
    assert.equal(e.scale, 2);
    assert.equal(e.a.length, 8 * m.inFeatures);
    assert.equal(e.b.length, m.outFeatures * 8);
    assert.ok(e.b.every((x) => x === 0), `${m.name}: B must start at zero`);
    // Uniform(−b, b) with b = 1/sqrt(in) has variance b²/3. With 512..1024 samples the sample
    // variance has a relative standard error of ~sqrt(0.8/n) ≈ 3–4%; allow 20% (5 sigma).
    const bound = 1 / Math.sqrt(m.inFeatures);
    const { mean, variance, maxAbs } = stats(e.a);
    assert.ok(maxAbs <= bound, `${m.name}: |A| ${maxAbs} exceeds ${bound}`);
    assert.ok(maxAbs > 0.95 * bound, `${m.name}: A does not fill its range`);
    assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.2, `${m.name}: var ${variance}`);
    assert.ok(Math.abs(mean) < 5 * bound / Math.sqrt(3 * e.a.length), `${m.name}: mean ${mean}`);
  }
});

Deno.test("createLora() is deterministic in its seed", () => {
  const cfg = loraConfig({ r: 2 });
  const a = createLora(cfg, model, { seed: 7 });
  const b = createLora(cfg, model, { seed: 7 });
  const c = createLora(cfg, model, { seed: 8 });
  assert.deepEqual(a.modules[0].experts[0].a, b.modules[0].experts[0].a);
  assert.notDeepEqual(a.modules[0].experts[0].a, c.modules[0].experts[0].a);
});

Deno.test("createLora() supports gaussian and nn.Linear (false) initialisation", () => {
  const g = createLora(loraConfig({ r: 4, initLoraWeights: "gaussian" }), model, { seed: 2 });
  // std 1/r = 0.25; 1024 samples: sample variance within ±20% (≈ 4.5 sigma of sqrt(2/1024)).
  const all = new Float32Array(g.modules.flatMap((m) => [...m.experts[0].a]));
  assert.ok(Math.abs(stats(all).variance / (1 / 16) - 1) < 0.2, `var ${stats(all).variance}`);
  assert.ok(g.modules.every((m) => m.experts[0].b.every((x) => x === 0)));
  const f = createLora(loraConfig({ r: 4, initLoraWeights: false }), model, { seed: 2 });
  for (const m of f.modules) {
    const { maxAbs } = stats(m.experts[0].b);
    assert.ok(maxAbs > 0 && maxAbs <= 1 / Math.sqrt(4), `${m.name}: B bound 1/sqrt(r)`);
  }
});

Deno.test("createLora() builds several experts of different ranks per projection", () => {
  const cfg = loraConfig({ r: 4, loraAlpha: 8, targetModules: ["q_proj", "down_proj"] });
  const lora = createLora(cfg, model, {
    seed: 3,
    expertRanks: (m) => m.layer === 0 ? [2, 4, 8] : [m.r],
  });
  const q0 = lora.modules.find((m) => m.name === "model.layers.0.self_attn.q_proj")!;
  assert.deepEqual(q0.experts.map((e) => [e.r, e.scale]), [[2, 4], [4, 2], [8, 1]]);
  assert.equal(q0.experts[2].a.length, 8 * 64);
  const d1 = lora.modules.find((m) => m.name === "model.layers.1.mlp.down_proj")!;
  assert.equal(d1.experts.length, 1);
  // Σ r·(in + out): layer 0 q (2+4+8)·(64+64) + down (2+4+8)·(128+64); layer 1 4·128 + 4·192.
  assert.equal(loraParameterCount(lora), 14 * 128 + 14 * 192 + 4 * 128 + 4 * 192);
  assert.equal(
    loraTensorName(q0, { matrix: "B", expert: 2 }),
    `${q0.name}.experts.2.lora_B.weight`,
  );
  assert.equal(loraTensorName(d1, { matrix: "A" }), `${d1.name}.lora_A.weight`);
  assert.throws(() => createLora(cfg, model, { seed: 3, expertRanks: () => [] }), RangeError);
  assert.throws(() => createLora(cfg, model, { seed: 3, expertRanks: () => [0] }), RangeError);
});

Deno.test("checkLoraFits() names the module that does not fit", async () => {
  const fresh = () => createLora(loraConfig({ r: 2 }), model, { seed: 4 });
  checkLoraFits(fresh(), model);
  const short = fresh();
  short.modules[1].experts[0].a = new Float32Array(10);
  await expectError(() => checkLoraFits(short, model, { source: "x/adapter" }), {
    type: RangeError,
    includes: [
      'Cannot use LoRA adapter "x/adapter"',
      '"model.layers.0.self_attn.v_proj" expert 0',
      "A must be a Float32Array of shape [2, 64]",
      "current length is 10",
    ],
  });
  const wrongB = fresh();
  wrongB.modules[0].experts[0].b = new Float32Array(3);
  await expectError(() => checkLoraFits(wrongB, model), {
    type: RangeError,
    includes: ["B must be a Float32Array of shape [64, 2]"],
  });
  const renamed = fresh();
  renamed.modules[0].name = "model.layers.0.self_attn.q";
  await expectError(() => checkLoraFits(renamed, model), {
    type: RangeError,
    includes: ['module "model.layers.0.self_attn.q"', "is not a projection halo can adapt"],
  });
  const deep = createLora(loraConfig({ r: 2 }), { ...model, numHiddenLayers: 3 }, { seed: 4 });
  await expectError(() => checkLoraFits(deep, model), {
    type: RangeError,
    includes: ['"model.layers.2.self_attn.q_proj" is in layer 2', "has 2 layers"],
  });
  const wide = createLora(loraConfig({ r: 2 }), { ...model, hiddenSize: 32 }, { seed: 4 });
  await expectError(() => checkLoraFits(wide, model), {
    type: RangeError,
    includes: ["must map 64 → 64 features: current value is 32 → 64"],
  });
});
