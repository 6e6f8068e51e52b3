import assert from "node:assert/strict";
import { readQwen3Config } from "../model/config.ts";
import { checkLoraFits } from "../model/adapter_types.ts";
import { TINY_FIXTURE } from "../internal/test_utils.ts";
import { createHilo, describeHilo, hiloConfig, hiloParameterCounts } from "./hilo.ts";
import { parseLayerSchedule } from "./hilo_schedule.ts";

Deno.test("parseLayerSchedule() expands blocks, uniform, numbers and lists", () => {
  assert.deepEqual(parseLayerSchedule("2-4-6-8", 8), [2, 2, 4, 4, 6, 6, 8, 8]);
  assert.deepEqual(parseLayerSchedule("8-6-4-2", 4), [8, 6, 4, 2]);
  // 28 layers (Qwen3-0.6B) in 4 blocks of 7.
  const q = parseLayerSchedule("2-4-6-8", 28);
  assert.deepEqual([q[0], q[6], q[7], q[13], q[14], q[20], q[21], q[27]], [2, 2, 4, 4, 6, 6, 8, 8]);
  // 6 layers, 4 blocks: sizes 2, 1, 2, 1 (⌊l·4/6⌋ = 0 0 1 2 2 3).
  assert.deepEqual(parseLayerSchedule("2-4-6-8", 6), [2, 2, 4, 6, 6, 8]);
  assert.deepEqual(parseLayerSchedule("uniform:4", 3), [4, 4, 4]);
  assert.deepEqual(parseLayerSchedule("uniform:16", 2), [16, 16]);
  assert.deepEqual(parseLayerSchedule(3, 2), [3, 3]);
  assert.deepEqual(parseLayerSchedule([1, 5], 2), [1, 5]);
});

Deno.test("parseLayerSchedule() names the schedule and value it rejects", () => {
  assert.throws(() => parseLayerSchedule("2-x", 4, { name: "rank" }), /rank schedule.*"2-x"/);
  assert.throws(() => parseLayerSchedule("uniform:0", 4), /positive integer.*"uniform:0"/);
  assert.throws(
    () => parseLayerSchedule([1, 2, 3], 2, { name: "experts" }),
    /experts.*length is 3/,
  );
  assert.throws(() => parseLayerSchedule([1, 2.5], 2), /positive integer/);
});

Deno.test("hiloConfig() builds per-layer entries with fixed or rank-proportional alpha", () => {
  const c = hiloConfig({ numHiddenLayers: 4 }, { experts: "8-6-4-2", rank: "2-4-6-8" });
  assert.deepEqual(c.layers[0], { experts: 8, rank: 2, alpha: 16, topK: 2 });
  assert.deepEqual(c.layers[3], { experts: 2, rank: 8, alpha: 16, topK: 2 });
  const p = hiloConfig({ numHiddenLayers: 2 }, {
    experts: [1, 3],
    rank: "2-4",
    alpha: { perRank: 2 },
  });
  // E = 1 defaults to top-1; α = 2·r.
  assert.deepEqual(p.layers, [
    { experts: 1, rank: 2, alpha: 4, topK: 1 },
    { experts: 3, rank: 4, alpha: 8, topK: 2 },
  ]);
  assert.throws(
    () => hiloConfig({ numHiddenLayers: 2 }, { experts: "2-4", topK: 3 }),
    /option "topK" of layer 0 must be at most its expert count 2 \(option "experts"\): current value is 3/,
  );
  assert.throws(() => hiloConfig({ numHiddenLayers: 2 }, { topP: 1.5 }), /"topP".*1\.5/);
  // The documented defaults: 4 experts of rank 8, α 16, top-2.
  assert.deepEqual(hiloConfig({ numHiddenLayers: 1 }).layers, [
    { experts: 4, rank: 8, alpha: 16, topK: 2 },
  ]);
});

Deno.test("hiloParameterCounts() counts the k largest experts of a module with mixed ranks", () => {
  const expert = (r: number) => ({
    a: new Float32Array(r * 8),
    b: new Float32Array(r * 8),
    r,
    scale: 1,
  });
  const router = { weight: new Float32Array(3 * 8), activation: "top-k", topK: 1, topP: 1 };
  const lora = {
    modules: [{
      inFeatures: 8,
      outFeatures: 8,
      experts: [expert(2), expert(4), expert(1)],
      router,
    }],
  };
  // By hand: trainable 16·(2 + 4 + 1) + 24 = 136; active 24 (router) + 16·4 (the rank-4 expert).
  assert.deepEqual(hiloParameterCounts(lora as never), { trainable: 136, activePerToken: 88 });
});

