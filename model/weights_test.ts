import assert from "node:assert/strict";
import { type Qwen3Config, readQwen3Config } from "./config.ts";
import {
  openSafetensors,
  readTensorF32,
  type TensorToWrite,
  writeSafetensors,
} from "../internal/safetensors.ts";
import { loadQwen3Weights, openQwen3Weights, type Qwen3Weights } from "./weights.ts";
import { modelTensorTable } from "./tensor_table.ts";
import { assertArrayEqual, expectError, fixtureDir, withTempDir } from "../internal/test_utils.ts";
import { GpuContext } from "../gpu/context.ts";
import { recordingGpu } from "../gpu/recording_gpu.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";

const FIXTURE = fixtureDir();
const MODEL = `${FIXTURE}/model.safetensors`;

/** Every tensor of the fixture checkpoint as float32, by name. */
async function fixtureTensors(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const file = await openSafetensors(MODEL);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, info] of file.tensors) {
      out.set(name, { shape: info.shape, data: readTensorF32(file, name) });
    }
    return out;
  } finally {
    file.close();
  }
}

function asF32Tensors(
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  dtype: "F32" | "BF16" = "F32",
): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, { shape, data }] of tensors) out[name] = { dtype, shape, data };
  return out;
}

/** Rounds to bfloat16 by picking the nearer neighbour (ties to even); independent of the loader. */
function roundToBf16(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    const low = bits[0] & 0xffff0000;
    bits[0] = low;
    const down = f[0];
    bits[0] = low + 0x10000;
    const up = f[0];
    const dDown = Math.abs(values[i] - down);
    const dUp = Math.abs(up - values[i]);
    const evenIsDown = ((low >>> 16) & 1) === 0;
    out[i] = dDown < dUp || (dDown === dUp && evenIsDown) ? down : up;
  }
  return out;
}

/** Asserts that two sets of weights hold the same arrays (and the same tying of the LM head). */
function assertWeightsEqual(actual: Qwen3Weights, expected: Qwen3Weights): void {
  assertArrayEqual(actual.embedTokens, expected.embedTokens, "embedTokens");
  assertArrayEqual(actual.norm, expected.norm, "norm");
  assertArrayEqual(actual.lmHead, expected.lmHead, "lmHead");
  assert.equal(
    actual.lmHead === actual.embedTokens,
    expected.lmHead === expected.embedTokens,
    "lmHead is embedTokens",
  );
  assert.equal(actual.layers.length, expected.layers.length, "number of layers");
  for (const [l, layer] of actual.layers.entries()) {
    const want = expected.layers[l];
    assert.deepEqual(Object.keys(layer).sort(), Object.keys(want).sort(), `layer ${l} fields`);
    for (const key of Object.keys(want) as (keyof typeof want)[]) {
      assertArrayEqual(layer[key], want[key], `layers[${l}].${key}`);
    }
  }
}

/** The tied LM head is the embedding array itself; an untied one is `lm_head.weight`. */
function assertLmHead(
  weights: Qwen3Weights,
  config: Qwen3Config,
  tensors: Map<string, { data: Float32Array }>,
): void {
  if (config.tieWordEmbeddings) {
    assert.ok(weights.lmHead === weights.embedTokens, "a tied LM head is embedTokens itself");
  } else {
    assert.ok(weights.lmHead !== weights.embedTokens, "an untied LM head is its own array");
    assertArrayEqual(weights.lmHead, tensors.get("lm_head.weight")!.data, "lmHead");
  }
}

/** Slightly moves every value (×1.003 in float32), so that it is no longer a bfloat16 value. */
function perturb(values: Float32Array): Float32Array {
  return values.map((x) => x * 1.003);
}

