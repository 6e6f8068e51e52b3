import assert from "node:assert/strict";
import type { Qwen3Config } from "../model/config.ts";
import { expectError } from "../internal/test_utils.ts";
import {
  loraConfig,
  loraConfigToJson,
  loraModuleHyperparameters,
  loraModuleName,
  parseLoraConfig,
  projectionFeatures,
  resolveLoraModules,
} from "./lora_config.ts";

// The fixture's shapes (qwen3-tiny): 3 layers here so layer selection has something to select.
const model = {
  numHiddenLayers: 3,
  hiddenSize: 64,
  intermediateSize: 128,
  headDim: 16,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
} as Qwen3Config;

const FILE = "x/adapter_config.json";

Deno.test("parseLoraConfig() reads the fixture's PEFT adapter_config.json", async () => {
  const path = "tests/fixtures/qwen3-tiny/adapter/adapter_config.json";
  const cfg = parseLoraConfig(JSON.parse(await Deno.readTextFile(path)), path);
  assert.equal(cfg.r, 4);
  assert.equal(cfg.loraAlpha, 8);
  assert.equal(cfg.loraDropout, 0);
  assert.equal(cfg.useRslora, false);
  assert.equal(cfg.initLoraWeights, false);
  assert.deepEqual([...cfg.targetModules].sort(), [
    "down_proj",
    "gate_proj",
    "k_proj",
    "o_proj",
    "q_proj",
    "up_proj",
    "v_proj",
  ]);
});

Deno.test("parseLoraConfig() fills PEFT's defaults", () => {
  const cfg = parseLoraConfig({}, FILE);
  assert.equal(cfg.r, 8);
  assert.equal(cfg.loraAlpha, 8);
  assert.deepEqual(cfg.targetModules, ["q_proj", "v_proj"]);
  assert.equal(cfg.initLoraWeights, true);
  assert.equal(cfg.excludeModules, null);
  assert.equal(cfg.layersToTransform, null);
});

Deno.test("parseLoraConfig() rejects bad values naming the file and key", async () => {
  const cases: [Record<string, unknown>, typeof Error, string[]][] = [
    [{ r: 0 }, RangeError, ['key "r" must be a positive integer: current value is 0']],
    [{ r: "4" }, TypeError, ['key "r"', 'current value is "4"']],
    [{ lora_alpha: -1 }, RangeError, ['key "lora_alpha"', "-1"]],
    [{ lora_dropout: 1 }, RangeError, ['key "lora_dropout"', "[0, 1)"]],
    [{ target_modules: [] }, RangeError, ['key "target_modules"']],
    [{ target_modules: [3] }, TypeError, ['key "target_modules"']],
    [{ rank_pattern: { q_proj: 2.5 } }, RangeError, ['key "rank_pattern.q_proj"', "2.5"]],
    [{ alpha_pattern: { "q_proj(": 2 } }, SyntaxError, ['key "alpha_pattern.q_proj("']],
    [{ use_dora: true }, RangeError, ['key "use_dora"', "does not implement"]],
    [{ modules_to_save: ["lm_head"] }, RangeError, ['key "modules_to_save"']],
    [{ bias: "all" }, RangeError, ['key "bias" must be "none"']],
    [{ peft_type: "IA3" }, RangeError, ['key "peft_type"']],
    [{ init_lora_weights: "pissa" }, RangeError, ['key "init_lora_weights"', '"pissa"']],
    [{ use_rslora: "yes" }, TypeError, ['key "use_rslora"']],
    [{ layers_to_transform: [-1] }, TypeError, ['key "layers_to_transform"']],
  ];
  for (const [json, type, includes] of cases) {
    await expectError(() => parseLoraConfig(json, FILE), {
      type,
      includes: [`Cannot load LoRA config "${FILE}"`, ...includes],
    });
  }
  await expectError(() => loraConfig({ r: -2 }), {
    type: RangeError,
    includes: ['Cannot load LoRA config "options": key "r"'],
  });
  await expectError(() => loraConfig({ loraAlpha: 0 }), {
    type: RangeError,
    includes: ['key "loraAlpha"'],
  });
});

Deno.test("loraConfigToJson() round-trips through parseLoraConfig()", () => {
  const cfg = loraConfig({
    r: 6,
    loraAlpha: 12,
    targetModules: ["q_proj", "down_proj"],
    excludeModules: ["model.layers.2.mlp.down_proj"],
    layersToTransform: [0, 2],
    layersPattern: ["layers"],
    rankPattern: { "layers.0.self_attn.q_proj": 3 },
    alphaPattern: { down_proj: 4 },
    useRslora: true,
    loraDropout: 0.1,
    initLoraWeights: "gaussian",
    baseModelNameOrPath: "Qwen/Qwen3-0.6B",
  });
  const json = loraConfigToJson(cfg);
  assert.equal(json.peft_type, "LORA");
  assert.deepEqual(parseLoraConfig(JSON.parse(JSON.stringify(json)), FILE), cfg);
});

