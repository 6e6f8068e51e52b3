import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { createTokenizer, loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { arithmeticDataset, formatExample } from "./arithmetic_task.ts";
import {
  ARITHMETIC_ADDED_TOKENS,
  ARITHMETIC_ALPHABET,
  arithmeticTokenizerFiles,
  writeArithmeticTokenizer,
} from "./arithmetic_tokenizer.ts";

function tokenizer(): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = arithmeticTokenizerFiles();
  return createTokenizer(tokenizerJson, tokenizerConfig, { source: "arithmetic" });
}

const SETTINGS = [
  { digits: 2, maxTerms: 2 },
  { digits: 3, maxTerms: 3, mulDigits: 2 },
  { digits: 6, maxTerms: 4, mulDigits: 3 },
] as const;

Deno.test("arithmeticTokenizerFiles() builds a small vocabulary with Qwen's special tokens", () => {
  const t = tokenizer();
  strictEqual(t.vocabSize, ARITHMETIC_ALPHABET.length + ARITHMETIC_ADDED_TOKENS.length);
  ok(t.vocabSize <= 64 + 3, `vocabulary too large: ${t.vocabSize}`);
  strictEqual(t.eosTokenId, t.encode("<|im_end|>")[0]);
  strictEqual(t.padTokenId, t.encode("<|endoftext|>")[0]);
  for (const special of ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "Answer:"]) {
    const ids = t.encode(special);
    strictEqual(ids.length, 1, `${special} should be one token`);
    strictEqual(t.decode(ids), special);
  }
  strictEqual(
    t.decode(t.encode("<|im_start|>user\nhi<|im_end|>"), { skipSpecialTokens: true }),
    "user\nhi",
  );
});

Deno.test("arithmeticTokenizerFiles() gives every character its own token, round-tripping", () => {
  const t = tokenizer();
  const ids = new Set<number>();
  for (const char of ARITHMETIC_ALPHABET) {
    const encoded = t.encode(char);
    strictEqual(encoded.length, 1, `${JSON.stringify(char)} should be one token`);
    strictEqual(t.decode(encoded), char);
    ids.add(encoded[0]);
  }
  strictEqual(ids.size, ARITHMETIC_ALPHABET.length);
});

Deno.test("arithmeticTokenizerFiles() round-trips every generated example exactly", () => {
  const t = tokenizer();
  for (const settings of SETTINGS) {
    for (const split of ["train", "eval"] as const) {
      for (const example of arithmeticDataset(split, { size: 100, seed: 11, ...settings })) {
        const { text, prompt, completion } = formatExample(example);
        for (const char of text) {
          ok(
            ARITHMETIC_ALPHABET.includes(char) || "<|>_".includes(char),
            `character ${JSON.stringify(char)} outside the alphabet`,
          );
        }
        const ids = t.encode(text);
        strictEqual(t.decode(ids), text);
        // Prompt and completion tokenise independently (the SFT loss mask relies on it).
        deepStrictEqual(ids, [...t.encode(prompt), ...t.encode(completion)]);
        strictEqual(ids.at(-1), t.eosTokenId);
      }
    }
  }
});

Deno.test("arithmeticTokenizerFiles() makes each answer digit a single token after Answer:", () => {
  const t = tokenizer();
  const marker = t.encode("Answer:")[0];
  for (const example of arithmeticDataset("eval", { size: 200, seed: 5, digits: 3, maxTerms: 3 })) {
    const ids = t.encode(example.solution);
    const at = ids.lastIndexOf(marker);
    ok(at >= 0);
    const answerIds = ids.slice(at + 2); // "Answer:", " ", then one token per character
    strictEqual(t.decode([ids[at + 1]]), " ");
    strictEqual(answerIds.length, example.answer.length);
    deepStrictEqual(answerIds.map((id) => t.decode([id])), [...example.answer]);
    const start = example.solution.lastIndexOf(example.answer);
    strictEqual(t.charToTokenIndex(ids, start), at + 2);
  }
});

Deno.test("arithmeticTokenizerFiles() renders the chat template like formatExample()", () => {
  const t = tokenizer();
  const [example] = arithmeticDataset("train", { size: 1 });
  strictEqual(
    t.applyChatTemplate([{ role: "user", content: example.prompt }]),
    formatExample(example).prompt,
  );
  strictEqual(
    t.applyChatTemplate([
      { role: "user", content: example.prompt },
      { role: "assistant", content: example.solution },
    ], { addGenerationPrompt: false }),
    `${formatExample(example).text}\n`,
  );
});

Deno.test("writeArithmeticTokenizer() writes files that loadTokenizer() reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = join(dir, "nested", "tok");
    await writeArithmeticTokenizer(target);
    await writeArithmeticTokenizer(target); // replacing works
    const names = [...Deno.readDirSync(target)].map((e) => e.name).sort();
    deepStrictEqual(names, ["tokenizer.json", "tokenizer_config.json"]);
    const loaded = await loadTokenizer(target);
    const text = formatExample(arithmeticDataset("train", { size: 1 })[0]).text;
    deepStrictEqual(loaded.encode(text), tokenizer().encode(text));
    strictEqual(loaded.vocabSize, tokenizer().vocabSize);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