function mapWeights(weights: Qwen3Weights, fn: (x: Float32Array) => Float32Array): Qwen3Weights {
  const embedTokens = fn(weights.embedTokens);
  return {
    embedTokens,
    layers: weights.layers.map((layer) =>
      Object.fromEntries(
        Object.entries(layer).map(([k, v]) => [k, fn(v)]),
      ) as unknown as typeof layer
    ),
    norm: fn(weights.norm),
    lmHead: weights.lmHead === weights.embedTokens ? embedTokens : fn(weights.lmHead),
  };
}

Deno.test("loadQwen3Weights() loads the fixture", async () => {
  const config = await readQwen3Config(FIXTURE);
  const weights = await loadQwen3Weights(FIXTURE, config);
  const tensors = await fixtureTensors();
  const { hiddenSize: H, intermediateSize: I, vocabSize: V, headDim: D } = config;
  assert.equal(weights.embedTokens.length, V * H);
  assert.equal(weights.lmHead.length, V * H);
  assertLmHead(weights, config, tensors);
  assert.equal(tensors.has("lm_head.weight"), !config.tieWordEmbeddings);
  assertArrayEqual(weights.norm, tensors.get("model.norm.weight")!.data, "norm");
  assertArrayEqual(
    weights.embedTokens,
    tensors.get("model.embed_tokens.weight")!.data,
    "embedTokens",
  );
  assert.equal(weights.layers.length, config.numHiddenLayers);
  for (const [l, layer] of weights.layers.entries()) {
    const t = (suffix: string) => tensors.get(`model.layers.${l}.${suffix}.weight`)!.data;
    const want = {
      inputLayernorm: t("input_layernorm"),
      qProj: t("self_attn.q_proj"),
      kProj: t("self_attn.k_proj"),
      vProj: t("self_attn.v_proj"),
      oProj: t("self_attn.o_proj"),
      qNorm: t("self_attn.q_norm"),
      kNorm: t("self_attn.k_norm"),
      postAttentionLayernorm: t("post_attention_layernorm"),
      gateProj: t("mlp.gate_proj"),
      upProj: t("mlp.up_proj"),
      downProj: t("mlp.down_proj"),
    };
    assert.deepEqual(Object.keys(layer).sort(), Object.keys(want).sort());
    for (const key of Object.keys(want) as (keyof typeof want)[]) {
      assertArrayEqual(layer[key], want[key], `layers[${l}].${key}`);
    }
    assert.equal(layer.qProj.length, config.numAttentionHeads * D * H);
    assert.equal(layer.kProj.length, config.numKeyValueHeads * D * H);
    assert.equal(layer.oProj.length, H * config.numAttentionHeads * D);
    assert.equal(layer.downProj.length, H * I);
    assert.equal(layer.qNorm.length, D);
  }
});

Deno.test("loadQwen3Weights() loads a sharded checkpoint like the unsharded one", async () => {
  const config = await readQwen3Config(FIXTURE);
  const expected = await loadQwen3Weights(FIXTURE, config);
  const tensors = await fixtureTensors();
  await withTempDir(async (dir) => {
    const names = [...tensors.keys()];
    const shards = [names.slice(0, 5), names.slice(5, 17), names.slice(17)];
    const weightMap: Record<string, string> = {};
    for (const [i, shardNames] of shards.entries()) {
      const shard = `model-0000${i + 1}-of-00003.safetensors`;
      const part = new Map(shardNames.map((n) => [n, tensors.get(n)!]));
      await writeSafetensors(`${dir}/${shard}`, asF32Tensors(part), {
        metadata: { format: "pt" },
      });
      for (const n of shardNames) weightMap[n] = shard;
    }
    const totalSize = [...tensors.values()].reduce((s, t) => s + 4 * t.data.length, 0);
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }),
    );
    const weights = await loadQwen3Weights(dir, config);
    assertWeightsEqual(weights, expected);
    assertLmHead(weights, config, tensors);
  });
});

