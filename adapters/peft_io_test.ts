import assert from "node:assert/strict";
import { type Qwen3Config, readQwen3Config } from "../model/config.ts";
import { openSafetensors, writeSafetensors } from "../internal/safetensors.ts";
import { assertArrayEqual, expectError, fixtureDir, withTempDir } from "../internal/test_utils.ts";
import { createLora, type Lora } from "./lora.ts";
import { loraConfig, loraConfigToJson } from "./lora_config.ts";
import { loadPeftAdapter, PEFT_PREFIX, savePeftAdapter } from "./peft_io.ts";

const dir = fixtureDir();
const fixtureModel = await readQwen3Config(dir);
// The synthetic tests use qwen3-tiny's shapes whatever $HALO_FIXTURE is.
const model = {
  numHiddenLayers: 2,
  hiddenSize: 64,
  intermediateSize: 128,
  headDim: 16,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
} as Qwen3Config;

Deno.test("loadPeftAdapter() reads the fixture's PEFT adapter with PEFT's names and shapes", async () => {
  const lora = await loadPeftAdapter(`${dir}/adapter`, fixtureModel);
  // The fixture's adapter (PEFT 0.21.0, made by make_fixtures.py, kept with the project's shared
  // fixtures in shared/fixtures/, not in this repository): r 4, lora_alpha 8, all seven
  // projections of every layer.
  assert.equal(lora.modules.length, 7 * fixtureModel.numHiddenLayers);
  // Independent reference: decode the bytes of the file by hand (PEFT saves float64 LoRA weights
  // for a float64 base model, float32 ones for a float32 base model).
  const file = await openSafetensors(`${dir}/adapter/adapter_model.safetensors`);
  try {
    for (const m of lora.modules) {
      const [e] = m.experts;
      assert.equal(e.r, 4);
      assert.equal(e.scale, 2); // lora_alpha 8 / r 4
      for (const [matrix, got] of [["A", e.a], ["B", e.b]] as const) {
        const name = `${PEFT_PREFIX}${m.name}.lora_${matrix}.weight`;
        const info = file.tensors.get(name)!;
        assert.ok(info.dtype === "F64" || info.dtype === "F32", `${name}: ${info.dtype}`);
        assert.deepEqual(info.shape, matrix === "A" ? [4, m.inFeatures] : [m.outFeatures, 4]);
        const bytes = file.readBytes(name);
        const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const want = info.dtype === "F64" ? new Float64Array(buffer) : new Float32Array(buffer);
        assertArrayEqual(got, Float32Array.from(want), name);
      }
    }
  } finally {
    file.close();
  }
});

function sameLora(a: Lora, b: Lora): void {
  assert.deepEqual(b.config, a.config);
  assert.equal(b.modules.length, a.modules.length);
  a.modules.forEach((m, i) => {
    const n = b.modules[i];
    assert.equal(n.name, m.name);
    assert.equal(n.experts[0].r, m.experts[0].r);
    assert.equal(n.experts[0].scale, m.experts[0].scale);
    // Bit-exact: compare the raw bits.
    assertArrayEqual(
      new Uint32Array(n.experts[0].a.buffer),
      new Uint32Array(m.experts[0].a.buffer),
      `${m.name} A`,
    );
    assertArrayEqual(
      new Uint32Array(n.experts[0].b.buffer),
      new Uint32Array(m.experts[0].b.buffer),
      `${m.name} B`,
    );
  });
}

Deno.test("savePeftAdapter() then loadPeftAdapter() round-trips bit-exactly, atomically", async () => {
  await withTempDir(async (tmp) => {
    const cfg = loraConfig({
      r: 4,
      loraAlpha: 8,
      targetModules: "all-linear",
      excludeModules: ["model.layers.1.mlp.up_proj"],
      rankPattern: { "layers.0.self_attn.q_proj": 8, down_proj: 2 },
      alphaPattern: { o_proj: 3 },
      useRslora: true,
      loraDropout: 0.05,
      initLoraWeights: false,
    });
    const lora = createLora(cfg, model, { seed: 11 });
    const out = `${tmp}/nested/adapter`;
    await savePeftAdapter(out, lora, { baseModelNameOrPath: "qwen3-tiny" });
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "adapter_config.json",
      "adapter_model.safetensors",
    ]);
    const json = JSON.parse(await Deno.readTextFile(`${out}/adapter_config.json`));
    assert.equal(json.base_model_name_or_path, "qwen3-tiny");
    assert.deepEqual(json.rank_pattern, { "layers.0.self_attn.q_proj": 8, down_proj: 2 });
    const loaded = await loadPeftAdapter(out, model);
    sameLora({ ...lora, config: { ...cfg, baseModelNameOrPath: "qwen3-tiny" } }, loaded);
    const q0 = loaded.modules.find((m) => m.name === "model.layers.0.self_attn.q_proj")!;
    assert.equal(q0.experts[0].r, 8);
    assert.equal(q0.experts[0].a.length, 8 * 64);
    // Saving over an existing adapter replaces it.
    const again = createLora(cfg, model, { seed: 12 });
    await savePeftAdapter(out, again);
    sameLora(again, await loadPeftAdapter(out, model));
  });
});

