// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { parseGenerationConfig, readGenerationConfig } from "./generation_config.ts";

Deno.test("parseGenerationConfig() reads eos_token_id as a number, a list (deduplicated) or null", () => {
  assert.deepEqual(parseGenerationConfig({ eos_token_id: 3 }, "g").eosTokenIds, [3]);
  assert.deepEqual(parseGenerationConfig({ eos_token_id: [5, 3, 5] }, "g").eosTokenIds, [5, 3]);
  assert.deepEqual(parseGenerationConfig({ eos_token_id: null }, "g").eosTokenIds, []);
  assert.deepEqual(parseGenerationConfig({ do_sample: true }, "g").eosTokenIds, []);
});

Deno.test("parseGenerationConfig() names the file and the key of a bad value", () => {
  for (const eos of ["3", 1.5, -1, [3, "x"], { a: 1 }, true]) {
    assert.throws(() => parseGenerationConfig({ eos_token_id: eos }, "m/generation_config.json"), {
      name: "TypeError",
      message: `Cannot read "m/generation_config.json": key "eos_token_id" must be a ` +
        `non-negative integer, a list of them, or null: current value is ${JSON.stringify(eos)}`,
    });
  }
  assert.throws(() => parseGenerationConfig([1], "g.json"), {
    name: "TypeError",
    message: 'Cannot read "g.json": expected a JSON object: current value is [1]',
  });
});

Deno.test("parseGenerationConfig() rejects token ids at or past the model's vocab_size, naming file and key", () => {
  const path = "m/generation_config.json";
  for (
    const [json, key] of [
      [{ eos_token_id: 64 }, "eos_token_id"],
      [{ eos_token_id: [54, 70] }, "eos_token_id[1]"],
      [{ eos_token_id: 54, pad_token_id: 64 }, "pad_token_id"],
      [{ bos_token_id: 99 }, "bos_token_id"],
    ] as const
  ) {
    assert.throws(() => parseGenerationConfig(json, path, { vocabSize: 64 }), (error: Error) => {
      assert.ok(error instanceof RangeError, error.message);
      for (const part of [`"${path}"`, `"${key}"`, "vocab_size 64"]) {
        assert.ok(error.message.includes(part), `${part} not in: ${error.message}`);
      }
      return true;
    });
  }
  // bos/pad ids are checked for type too, vocabulary or not.
  assert.throws(() => parseGenerationConfig({ pad_token_id: -2 }, path), /"pad_token_id"/);
  assert.throws(() => parseGenerationConfig({ bos_token_id: "x" }, path), /"bos_token_id"/);
  assert.deepEqual(
    parseGenerationConfig({ eos_token_id: [63, 0], pad_token_id: 63 }, path, { vocabSize: 64 })
      .eosTokenIds,
    [63, 0],
  );
});

Deno.test("readGenerationConfig() checks the ids against options.vocabSize", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/generation_config.json`, '{"eos_token_id": [2, 300]}');
    assert.deepEqual((await readGenerationConfig(dir))?.eosTokenIds, [2, 300]);
    await assert.rejects(
      () => readGenerationConfig(dir, { vocabSize: 300 }),
      (error: Error) => error instanceof RangeError && /"eos_token_id\[1\]"/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readGenerationConfig() reads the fixture's file, and gives null without one", async () => {
  const g = await readGenerationConfig("tests/fixtures/qwen3-tiny");
  assert.deepEqual(g?.eosTokenIds, [383]);
  assert.equal(g?.path, "tests/fixtures/qwen3-tiny/generation_config.json");
  assert.equal(await readGenerationConfig("tests/fixtures"), null);
});