Deno.test("loadQwen3Weights() loads a BF16 checkpoint as its bf16 rounding", async () => {
  const config = await readQwen3Config(FIXTURE);
  // Moved off the bfloat16 grid first, so that the rounding has work to do even when the
  // fixture's own weights are stored in BF16.
  const f32 = mapWeights(await loadQwen3Weights(FIXTURE, config), perturb);
  const tensors = await fixtureTensors();
  for (const t of tensors.values()) t.data = perturb(t.data);
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors, "BF16"));
    const weights = await loadQwen3Weights(dir, config);
    const expected = mapWeights(f32, roundToBf16);
    assertWeightsEqual(weights, expected);
    assert.notDeepEqual(weights.norm, f32.norm); // the rounding did something
    assert.equal(weights.lmHead === weights.embedTokens, config.tieWordEmbeddings);
  });
});

Deno.test("loadQwen3Weights() reads lm_head.weight when embeddings are untied", async () => {
  const config: Qwen3Config = { ...(await readQwen3Config(FIXTURE)), tieWordEmbeddings: false };
  const { vocabSize: V, hiddenSize: H } = config;
  const tensors = await fixtureTensors();
  tensors.delete("lm_head.weight"); // an untied fixture has one
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Error,
      includes: ['"lm_head.weight"', `"${dir}/model.safetensors"`],
    });
    const head = new Float32Array(V * H).map((_, i) => i % 7);
    tensors.set("lm_head.weight", { shape: [V, H], data: head });
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors));
    const weights = await loadQwen3Weights(dir, config);
    assert.ok(weights.lmHead !== weights.embedTokens);
    assertArrayEqual(weights.lmHead, head, "lmHead");
    // Tied: an lm_head.weight equal to the embeddings is not read (as HuggingFace does); one
    // that differs is not read either, with a warning (see "warn about other unused tensors").
    tensors.set("lm_head.weight", tensors.get("model.embed_tokens.weight")!);
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors));
    const tied = await loadQwen3Weights(dir, { ...config, tieWordEmbeddings: true });
    assert.ok(tied.lmHead === tied.embedTokens);
  });
});

/** Both loaders, for a test that every check runs in each. */
const LOADERS = {
  loadQwen3Weights: (dir: string, config: Qwen3Config, warn?: (message: string) => void) =>
    loadQwen3Weights(dir, config, { warn }),
  openQwen3Weights: async (dir: string, config: Qwen3Config, warn?: (message: string) => void) =>
    (await openQwen3Weights(dir, config, { warn })).close(),
};

Deno.test("loadQwen3Weights() and openQwen3Weights() reject tensors the config does not use", async () => {
  const config = await readQwen3Config(FIXTURE);
  const { hiddenSize: H, headDim: D, numAttentionHeads: NH } = config;
  const tensors = await fixtureTensors();
  const path = (dir: string) => `${dir}/model.safetensors`;
  const bad: {
    what: string;
    extra: Record<string, { shape: number[]; data: Float32Array }>;
    config?: Partial<Qwen3Config>;
    includes: (dir: string) => string[];
  }[] = [
    {
      what: "a config with fewer layers than the file",
      extra: {},
      config: { numHiddenLayers: 1 },
      includes: (dir) => [path(dir), '"model.layers.1.', '"num_hidden_layers" is 1'],
    },
    {
      what: "a layer past num_hidden_layers",
      extra: { "model.layers.2.mlp.up_proj.weight": { shape: [4], data: new Float32Array(4) } },
      includes: (dir) => [path(dir), '"model.layers.2.mlp.up_proj.weight"', '"num_hidden_layers"'],
    },
    {
      what: "a projection bias",
      extra: {
        "model.layers.0.self_attn.q_proj.bias": {
          shape: [NH * D],
          data: new Float32Array(NH * D).fill(0.5),
        },
      },
      includes: (dir) => [path(dir), '"model.layers.0.self_attn.q_proj.bias"', "no biases"],
    },
  ];
  for (const { what, extra, config: change, includes } of bad) {
    await withTempDir(async (dir) => {
      const all = new Map([...tensors, ...Object.entries(extra)]);
      await writeSafetensors(path(dir), asF32Tensors(all));
      for (const [name, load] of Object.entries(LOADERS)) {
        const error = await expectError(() => load(dir, { ...config, ...change }), {
          type: RangeError,
          includes: includes(dir),
        }).catch((e) => {
          throw new Error(`${name}, ${what}: ${e.message}`);
        });
        assert.ok(error);
      }
    });
  }
  // Sharded: the error names the shard that holds the tensor.
  await withTempDir(async (dir) => {
    const bias = "model.layers.1.mlp.down_proj.bias";
    await writeSafetensors(`${dir}/a.safetensors`, asF32Tensors(tensors));
    await writeSafetensors(`${dir}/b.safetensors`, {
      [bias]: { dtype: "F32", shape: [H], data: new Float32Array(H) },
    });
    const weightMap: Record<string, string> = { [bias]: "b.safetensors" };
    for (const name of tensors.keys()) weightMap[name] = "a.safetensors";
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ weight_map: weightMap }),
    );
    for (const load of Object.values(LOADERS)) {
      await expectError(() => load(dir, config), {
        type: RangeError,
        includes: [`"${dir}/b.safetensors"`, `"${bias}"`],
      });
    }
  });
});