Deno.test("savePeftAdapter() rejects adapters PEFT's format cannot hold", async () => {
  await withTempDir(async (tmp) => {
    const cfg = loraConfig({ r: 2, targetModules: ["q_proj"] });
    const moe = createLora(cfg, model, { seed: 1, expertRanks: () => [2, 2] });
    await expectError(() => savePeftAdapter(tmp, moe), {
      type: RangeError,
      includes: ['"model.layers.0.self_attn.q_proj" has 2 experts'],
    });
    const wrongRank = createLora(cfg, model, { seed: 1, expertRanks: () => [3] });
    await expectError(() => savePeftAdapter(tmp, wrongRank), {
      type: RangeError,
      includes: ["must have the rank 2 and scale 4", "current values are 3"],
    });
    const untargeted = createLora(loraConfig({ r: 2, targetModules: ["k_proj"] }), model, {
      seed: 1,
    });
    await expectError(() => savePeftAdapter(tmp, { ...untargeted, config: cfg }), {
      type: RangeError,
      includes: ['"model.layers.0.self_attn.k_proj" is not targeted by the config'],
    });
    assert.deepEqual([...Deno.readDirSync(tmp)], []);
  });
});

/** Writes an adapter directory from a config object and tensors (F32, given shapes). */
async function writeAdapter(
  out: string,
  config: Record<string, unknown>,
  shapes: Record<string, number[]>,
): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/adapter_config.json`, JSON.stringify(config));
  const tensors = Object.fromEntries(
    Object.entries(shapes).map((
      [name, shape],
    ) => [name, { dtype: "F32" as const, shape, data: new Float32Array(shape[0] * shape[1]) }]),
  );
  await writeSafetensors(`${out}/adapter_model.safetensors`, tensors);
}

Deno.test("loadPeftAdapter() rejects adapters that do not fit the model, naming file and tensor", async () => {
  await withTempDir(async (tmp) => {
    const p = (l: number, t: string, m: string) =>
      `${PEFT_PREFIX}model.layers.${l}.self_attn.${t}.lora_${m}.weight`;
    const cfg = { ...loraConfigToJson(loraConfig({ r: 4, targetModules: ["v_proj"] })) };
    const good = {
      [p(0, "v_proj", "A")]: [4, 64],
      [p(0, "v_proj", "B")]: [32, 4],
      [p(1, "v_proj", "A")]: [4, 64],
      [p(1, "v_proj", "B")]: [32, 4],
    };
    await writeAdapter(`${tmp}/ok`, cfg, good);
    assert.equal((await loadPeftAdapter(`${tmp}/ok`, model)).modules.length, 2);

    await writeAdapter(`${tmp}/shape`, cfg, { ...good, [p(1, "v_proj", "B")]: [64, 4] });
    await expectError(() => loadPeftAdapter(`${tmp}/shape`, model), {
      type: RangeError,
      includes: [
        `Cannot load adapter "${tmp}/shape/adapter_model.safetensors"`,
        `tensor "${p(1, "v_proj", "B")}" must have shape [32, 4]`,
        "current shape is [64, 4]",
      ],
    });
    // The config says r = 4 but the file holds rank-8 matrices.
    await writeAdapter(`${tmp}/rank`, cfg, { ...good, [p(0, "v_proj", "A")]: [8, 64] });
    await expectError(() => loadPeftAdapter(`${tmp}/rank`, model), {
      type: RangeError,
      includes: [`tensor "${p(0, "v_proj", "A")}" must have shape [4, 64] (r = 4`],
    });
    const missing: Record<string, number[]> = { ...good };
    delete missing[p(1, "v_proj", "A")];
    await writeAdapter(`${tmp}/missing`, cfg, missing);
    await expectError(() => loadPeftAdapter(`${tmp}/missing`, model), {
      type: RangeError,
      includes: [`tensor "${p(1, "v_proj", "A")}" is missing`],
    });
    // Tensors of a module the config does not target (wrong target module).
    await writeAdapter(`${tmp}/extra`, cfg, { ...good, [p(0, "q_proj", "A")]: [4, 64] });
    await expectError(() => loadPeftAdapter(`${tmp}/extra`, model), {
      type: RangeError,
      includes: [`tensor "${p(0, "q_proj", "A")}" belongs to no module`, '["v_proj"]'],
    });
    await writeAdapter(`${tmp}/lm_head`, { ...cfg, target_modules: ["v_proj", "lm_head"] }, good);
    await expectError(() => loadPeftAdapter(`${tmp}/lm_head`, model), {
      type: RangeError,
      includes: [`${tmp}/lm_head/adapter_config.json`, 'key "target_modules"', '"lm_head"'],
    });
    await writeAdapter(`${tmp}/dora`, { ...cfg, use_dora: true }, good);
    await expectError(() => loadPeftAdapter(`${tmp}/dora`, model), {
      type: RangeError,
      includes: [`${tmp}/dora/adapter_config.json`, 'key "use_dora"'],
    });
    await Deno.writeTextFile(`${tmp}/ok/adapter_config.json`, "{ r: 4");
    await expectError(() => loadPeftAdapter(`${tmp}/ok`, model), {
      type: SyntaxError,
      includes: [`${tmp}/ok/adapter_config.json`, "invalid JSON"],
    });
    await expectError(() => loadPeftAdapter(`${tmp}/none`, model), {
      type: Deno.errors.NotFound,
      includes: [`${tmp}/none/adapter_config.json`],
    });
  });
});
