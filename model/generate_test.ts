import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import {
  generate,
  type GenerateOptions,
  generateText,
  resolveGenerateOptions,
} from "./generate.ts";
import { loadModel } from "./load_model.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "./tokenizer.ts";

const dir = fixtureDir();
const cpu = await loadModel(dir, { backend: "cpu", warn: false });
const base: GenerateOptions = { prompts: [[1, 2, 3]], maxNewTokens: 4, temperature: 0 };
// The context length and vocabulary size of the fixture.
const CTX = cpu.config.maxPositionEmbeddings;
const V = cpu.config.vocabSize;

Deno.test("generate() rejects bad prompts, lengths and sampling parameters with clear errors", async () => {
  const bad: [Partial<GenerateOptions>, typeof RangeError | typeof TypeError, string[]][] = [
    [{ prompts: [] }, TypeError, ["prompts must be a non-empty array"]],
    [{ prompts: [[1], []] }, RangeError, ["prompts[1] is empty"]],
    [{ prompts: [new Array(CTX + 1).fill(1)] }, RangeError, [
      `prompts[0] has ${CTX + 1} tokens`,
      "longer than the context",
      String(CTX),
    ]],
    [{ prompts: [new Array(CTX - 6).fill(1)], maxNewTokens: 7 }, RangeError, [
      "must fit the context",
      `current total is ${CTX + 1}`,
    ]],
    [{ maxNewTokens: 0 }, RangeError, [
      "maxNewTokens must be a positive integer",
      "current value is 0",
    ]],
    [{ prompts: [[1, V]] }, RangeError, [
      `prompts[0][1] must be a token id in [0, ${V})`,
      `current value is ${V}`,
    ]],
    [{ prompts: [[1, -1]] }, RangeError, ["prompts[0][1]", "current value is -1"]],
    [{ prompts: [[1.5]] }, RangeError, ["prompts[0][0]", "1.5"]],
    [{ topP: 0 }, RangeError, ["topP must be in (0, 1]", "current value is 0"]],
    [{ topP: 1.5 }, RangeError, ["topP must be in (0, 1]", "1.5"]],
    [{ temperature: -1 }, RangeError, ["temperature must be 0 (greedy)", "current value is -1"]],
    [{ temperature: NaN }, RangeError, ["temperature", "NaN"]],
    [{ temperature: 1e-9 }, RangeError, ["at least 1e-6", "use 0 for greedy"]],
    [{ topK: -1 }, RangeError, ["topK must be a non-negative integer"]],
    [{ minP: 1 }, RangeError, ["minP must be in [0, 1)"]],
    [{ seed: -3 }, RangeError, ["seed must be a non-negative safe integer"]],
    [{ firstSequence: 1.5 }, RangeError, ["firstSequence must be a non-negative integer", "1.5"]],
    [{ firstSequence: 2 ** 32 }, RangeError, ["firstSequence + prompts", "≤ 2^32"]],
    [{ readbackEvery: 0 }, RangeError, ["readbackEvery must be a positive integer"]],
    [{ stopTokenIds: [V + 116] }, RangeError, [
      `stopTokenIds[0] must be a token id in [0, ${V})`,
      String(V + 116),
    ]],
    [{ eosTokenIds: [1, V + 16] }, RangeError, ["eosTokenIds[1]", String(V + 16)]],
    [{ minNewTokens: 5 }, RangeError, [
      "minNewTokens must be an integer in [0, maxNewTokens = 4]",
      "current value is 5",
    ]],
    [{ minNewTokens: -1 }, RangeError, ["minNewTokens", "current value is -1"]],
    [{ minNewTokens: 1.5 }, RangeError, ["minNewTokens", "1.5"]],
  ];
  for (const [change, type, includes] of bad) {
    await expectError(() => generate(cpu, { ...base, ...change }), {
      type,
      includes: ["Cannot generate", ...includes],
    });
  }
});

Deno.test("resolveGenerateOptions() fills defaults and keeps eos and stop ids apart", () => {
  // The fixture's config names an EOS id: the last id of the vocabulary (eos_token_id =
  // vocab_size - 1 in make_fixtures.py, the script kept with the project's shared fixtures,
  // shared/fixtures/, not in this repository).
  const eos = cpu.config.eosTokenIds;
  ok(eos.length > 0, "the fixture has an EOS id");
  const o = resolveGenerateOptions(cpu.config, { ...base, stopTokenIds: [7, eos[0], 7] });
  deepStrictEqual(o.eosTokenIds, eos);
  deepStrictEqual(o.stopTokenIds, [7]);
  deepStrictEqual([o.topP, o.topK, o.minP, o.seed, o.readbackEvery, o.compact], [
    1,
    0,
    0,
    0,
    32,
    true,
  ]);
});

Deno.test("generate() runs the CPU backend and stops on eos and stop ids", async () => {
  const greedy = await generate(cpu, { ...base, maxNewTokens: 6, eosTokenIds: [] });
  const [s] = greedy.sequences;
  strictEqual(s.stopReason, "length");
  strictEqual(s.length, 6);
  strictEqual(greedy.stats.readbacks, 0);
  // Make the second greedy token a stop id, then an eos id.
  const second = s.tokens[1];
  const stopped = await generate(cpu, {
    ...base,
    maxNewTokens: 6,
    eosTokenIds: [],
    stopTokenIds: [second],
  });
  strictEqual(stopped.sequences[0].stopReason, "stop");
  deepStrictEqual(stopped.sequences[0].tokens, s.tokens.slice(0, s.tokens.indexOf(second) + 1));
  const eos = await generate(cpu, {
    ...base,
    maxNewTokens: 6,
    eosTokenIds: [second],
    stopTokenIds: [second],
  });
  strictEqual(eos.sequences[0].stopReason, "eos");
});

Deno.test("generateText() renders chats with the template, generates and decodes", async () => {
  // The arithmetic task's tokenizer: 55 ids, all inside the tiny model's vocabulary.
  const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
  const tok = createTokenizer(tokenizerJson, tokenizerConfig);
  const r = await generateText(cpu, tok, {
    prompts: ["What is 1+2?", "What is 7*6?"],
    maxNewTokens: 5,
    temperature: 0,
  });
  deepStrictEqual(r.promptIds, [
    tok.encodeChat([{ role: "user", content: "What is 1+2?" }]),
    tok.encodeChat([{ role: "user", content: "What is 7*6?" }]),
  ]);
  // Same as generate() on the rendered ids with the model's and the tokenizer's EOS.
  const direct = await generate(cpu, {
    prompts: r.promptIds,
    maxNewTokens: 5,
    temperature: 0,
    eosTokenIds: [...cpu.config.eosTokenIds, tok.eosTokenId!],
  });
  deepStrictEqual(r.sequences, direct.sequences);
  deepStrictEqual(
    r.texts,
    direct.sequences.map((s) => tok.decode(s.tokens, { skipSpecialTokens: true })),
  );
  const m = await generateText(cpu, tok, {
    messages: [[{ role: "system", content: "Be brief." }, {
      role: "user",
      content: "What is 2+2?",
    }]],
    maxNewTokens: 2,
    temperature: 0,
  });
  deepStrictEqual(m.promptIds, [
    tok.encodeChat([{ role: "system", content: "Be brief." }, {
      role: "user",
      content: "What is 2+2?",
    }]),
  ]);
  await expectError(() => generateText(cpu, tok, { maxNewTokens: 2, temperature: 0 }), {
    type: TypeError,
    includes: ["exactly one of messages", "neither"],
  });
});