Deno.test("loadQwen3Weights() and openQwen3Weights() warn about other unused tensors, and load", async () => {
  const config = await readQwen3Config(FIXTURE);
  const expected = await loadQwen3Weights(FIXTURE, config);
  const tensors = await fixtureTensors();
  await withTempDir(async (dir) => {
    const extra = new Map(tensors);
    extra.set("model.rotary_emb.inv_freq", { shape: [8], data: new Float32Array(8).fill(1) });
    // Tied, with an lm_head.weight equal to the embeddings: no warning for that one.
    extra.set("lm_head.weight", tensors.get("model.embed_tokens.weight")!);
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(extra));
    for (const load of Object.values(LOADERS)) {
      const warnings: string[] = [];
      await load(dir, config, (message) => warnings.push(message));
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.ok(warnings[0].includes('"model.rotary_emb.inv_freq"'), warnings[0]);
      assert.ok(warnings[0].includes(`"${dir}/model.safetensors"`), warnings[0]);
      assert.ok(!warnings[0].includes("lm_head"), warnings[0]);
    }
    assertWeightsEqual(await loadQwen3Weights(dir, config, { warn: () => {} }), expected);
  });
  // Tied, with an lm_head.weight that differs: ignored as transformers ignores it, with a warning
  // naming both tensors and the key.
  await withTempDir(async (dir) => {
    const differs = new Map(tensors);
    const embed = tensors.get("model.embed_tokens.weight")!;
    differs.set("lm_head.weight", {
      shape: embed.shape,
      data: embed.data.map((x, i) => i === 12345 ? x + 1 : x),
    });
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(differs));
    for (const load of Object.values(LOADERS)) {
      const warnings: string[] = [];
      await load(dir, config, (message) => warnings.push(message));
      assert.equal(warnings.length, 1, warnings.join("\n"));
      for (
        const part of ['"lm_head.weight"', '"model.embed_tokens.weight"', '"tie_word_embeddings"']
      ) {
        assert.ok(warnings[0].includes(part), warnings[0]);
      }
    }
    const tied = await loadQwen3Weights(dir, config, { warn: () => {} });
    assert.ok(tied.lmHead === tied.embedTokens);
    assertWeightsEqual(tied, expected);
  });
  // The fixture itself: nothing unused, nothing said.
  for (const load of Object.values(LOADERS)) {
    await load(FIXTURE, config, (message) => assert.fail(`unexpected warning: ${message}`));
    await load(
      "models/arithmetic-tiny",
      await readQwen3Config("models/arithmetic-tiny"),
      (m) => assert.fail(`unexpected warning: ${m}`),
    );
  }
});

