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

Deno.test("readGenerationConfig() reads the fixture's file, and gives null without one", async () => {
  const g = await readGenerationConfig("tests/fixtures/qwen3-tiny");
  assert.deepEqual(g?.eosTokenIds, [383]);
  assert.equal(g?.path, "tests/fixtures/qwen3-tiny/generation_config.json");
  assert.equal(await readGenerationConfig("tests/fixtures"), null);
});