// The fixture: hidden 64, intermediate 128, q 4·16 = 64, k/v 2·16 = 32. Over the seven
// projections Σ (in + out) = 128 + 96 + 96 + 128 + 192 + 192 + 192 = 1024 and Σ in = 6·64 + 128 =
// 512. Per layer: trainable E·r·1024 + [E > 1]·E·512, active k·r·1024 + [E > 1]·E·512.
Deno.test("hiloParameterCounts() equals the formula for several schedules", async () => {
  const model = await readQwen3Config(TINY_FIXTURE);
  assert.equal(model.hiddenSize, 64);
  const cases = [
    // experts, rank, topK → per-layer [trainable, active] by hand.
    {
      o: { experts: "2-4", rank: "4-8" },
      want: [2 * 4 * 1024 + 2 * 512, 4 * 8 * 1024 + 4 * 512],
      act: [2 * 4 * 1024 + 2 * 512, 2 * 8 * 1024 + 4 * 512],
    },
    {
      o: { experts: "uniform:4", rank: "uniform:2", topK: 1 },
      want: [4 * 2 * 1024 + 4 * 512, 4 * 2 * 1024 + 4 * 512],
      act: [2 * 1024 + 4 * 512, 2 * 1024 + 4 * 512],
    },
    // E = 1: plain LoRA, no router, everything active.
    { o: { experts: [1, 1], rank: [8, 8] }, want: [8 * 1024, 8 * 1024], act: [8 * 1024, 8 * 1024] },
    // Top-p: every expert counts as active (upper bound).
    {
      o: { experts: [1, 3], rank: [2, 6], activation: "top-p" as const },
      want: [2 * 1024, 3 * 6 * 1024 + 3 * 512],
      act: [2 * 1024, 3 * 6 * 1024 + 3 * 512],
    },
  ];
  for (const { o, want, act } of cases) {
    const lora = createHilo(hiloConfig(model, o), model, { seed: 0 });
    checkLoraFits(lora, model);
    const got = hiloParameterCounts(lora);
    assert.deepEqual(
      got,
      { trainable: want[0] + want[1], activePerToken: act[0] + act[1] },
      JSON.stringify(o),
    );
  }
  // Only the attention projections: Σ (in + out) = 448, Σ in = 256.
  const attn = createHilo(
    hiloConfig(model, {
      experts: "2-2",
      rank: "4-4",
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"],
    }),
    model,
    { seed: 0 },
  );
  assert.equal(hiloParameterCounts(attn).trainable, 2 * (2 * 4 * 448 + 2 * 256));
});

Deno.test("createHilo() initialises A and the router Kaiming-uniform and B zero, reproducibly", async () => {
  const model = await readQwen3Config(TINY_FIXTURE);
  const cfg = hiloConfig(model, { experts: "2-4", rank: "2-4" });
  const a = createHilo(cfg, model, { seed: 3 });
  const b = createHilo(cfg, model, { seed: 3 });
  const m = a.modules[13]; // layer 1 down_proj: in 128
  assert.equal(m.name, "model.layers.1.mlp.down_proj");
  assert.equal(m.experts.length, 4);
  const bound = 1 / Math.sqrt(128);
  for (const w of [m.experts[3].a, m.router!.weight]) {
    const max = Math.max(...w.map(Math.abs));
    assert.ok(max <= bound && max > 0.9 * bound, `bound ${max} vs ${bound}`);
  }
  assert.ok(m.experts.every((e) => e.b.every((v) => v === 0)));
  assert.equal(m.experts[0].scale, 16 / 4);
  assert.deepEqual(a.modules[13].router!.weight, b.modules[13].router!.weight);
  assert.equal(a.modules[0].router!.topK, 2);
  assert.deepEqual(a.hilo!.layers, cfg.layers);
});

Deno.test("describeHilo() lists each layer and the counts", async () => {
  const model = await readQwen3Config(TINY_FIXTURE);
  const lora = createHilo(hiloConfig(model, { experts: "2-4", rank: "4-8" }), model, { seed: 0 });
  const lines = describeHilo(lora);
  assert.equal(lines[1], "  layer 0: 2 experts of rank 4, alpha 16, top-2");
  const { trainable, activePerToken } = hiloParameterCounts(lora);
  assert.equal(
    lines.at(-1),
    `trainable parameters ${trainable}, active per token ${activePerToken}`,
  );
});