Deno.test("loadQwen3Weights() rejects a missing tensor", async () => {
  const config = await readQwen3Config(FIXTURE);
  const tensors = await fixtureTensors();
  tensors.delete("model.layers.1.self_attn.k_norm.weight");
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Error,
      includes: ['"model.layers.1.self_attn.k_norm.weight"', `"${dir}/model.safetensors"`],
    });
  });
  // A config with more layers than the checkpoint.
  const L = config.numHiddenLayers;
  await expectError(() => loadQwen3Weights(FIXTURE, { ...config, numHiddenLayers: L + 1 }), {
    type: Error,
    includes: [`"model.layers.${L}.input_layernorm.weight"`, `"${MODEL}"`],
  });
});

Deno.test("loadQwen3Weights() rejects a wrong shape", async () => {
  const config = await readQwen3Config(FIXTURE);
  const { hiddenSize: H, intermediateSize: I, numKeyValueHeads: KV, headDim: D } = config;
  await expectError(() => loadQwen3Weights(FIXTURE, { ...config, intermediateSize: I - 32 }), {
    type: RangeError,
    includes: [
      `"${MODEL}"`,
      '"model.layers.0.mlp.gate_proj.weight"',
      `expected shape [${I - 32}, ${H}]`,
      `actual shape [${I}, ${H}]`,
    ],
  });
  await expectError(() => loadQwen3Weights(FIXTURE, { ...config, numKeyValueHeads: 2 * KV }), {
    type: RangeError,
    includes: [
      `"${MODEL}"`,
      '"model.layers.0.self_attn.k_proj.weight"',
      `expected shape [${2 * KV * D}, ${H}]`,
      `actual shape [${KV * D}, ${H}]`,
    ],
  });
});

Deno.test("loadQwen3Weights() rejects a sharded index with a missing shard", async () => {
  const config = await readQwen3Config(FIXTURE);
  const tensors = await fixtureTensors();
  await withTempDir(async (dir) => {
    const index = `${dir}/model.safetensors.index.json`;
    const weightMap: Record<string, string> = {};
    for (const name of tensors.keys()) {
      weightMap[name] = name.includes("layers.1.")
        ? "model-00002-of-00002.safetensors"
        : "model-00001-of-00002.safetensors";
    }
    await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, asF32Tensors(tensors));
    await Deno.writeTextFile(index, JSON.stringify({ weight_map: weightMap }));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Deno.errors.NotFound,
      includes: [`"${index}"`, `"${dir}/model-00002-of-00002.safetensors"`],
    });
  });
});

Deno.test("loadQwen3Weights() rejects tensors missing from a sharded checkpoint", async () => {
  const config = await readQwen3Config(FIXTURE);
  const tensors = await fixtureTensors();
  await withTempDir(async (dir) => {
    const index = `${dir}/model.safetensors.index.json`;
    const shard = "model-00001-of-00001.safetensors";
    const weightMap: Record<string, string> = {};
    for (const name of tensors.keys()) weightMap[name] = shard;
    await writeSafetensors(`${dir}/${shard}`, asF32Tensors(tensors));

    delete weightMap["model.norm.weight"];
    await Deno.writeTextFile(index, JSON.stringify({ weight_map: weightMap }));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Error,
      includes: ['"model.norm.weight"', `"${index}"`],
    });

    weightMap["model.norm.weight"] = shard;
    tensors.delete("model.norm.weight");
    await writeSafetensors(`${dir}/${shard}`, asF32Tensors(tensors));
    await Deno.writeTextFile(index, JSON.stringify({ weight_map: weightMap }));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Error,
      includes: ['"model.norm.weight"', `"${dir}/${shard}"`, `"${index}"`],
    });
  });
});

