import assert from "node:assert/strict";
import { parseQwen3Config, type Qwen3Config, readQwen3Config } from "./config.ts";
import { expectError, fixtureDir, TINY_FIXTURE, withTempDir } from "../internal/test_utils.ts";

/** A valid config in the transformers 4 layout (the one real Qwen3 checkpoints ship). */
function baseConfig(): Record<string, unknown> {
  return {
    architectures: ["Qwen3ForCausalLM"],
    attention_bias: false,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
    hidden_act: "silu",
    hidden_size: 1024,
    intermediate_size: 3072,
    max_position_embeddings: 40960,
    max_window_layers: 28,
    model_type: "qwen3",
    num_attention_heads: 16,
    num_hidden_layers: 28,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000,
    sliding_window: null,
    tie_word_embeddings: true,
    torch_dtype: "bfloat16",
    use_sliding_window: false,
    vocab_size: 151936,
  };
}

Deno.test("readQwen3Config() reads the qwen3-tiny config", async () => {
  const config = await readQwen3Config(TINY_FIXTURE);
  const expected: Qwen3Config = {
    vocabSize: 384,
    hiddenSize: 64,
    intermediateSize: 128,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    maxPositionEmbeddings: 256,
    tieWordEmbeddings: true,
    eosTokenIds: [383],
    bosTokenId: null,
    padTokenId: null,
  };
  assert.deepEqual(config, expected);
});

Deno.test("readQwen3Config() reads the fixture config", async () => {
  const dir = fixtureDir();
  const config = await readQwen3Config(dir);
  // An independent reading of config.json's keys (transformers 5 keeps rope_theta in
  // rope_parameters).
  const json = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const expected: Qwen3Config = {
    vocabSize: json.vocab_size,
    hiddenSize: json.hidden_size,
    intermediateSize: json.intermediate_size,
    numHiddenLayers: json.num_hidden_layers,
    numAttentionHeads: json.num_attention_heads,
    numKeyValueHeads: json.num_key_value_heads,
    headDim: json.head_dim,
    rmsNormEps: json.rms_norm_eps,
    ropeTheta: json.rope_parameters?.rope_theta ?? json.rope_theta,
    maxPositionEmbeddings: json.max_position_embeddings,
    tieWordEmbeddings: json.tie_word_embeddings,
    eosTokenIds: [json.eos_token_id].flat(),
    bosTokenId: json.bos_token_id,
    padTokenId: json.pad_token_id,
  };
  assert.deepEqual(config, expected);
});

Deno.test("parseQwen3Config() reads a Qwen3-0.6B style config", () => {
  const config = parseQwen3Config(baseConfig(), "qwen3-0.6b/config.json");
  assert.equal(config.headDim, 128);
  assert.equal(config.ropeTheta, 1e6);
  assert.deepEqual(config.eosTokenIds, [151645]);
  assert.equal(config.bosTokenId, 151643);
  assert.equal(config.padTokenId, null);
  assert.equal(config.tieWordEmbeddings, true);
});

Deno.test("parseQwen3Config() applies transformers' Qwen3Config defaults", () => {
  const json = baseConfig();
  json.hidden_size = 2048; // hidden / heads = 64: the default head_dim is still 128
  json.num_attention_heads = 32;
  delete json.head_dim;
  delete json.num_key_value_heads;
  delete json.tie_word_embeddings;
  delete json.eos_token_id;
  delete json.bos_token_id;
  const config = parseQwen3Config(json, "c.json");
  assert.equal(config.headDim, 128);
  assert.equal(config.numKeyValueHeads, 32);
  assert.equal(config.tieWordEmbeddings, false);
  assert.deepEqual(config.eosTokenIds, []);
  assert.equal(config.bosTokenId, null);
  // An explicit null num_key_value_heads is one KV head per attention head.
  assert.equal(
    parseQwen3Config({ ...json, num_key_value_heads: null }, "c.json").numKeyValueHeads,
    32,
  );
  json.num_attention_heads = 16;
  assert.equal(
    parseQwen3Config({ ...json, num_key_value_heads: null }, "c.json").numKeyValueHeads,
    16,
  );
});

Deno.test("parseQwen3Config() says when a missing num_key_value_heads' default does not fit, and refuses a null head_dim", async () => {
  const json = baseConfig();
  delete json.num_key_value_heads; // 32 does not divide 16 heads
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: RangeError,
    includes: ['"c.json"', '"num_key_value_heads" is missing', "default is 32", "16 and 32"],
  });
  const nullDim = { ...baseConfig(), head_dim: null };
  await expectError(() => parseQwen3Config(nullDim, "c.json"), {
    type: TypeError,
    includes: ['"c.json"', 'key "head_dim" must be a positive integer', "current value is null"],
  });
});

Deno.test("parseQwen3Config() accepts eos_token_id lists and rope_parameters", () => {
  const json = baseConfig();
  json.eos_token_id = [151645, 151643];
  json.pad_token_id = 151643;
  delete json.rope_theta;
  json.rope_parameters = { rope_theta: 5e6, rope_type: "default" };
  const config = parseQwen3Config(json, "c.json");
  assert.deepEqual(config.eosTokenIds, [151645, 151643]);
  assert.equal(config.padTokenId, 151643);
  assert.equal(config.ropeTheta, 5e6);
});

