import assert from "node:assert/strict";
import { checkTokenizerFitsModel } from "./check_tokenizer_vocab.ts";
import { loadTokenizer } from "./tokenizer.ts";
import { copyModelDir, expectError, withTempDir } from "../internal/test_utils.ts";

const FILES = { tokenizer: "t/tokenizer.json", config: "m/config.json" };

Deno.test("checkTokenizerFitsModel() accepts a model with at least as many rows as token ids", () => {
  // Qwen3: 151669 tokens, vocab_size 151936 (padding rows).
  const qwen3 = { vocabSize: 151669, decode: () => "" };
  checkTokenizerFitsModel(qwen3, { vocabSize: 151936 }, FILES);
  checkTokenizerFitsModel(qwen3, { vocabSize: 151669 }, FILES);
});

Deno.test("checkTokenizerFitsModel() rejects a token id at or past vocab_size, naming both files", async () => {
  await withTempDir(async (dir) => {
    // arithmetic-tiny (vocab_size 64) with one more vocab entry at id 70.
    const model = await copyModelDir(`${dir}/m`);
    const json = JSON.parse(await Deno.readTextFile(`${model}/tokenizer.json`));
    json.model.vocab["z"] = 70;
    await Deno.writeTextFile(`${model}/tokenizer.json`, JSON.stringify(json));
    const tokenizer = await loadTokenizer(model);
    assert.equal(tokenizer.vocabSize, 71);
    await expectError(() => checkTokenizerFitsModel(tokenizer, { vocabSize: 64 }, FILES), {
      type: RangeError,
      includes: ['"t/tokenizer.json"', '"m/config.json"', "id is 70", '"z"', '"vocab_size" is 64'],
    });
    // One row fewer than the ids: still an error; as many: fine.
    await expectError(() => checkTokenizerFitsModel(tokenizer, { vocabSize: 70 }, FILES), {
      type: RangeError,
      includes: ["id is 70"],
    });
    checkTokenizerFitsModel(tokenizer, { vocabSize: 71 }, FILES);
    // A directory names both of its files.
    await expectError(() => checkTokenizerFitsModel(tokenizer, { vocabSize: 64 }, model), {
      type: RangeError,
      includes: [`"${model}/tokenizer.json"`, `"${model}/config.json"`],
    });
  });
});