Deno.test("loadQwen3Weights() rejects a malformed index", async () => {
  const config = await readQwen3Config(FIXTURE);
  await withTempDir(async (dir) => {
    const index = `${dir}/model.safetensors.index.json`;
    await Deno.writeTextFile(index, "{ not json");
    await expectError(() => loadQwen3Weights(dir, config), {
      type: SyntaxError,
      includes: [`"${index}"`],
    });
    await Deno.writeTextFile(index, JSON.stringify({ metadata: {} }));
    await expectError(() => loadQwen3Weights(dir, config), {
      type: TypeError,
      includes: [`"${index}"`, '"weight_map"'],
    });
    await Deno.writeTextFile(
      index,
      JSON.stringify({ weight_map: { "model.norm.weight": "../elsewhere.safetensors" } }),
    );
    await expectError(() => loadQwen3Weights(dir, config), {
      type: TypeError,
      includes: [`"${index}"`, '"model.norm.weight"', "../elsewhere.safetensors"],
    });
  });
});

Deno.test("loadQwen3Weights() rejects a directory without a checkpoint", async () => {
  const config = await readQwen3Config(FIXTURE);
  await withTempDir(async (dir) => {
    await expectError(() => loadQwen3Weights(dir, config), {
      type: Deno.errors.NotFound,
      includes: [`"${dir}/model.safetensors"`, `"${dir}/model.safetensors.index.json"`],
    });
  });
});

/** f16 bits of float32 values, rounded by `Float16Array` (the upload path of f32 weights). */
function halfBits(values: Float32Array): Uint16Array {
  return new Uint16Array(Float16Array.from(values).buffer);
}

Deno.test("loadQwen3Weights() matrixDtype f16 reads the matrices as f16 bits, as float32 then f16 would", async () => {
  const config = await readQwen3Config(FIXTURE);
  const tensors = await fixtureTensors();
  for (const t of tensors.values()) t.data = perturb(t.data);
  await withTempDir(async (dir) => {
    for (const [dtype, source] of [["F32", FIXTURE], ["BF16", dir]] as const) {
      if (dtype === "BF16") {
        await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors, "BF16"));
      }
      const f32 = await loadQwen3Weights(source, config);
      const f16 = await loadQwen3Weights(source, config, { matrixDtype: "f16" });
      const matrices = (w: Qwen3Weights | Qwen3Weights<Uint16Array>) => [
        w.embedTokens,
        ...w.layers.flatMap((l) => [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj]),
        ...w.layers.map((l) => l.downProj),
      ];
      const want = matrices(f32);
      for (const [i, got] of matrices(f16).entries()) {
        assert.ok(got instanceof Uint16Array, `${dtype} matrix ${i} is f16 bits`);
        assert.deepEqual(got, halfBits(want[i] as Float32Array), `${dtype} matrix ${i}`);
      }
      assert.equal(f16.lmHead, f16.embedTokens, "tied: the same array");
      assertArrayEqual(f16.norm, f32.norm, `${dtype} norm stays float32`);
      for (const [l, layer] of f16.layers.entries()) {
        for (const k of ["inputLayernorm", "qNorm", "kNorm", "postAttentionLayernorm"] as const) {
          assertArrayEqual(layer[k], f32.layers[l][k], `${dtype} layers[${l}].${k}`);
        }
      }
    }
    // A weight beyond f16 fails at load time, naming the tensor.
    tensors.get("model.layers.1.mlp.up_proj.weight")!.data[3] = 70000;
    await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors, "BF16"));
    await assert.rejects(
      loadQwen3Weights(dir, config, { matrixDtype: "f16" }),
      /tensor "model\.layers\.1\.mlp\.up_proj\.weight" .* as f16: element 3 \(row 0, column 3\) is 70144, beyond the f16 range/,
    );
    await assert.rejects(
      loadQwen3Weights(dir, config, { matrixDtype: "bf16" as "f16" }),
      /option "matrixDtype" must be "f32" or "f16": current value is "bf16"/,
    );
  });
});

