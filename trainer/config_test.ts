import { ok, strictEqual } from "node:assert/strict";
import { DEFAULT_CONFIG } from "./config.ts";
import { validateConfig } from "./validate_config.ts";
import { arithmeticDataset } from "../data/arithmetic_task.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";

function assertDeepFrozen(value: unknown, path: string): void {
  if (typeof value !== "object" || value === null) return;
  ok(Object.isFrozen(value), `${path} is not frozen`);
  for (const [key, child] of Object.entries(value)) assertDeepFrozen(child, `${path}.${key}`);
}

Deno.test("DEFAULT_CONFIG is deeply frozen", () => {
  assertDeepFrozen(DEFAULT_CONFIG, "DEFAULT_CONFIG");
});

Deno.test("DEFAULT_CONFIG passes validation", () => {
  strictEqual(validateConfig(structuredClone(DEFAULT_CONFIG)).run.name, DEFAULT_CONFIG.run.name);
});

Deno.test("DEFAULT_CONFIG sizes the tiny model and data for the arithmetic task", () => {
  const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
  const tokenizer = createTokenizer(tokenizerJson, tokenizerConfig);
  ok(DEFAULT_CONFIG.model.vocab >= tokenizer.vocabSize);
  const { data } = DEFAULT_CONFIG;
  strictEqual(
    arithmeticDataset("train", { ...data, size: data.trainSize }).length,
    data.trainSize,
  );
  strictEqual(arithmeticDataset("eval", { ...data, size: data.evalSize }).length, data.evalSize);
});