Deno.test("parseQwen3Config() rejects a config without a required field", async () => {
  for (
    const key of [
      "vocab_size",
      "hidden_size",
      "intermediate_size",
      "num_hidden_layers",
      "num_attention_heads",
      "rms_norm_eps",
      "rope_theta",
      "max_position_embeddings",
    ]
  ) {
    const json = baseConfig();
    delete json[key];
    await expectError(() => parseQwen3Config(json, "dir/config.json"), {
      type: TypeError,
      includes: ['"dir/config.json"', `"${key}"`, "missing"],
    });
  }
});

Deno.test("parseQwen3Config() rejects a non-integer head count", async () => {
  const json = baseConfig();
  json.num_attention_heads = "abc";
  const error = await expectError(() => parseQwen3Config(json, "x/config.json"), {
    type: TypeError,
    includes: [],
  });
  assert.equal(
    error.message,
    'Cannot load config "x/config.json": key "num_attention_heads" must be a positive integer: ' +
      'current value is "abc"',
  );
  for (const bad of [0, -4, 2.5, Number.NaN]) {
    json.num_attention_heads = bad;
    await expectError(() => parseQwen3Config(json, "x/config.json"), {
      type: RangeError,
      includes: ['"x/config.json"', '"num_attention_heads"', "positive integer"],
    });
  }
});

Deno.test("parseQwen3Config() rejects heads not divisible by kv heads", async () => {
  const json = baseConfig();
  json.num_key_value_heads = 3;
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: RangeError,
    includes: ['"c.json"', '"num_attention_heads"', '"num_key_value_heads"', "16", "3"],
  });
});

Deno.test("parseQwen3Config() rejects another model_type", async () => {
  const json = baseConfig();
  json.model_type = "llama";
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: RangeError,
    includes: ['"c.json"', '"model_type"', '"qwen3"', '"llama"'],
  });
  delete json.model_type;
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: TypeError,
    includes: ['"model_type"', '"qwen3"'],
  });
});

Deno.test("parseQwen3Config() rejects unsupported features", async () => {
  const cases: [string, unknown, string][] = [
    ["rope_scaling", { rope_type: "yarn", factor: 4 }, '"rope_scaling"'],
    ["rope_parameters", { rope_type: "yarn", rope_theta: 1e6 }, '"rope_parameters.rope_type"'],
    ["attention_bias", true, '"attention_bias"'],
    ["hidden_act", "gelu", '"hidden_act"'],
    ["use_sliding_window", true, '"use_sliding_window"'],
    ["layer_types", ["sliding_attention"], '"layer_types"'],
  ];
  for (const [key, value, named] of cases) {
    const json = baseConfig();
    json[key] = value;
    await expectError(() => parseQwen3Config(json, "c.json"), {
      type: RangeError,
      includes: ['"c.json"', named, "unsupported"],
    });
  }
});

Deno.test("parseQwen3Config() rejects bad token ids and types", async () => {
  const json = baseConfig();
  json.eos_token_id = [1, "2"];
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: TypeError,
    includes: ['"c.json"', '"eos_token_id[1]"', '"2"'],
  });
  json.eos_token_id = 1;
  json.tie_word_embeddings = "yes";
  await expectError(() => parseQwen3Config(json, "c.json"), {
    type: TypeError,
    includes: ['"c.json"', '"tie_word_embeddings"', '"yes"'],
  });
  await expectError(() => parseQwen3Config([1, 2], "c.json"), {
    type: TypeError,
    includes: ['"c.json"', "object"],
  });
});

Deno.test("parseQwen3Config() rejects token ids outside [0, vocab_size), naming the file and key", async () => {
  for (
    const [key, value, named, bad] of [
      ["eos_token_id", 151936, '"eos_token_id"', 151936],
      ["eos_token_id", [151645, 200000], '"eos_token_id[1]"', 200000],
      ["bos_token_id", 151936, '"bos_token_id"', 151936],
      ["pad_token_id", 1e6, '"pad_token_id"', 1e6],
    ] as const
  ) {
    const json = baseConfig();
    json[key] = value;
    await expectError(() => parseQwen3Config(json, "m/config.json"), {
      type: RangeError,
      includes: ['"m/config.json"', named, "vocab_size 151936", `current value is ${bad}`],
    });
  }
  const json = baseConfig();
  json.pad_token_id = -1;
  await expectError(() => parseQwen3Config(json, "m/config.json"), {
    type: RangeError,
    includes: ['"m/config.json"', '"pad_token_id"', "-1"],
  });
  json.pad_token_id = 151935; // the last row is fine
  json.eos_token_id = [0, 151935];
  assert.equal(parseQwen3Config(json, "m/config.json").padTokenId, 151935);
});

Deno.test("readQwen3Config() rejects bad JSON naming the file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/config.json`, '{"model_type": "qwen3",');
    await expectError(() => readQwen3Config(dir), {
      type: SyntaxError,
      includes: [`"${dir}/config.json"`, "invalid JSON"],
    });
  });
});

Deno.test("readQwen3Config() rejects a missing file naming it", async () => {
  await withTempDir(async (dir) => {
    await expectError(() => readQwen3Config(dir), {
      type: Deno.errors.NotFound,
      includes: [`"${dir}/config.json"`],
    });
  });
});

Deno.test("readQwen3Config() names the file in validation errors", async () => {
  await withTempDir(async (dir) => {
    const json = baseConfig();
    delete json.vocab_size;
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(json));
    await expectError(() => readQwen3Config(`${dir}/`), {
      type: TypeError,
      includes: [`"${dir}/config.json"`, '"vocab_size"'],
    });
  });
});