Deno.test("WebGpuQwen3 uploads f16 weights as loaded and submits the queue every uploadFlushBytes", async () => {
  const config = await readQwen3Config(FIXTURE);
  const N = 8 * 1024;
  const upload = async (matrixDtype: "f32" | "f16", streamed = false) => {
    const { gpu, calls } = recordingGpu();
    const ctx = new GpuContext(gpu, { uploadFlushBytes: N });
    using open = streamed ? await openQwen3Weights(FIXTURE, config, { matrixDtype }) : null;
    const weights = open?.weights ?? await loadQwen3Weights(FIXTURE, config, { matrixDtype });
    new WebGpuQwen3(ctx, config, weights, { weightDtype: "f16" });
    await ctx.settleUploads();
    return calls;
  };
  const fromBits = await upload("f16");
  assert.deepEqual(fromBits, await upload("f32"), "the same writes from f16 bits or float32");
  assert.deepEqual(fromBits, await upload("f16", true), "the same writes when streamed");
  assert.deepEqual(fromBits, await upload("f32", true), "the same writes when streamed (f32)");
  let since = 0;
  let total = 0;
  let submits = 0;
  let largest = 0;
  for (const c of fromBits) {
    if (c.op === "write") {
      // Once N bytes are pending, the next thing on the queue is a submit, not another write.
      assert.ok(since < N, `a write after ${since} bytes without a submit`);
      since += c.bytes.length;
      total += c.bytes.length;
      largest = Math.max(largest, c.bytes.length);
    }
    if (c.op === "submit") (since = 0), submits++;
  }
  assert.ok(total > 2 * (N + largest), `${total} bytes uploaded`);
  assert.ok(submits >= Math.floor(total / (N + largest)), `${submits} submits, ${total} bytes`);
  assert.deepEqual(fromBits.at(-1), { op: "wait" }, "settled at the end");
});