Deno.test("loraModuleHyperparameters() follows PEFT's pattern rule (.*\\.)?(key)$, first key wins", () => {
  const cfg = loraConfig({
    r: 4,
    loraAlpha: 8,
    targetModules: "all-linear",
    rankPattern: {
      "layers.1.self_attn.q_proj": 16, // one module
      "model.layers.2.*": 2, // a regex over layer 2
      q_proj: 8, // every other q_proj (the layer-1 key above comes first)
      _proj: 99, // must match nothing: "_proj" is not a dot-started suffix of "q_proj"
    },
    alphaPattern: { "mlp\\.(gate|up)_proj": 32 },
  });
  const hp = (l: number, t: Parameters<typeof loraModuleName>[1]) =>
    loraModuleHyperparameters(cfg, loraModuleName(l, t))!;
  assert.deepEqual(hp(1, "q_proj"), { r: 16, alpha: 8, scale: 0.5 });
  assert.deepEqual(hp(0, "q_proj"), { r: 8, alpha: 8, scale: 1 });
  assert.deepEqual(hp(2, "q_proj"), { r: 2, alpha: 8, scale: 4 });
  assert.deepEqual(hp(0, "k_proj"), { r: 4, alpha: 8, scale: 2 });
  assert.deepEqual(hp(0, "gate_proj"), { r: 4, alpha: 32, scale: 8 });
  assert.deepEqual(hp(2, "up_proj"), { r: 2, alpha: 32, scale: 16 });
  assert.deepEqual(hp(1, "down_proj"), { r: 4, alpha: 8, scale: 2 });
  // rsLoRA: alpha / sqrt(r).
  const rs = loraConfig({ r: 16, loraAlpha: 8, useRslora: true });
  assert.equal(loraModuleHyperparameters(rs, loraModuleName(0, "q_proj"))!.scale, 2);
  // A target_modules list entry matches a whole name or a dot-started suffix only (PEFT's
  // check_target_module_exists): "proj" and "_proj" are neither for "…self_attn.q_proj".
  for (const t of ["proj", "_proj"]) {
    const cfgT = loraConfig({ targetModules: [t] });
    assert.equal(loraModuleHyperparameters(cfgT, loraModuleName(0, "q_proj")), null, t);
  }
});

Deno.test("resolveLoraModules() applies target_modules, exclude_modules and layers_to_transform", () => {
  const names = (cfg: Parameters<typeof loraConfig>[0]) =>
    resolveLoraModules(loraConfig(cfg), model).map((m) => m.name);
  assert.deepEqual(names({ targetModules: ["k_proj"] }), [
    "model.layers.0.self_attn.k_proj",
    "model.layers.1.self_attn.k_proj",
    "model.layers.2.self_attn.k_proj",
  ]);
  assert.equal(names({ targetModules: "all-linear" }).length, 21);
  // A string is a full-name regex: "q_proj" alone matches nothing, so it is an error.
  assert.deepEqual(names({ targetModules: ".*\\.1\\.mlp\\.(up|down)_proj" }), [
    "model.layers.1.mlp.up_proj",
    "model.layers.1.mlp.down_proj",
  ]);
  // A list entry may be a whole module name.
  assert.deepEqual(names({ targetModules: ["model.layers.2.self_attn.o_proj"] }), [
    "model.layers.2.self_attn.o_proj",
  ]);
  assert.deepEqual(
    names({
      targetModules: ["q_proj", "v_proj"],
      excludeModules: ["model.layers.0.self_attn.v_proj"],
      layersToTransform: [0, 1],
    }),
    [
      "model.layers.0.self_attn.q_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ],
  );
  assert.deepEqual(
    names({ targetModules: ["o_proj"], layersToTransform: [2], layersPattern: ["layers"] }),
    ["model.layers.2.self_attn.o_proj"],
  );
  const [m] = resolveLoraModules(loraConfig({ targetModules: ["down_proj"], r: 2 }), model);
  assert.deepEqual(
    [m.layer, m.target, m.inFeatures, m.outFeatures, m.r, m.alpha, m.scale],
    [0, "down_proj", 128, 64, 2, 8, 4],
  );
});

Deno.test("resolveLoraModules() rejects target modules halo cannot adapt", async () => {
  await expectError(
    () =>
      resolveLoraModules(loraConfig({ targetModules: ["q_proj", "lm_head"] }), model, {
        source: FILE,
      }),
    {
      type: RangeError,
      includes: [`Cannot apply LoRA config "${FILE}"`, 'key "target_modules"', '"lm_head"'],
    },
  );
  await expectError(() => resolveLoraModules(loraConfig({ targetModules: "q_proj" }), model), {
    type: RangeError,
    includes: ['key "target_modules" selects no projection', '"q_proj"'],
  });
  await expectError(
    () =>
      resolveLoraModules(loraConfig({ targetModules: ["q_proj"], layersToTransform: [7] }), model),
    { type: RangeError, includes: ["selects no projection"] },
  );
});

Deno.test("projectionFeatures() gives each projection's [in, out]", () => {
  assert.deepEqual(projectionFeatures(model, "q_proj"), [64, 64]);
  assert.deepEqual(projectionFeatures(model, "v_proj"), [64, 32]);
  assert.deepEqual(projectionFeatures(model, "o_proj"), [64, 64]);
  assert.deepEqual(projectionFeatures(model, "up_proj"), [64, 128]);
  assert.deepEqual(projectionFeatures(model, "down_proj"), [128, 64]);
});