Deno.test({
  name: "WebGpuQwen3 keeps no reference to the host weights it uploaded (collectable by the GC)",
  async fn() {
    // A child process: `gc()` needs --expose-gc. It loads, uploads to a stand-in device, keeps
    // the model alive, drops the weights and checks that a WeakRef to them clears.
    const root = new URL("../", import.meta.url).href;
    const script = `
      import { readQwen3Config } from "${root}model/config.ts";
      import { loadQwen3Weights } from "${root}model/weights.ts";
      import { WebGpuQwen3 } from "${root}model/qwen3_webgpu.ts";
      import { GpuContext } from "${root}gpu/context.ts";
      import { recordingGpu } from "${root}gpu/recording_gpu.ts";
      const dir = ${JSON.stringify(FIXTURE)};
      const config = await readQwen3Config(dir);
      const refs = [];
      const models = [];
      for (const matrixDtype of ["f32", "f16"]) {
        let weights = await loadQwen3Weights(dir, config, { matrixDtype });
        refs.push(new WeakRef(weights.embedTokens), new WeakRef(weights.layers[0].qProj));
        models.push(new WebGpuQwen3(new GpuContext(recordingGpu().gpu), config, weights, {
          weightDtype: "f16",
        }));
        weights = null;
      }
      await new Promise((r) => setTimeout(r, 0)); // WeakRef targets live until the job ends
      globalThis.gc();
      console.log(JSON.stringify({ alive: refs.filter((r) => r.deref() !== undefined).length,
        models: models.length }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--v8-flags=--expose-gc", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.deepEqual(JSON.parse(text.split("\n").at(-1)!), { alive: 0, models: 2 });
  },
});

Deno.test("openQwen3Weights() reads what loadQwen3Weights() loads, each layer tensor afresh on access", async () => {
  for (const tie of [true, false]) {
    const base = await readQwen3Config(FIXTURE);
    const config: Qwen3Config = { ...base, tieWordEmbeddings: tie };
    await withTempDir(async (dir) => {
      const tensors = await fixtureTensors();
      if (!tie) {
        const e = tensors.get("model.embed_tokens.weight")!;
        tensors.set("lm_head.weight", { shape: e.shape, data: perturb(e.data) });
      }
      await writeSafetensors(`${dir}/model.safetensors`, asF32Tensors(tensors, "BF16"));
      await Deno.copyFile(`${FIXTURE}/config.json`, `${dir}/config.json`);
      for (const matrixDtype of ["f32", "f16"] as const) {
        const loaded = await loadQwen3Weights(dir, config, { matrixDtype });
        using open = await openQwen3Weights(dir, config, { matrixDtype });
        const w = open.weights;
        assert.deepEqual(w.embedTokens, loaded.embedTokens);
        assert.deepEqual(w.lmHead, loaded.lmHead);
        assert.equal(w.lmHead === w.embedTokens, tie, "tied: the same array");
        assert.equal(w.embedTokens, w.embedTokens, "the embeddings are read once and kept");
        assert.deepEqual(w.norm, loaded.norm);
        assert.equal(w.layers.length, config.numHiddenLayers);
        for (const [l, layer] of loaded.layers.entries()) {
          assert.deepEqual(Object.keys(w.layers[l]).sort(), Object.keys(layer).sort());
          for (const [k, v] of Object.entries(layer)) {
            const got = w.layers[l][k as keyof typeof layer];
            assert.deepEqual(got, v, `${matrixDtype} layers[${l}].${k}`);
            assert.notEqual(w.layers[l][k as keyof typeof layer], got, "read afresh, not kept");
          }
        }
        // read(): any tensor of the table, the top-level ones included, afresh each time.
        for (const entry of modelTensorTable(config)) {
          const want = entry.layer === null
            ? loaded[entry.field as "embedTokens" | "norm" | "lmHead"]
            : loaded.layers[entry.layer][entry.field as keyof (typeof loaded.layers)[0]];
          const got = open.read(entry);
          assert.deepEqual(got, want, `${matrixDtype} read(${entry.name})`);
          assert.notEqual(open.read(entry), got, "read() keeps nothing");
        }
        assert.throws(() => open.read({ name: "model.nope", shape: [1] }), /model\.nope.*table/);
      }
    });
  }
});

Deno.test("openQwen3Weights() checks every tensor's presence, shape and dtype before reading any", async () => {
  const config = await readQwen3Config(FIXTURE);
  const { hiddenSize: H, intermediateSize: I } = config;
  await expectError(() => openQwen3Weights(FIXTURE, { ...config, intermediateSize: I - 32 }), {
    type: RangeError,
    includes: [
      `"${MODEL}"`,
      '"model.layers.0.mlp.gate_proj.weight"',
      `expected shape [${I - 32}, ${H}]`,
      `actual shape [${I}, ${H}]`,
    ],
  });
  const tensors = await fixtureTensors();
  await withTempDir(async (dir) => {
    const t = asF32Tensors(tensors);
    const last = `model.layers.${config.numHiddenLayers - 1}.mlp.down_proj.weight`;
    delete t[last];
    await writeSafetensors(`${dir}/model.safetensors`, t);
    await expectError(() => openQwen3Weights(dir, config), {
      type: Error,
      includes: [`tensor "${last}" not found in "${dir}/model.safetensors"`],
    });
    t[last] = { dtype: "I32", shape: tensors.get(last)!.shape, data: new Int32Array(H * I) };
    await writeSafetensors(`${dir}/model.safetensors`, t);
    await expectError(() => openQwen3Weights(dir, config), {
      type: TypeError,
      includes: [`"${last}"`, 'unsupported dtype "I32"'],
    });
  });
  await expectError(() => openQwen3Weights("/tmp/halo_no_such_checkpoint", config), {
    type: Deno.errors.NotFound,
    includes: ["model.safetensors.index.json"],
  });
});
