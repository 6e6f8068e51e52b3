// Copyright 2025 the halo authors. MIT license.
// deno task gguf: its flags and errors, and exports of the bundled model (plain, F16, with a PEFT
// adapter directory) and of run checkpoints (full weights; LoRA adapters on their base model),
// each read back with model/gguf_reader.ts and compared with the safetensors weights (F16: their
// Math.f16round; the writer's rounding itself is checked in model/gguf_writer_test.ts) or with
// exportQwen3Gguf() given the same adapters in memory.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createLora, type Lora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { PEFT_PREFIX, savePeftAdapter } from "../adapters/peft_io.ts";
import { openSafetensors, readTensorF32 } from "../internal/safetensors.ts";
import { readQwen3Config } from "../model/config.ts";
import { exportQwen3Gguf } from "../model/gguf_export.ts";
import { type GgufFile, readGguf } from "../model/gguf_reader.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { saveCheckpoint } from "../trainer/checkpoint.ts";
import { DEFAULT_CONFIG } from "../trainer/config.ts";
import { loraParams, modelParams, paramTensors } from "../trainer/params.ts";
import { runAdapters } from "../trainer/run_adapters.ts";
import { validateConfig } from "../trainer/validate_config.ts";
import { main } from "./gguf.ts";

const MODEL = "models/arithmetic-tiny";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "halo_gguf_cli_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function read(path: string): Promise<GgufFile> {
  return readGguf(await Deno.readFile(path));
}

function tensor(file: GgufFile, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name);
  assert.ok(t?.data, `tensor ${name}`);
  return t.data;
}

/** Every tensor of `a` equals the one of `b` of the same name, bit for bit, in the same order. */
function sameTensors(a: GgufFile, b: GgufFile): void {
  assert.deepEqual(a.tensors.map((t) => t.name), b.tensors.map((t) => t.name));
  for (const t of a.tensors) assert.deepEqual(t.data, tensor(b, t.name), t.name);
}

/** Fills every parameter with values from a small LCG (nonzero B, so the merge shows). */
function scramble(lora: Lora, seed: number): void {
  let s = seed;
  for (const values of Object.values(loraParams(lora).tree)) {
    for (let i = 0; i < values.length; i++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      values[i] = (s / 2 ** 31 - 0.5) * 0.2;
    }
  }
}

Deno.test("deno task gguf: --help, and each bad flag or input named, exit code 2", () =>
  withDir(async (dir) => {
    const help = capture();
    assert.equal(await main(["--help"], help.io), 0);
    assert.ok(help.out[0].startsWith("Usage: deno task gguf --model DIR --out FILE.gguf"));
    const out = join(dir, "x.gguf");
    const cases: [string[], string][] = [
      [["--model", MODEL, "--out", out, "--nope"], "Cannot export GGUF: Unknown option '--nope'"],
      [
        ["--model", MODEL, "--out", out, "extra"],
        "Cannot export GGUF: Unexpected argument 'extra'",
      ],
      [["--out", out], "Cannot export GGUF: --model is required (a model directory)"],
      [["--model", MODEL], "Cannot export GGUF: --out is required (the .gguf file to write)"],
      [
        ["--model", MODEL, "--out", out, "--dtype", "bf16"],
        'Cannot export GGUF: --dtype must be "f32" or "f16": current value is "bf16"',
      ],
      [
        ["--model", MODEL, "--out", out, "--pre", "qwen 2"],
        'Cannot export GGUF: --pre must be a llama.cpp pre-tokenizer name (such as "qwen2" or ' +
        '"default"): current value is "qwen 2"',
      ],
      [
        ["--model", join(dir, "none"), "--out", out],
        `Cannot export GGUF: --model "${join(dir, "none")}": directory not found`,
      ],
      [
        ["--model", dir, "--out", out],
        `Cannot export GGUF: --model "${dir}" must be a model directory (config.json) or a ` +
        `checkpoint (step_NNNNNN/ with meta.json): it has neither`,
      ],
      [
        ["--model", MODEL, "--out", out, "--adapter", join(dir, "none")],
        "adapter_config.json",
      ],
    ];
    for (const [args, message] of cases) {
      const { err, io } = capture();
      assert.equal(await main(args, io), 2, args.join(" "));
      assert.ok(err[0].includes(message), `${args.join(" ")}\n${err.join("\n")}`);
    }
    assert.deepEqual([...Deno.readDirSync(dir)], [], "no file written");
  }));

Deno.test("deno task gguf exports the bundled model: F32 tensors = safetensors, F16 = their rounding", () =>
  withDir(async (dir) => {
    const { out, err, io } = capture();
    const f32 = join(dir, "arith.gguf");
    assert.equal(await main(["--model", MODEL, "--out", f32], io), 0, err.join("\n"));
    assert.match(
      out[0],
      new RegExp(
        `^wrote ${f32}: ${MODEL}, 24 tensors \\(f32\\), 0\\.\\d MB, tokenizer\\.ggml\\.pre "default"$`,
      ),
    );
    const f16 = join(dir, "arith-f16.gguf");
    assert.equal(await main(["--model", MODEL, "--out", f16, "--dtype", "f16"], io), 0);
    const pre = join(dir, "arith-pre.gguf");
    assert.equal(await main(["--model", MODEL, "--out", pre, "--pre", "qwen2"], io), 0);
    const [a, b, c] = [await read(f32), await read(f16), await read(pre)];
    assert.equal(a.metadata.get("general.file_type")?.value, 0);
    assert.equal(b.metadata.get("general.file_type")?.value, 1);
    assert.equal(c.metadata.get("tokenizer.ggml.pre")?.value, "qwen2");
    assert.equal(a.metadata.get("tokenizer.ggml.pre")?.value, "default");
    const st = await openSafetensors(join(MODEL, "model.safetensors"));
    try {
      const want = readTensorF32(st, "model.layers.1.self_attn.q_proj.weight");
      assert.deepEqual(tensor(a, "blk.1.attn_q.weight"), want);
      assert.deepEqual(tensor(c, "blk.1.attn_q.weight"), want);
      const half = b.tensors.find((t) => t.name === "blk.1.attn_q.weight")!;
      assert.equal(half.ggmlType, 1, "F16");
      assert.deepEqual(half.data, want.map(Math.f16round));
      const norm = b.tensors.find((t) => t.name === "blk.1.attn_norm.weight")!;
      assert.equal(norm.ggmlType, 0, "norms stay F32");
      assert.deepEqual(norm.data, readTensorF32(st, "model.layers.1.input_layernorm.weight"));
    } finally {
      st.close();
    }
  }));

Deno.test("deno task gguf --adapter merges a PEFT directory as exportQwen3Gguf() merges the same LoRA", () =>
  withDir(async (dir) => {
    const config = await readQwen3Config(MODEL);
    const lora = createLora(
      loraConfig({ r: 2, loraAlpha: 4, targetModules: ["q_proj", "down_proj"] }),
      config,
      { seed: 3 },
    );
    scramble(lora, 7);
    const adapterDir = join(dir, "adapter");
    await savePeftAdapter(adapterDir, lora, { baseModelNameOrPath: MODEL });
    const { out, err, io } = capture();
    const path = join(dir, "merged.gguf");
    assert.equal(await main(["--model", MODEL, "--adapter", adapterDir, "--out", path], io), 0);
    assert.equal(err.length, 0, err.join("\n"));
    assert.ok(out[0].endsWith(", LoRA merged into 4 projections"), out[0]);
    const ref = await exportQwen3Gguf(MODEL, join(dir, "ref.gguf"), { adapter: lora });
    const [got, want] = [await read(path), await read(ref.path)];
    sameTensors(got, want);
    // The merge changed the adapted projections only.
    const base = await read((await exportQwen3Gguf(MODEL, join(dir, "base.gguf"))).path);
    const changed = got.tensors.filter((t) =>
      JSON.stringify(Array.from(t.data!)) !==
        JSON.stringify(Array.from(tensor(base, t.name)))
    ).map((t) => t.name);
    assert.deepEqual(changed, [
      "blk.0.attn_q.weight",
      "blk.0.ffn_down.weight",
      "blk.1.attn_q.weight",
      "blk.1.ffn_down.weight",
    ]);
  }));

Deno.test("deno task gguf exports a run's checkpoint: LoRA adapters merged on its base model, or full weights", () =>
  withDir(async (dir) => {
    const modelConfig = await readQwen3Config(MODEL);
    // A LoRA run's config as the trainer saves it, and its adapters after some training.
    const runConfig = validateConfig({
      ...structuredClone(DEFAULT_CONFIG),
      model: { ...DEFAULT_CONFIG.model, path: MODEL },
      adapters: {
        ...structuredClone(DEFAULT_CONFIG.adapters),
        kind: "lora",
        r: 2,
        alpha: 8,
        targets: ["v_proj", "up_proj"],
      },
    });
    const lora = runAdapters(runConfig, modelConfig)!;
    scramble(lora, 11);
    const meta = { config: runConfig, dataPosition: 0, rng: {}, metrics: {} };
    const step = await saveCheckpoint(join(dir, "lora_run"), {
      step: 4,
      weights: "adapter",
      tensors: paramTensors(loraParams(lora), { prefix: PEFT_PREFIX }),
      optimizer: {},
      meta,
    });
    const { out, err, io } = capture();
    const path = join(dir, "step4.gguf");
    assert.equal(await main(["--model", step, "--out", path], io), 0, err.join("\n"));
    assert.ok(out[0].includes(`${step} (LoRA merged into ${MODEL})`), out[0]);
    const got = await read(path);
    assert.equal(got.metadata.get("general.name")?.value, "lora_run-step_000004");
    sameTensors(
      got,
      await read((await exportQwen3Gguf(MODEL, `${path}.ref`, { adapter: lora })).path),
    );
    // --adapter is refused with a checkpoint; so is a checkpoint on a builtin: model.
    const both = capture();
    assert.equal(await main(["--model", step, "--adapter", step, "--out", path], both.io), 2);
    assert.ok(both.err[0].includes("--adapter cannot be combined with a checkpoint"), both.err[0]);
    const builtin = await saveCheckpoint(join(dir, "builtin_run"), {
      step: 1,
      weights: "adapter",
      tensors: {},
      optimizer: {},
      meta: { ...meta, config: { ...runConfig, model: DEFAULT_CONFIG.model } },
    });
    const b = capture();
    assert.equal(await main(["--model", builtin, "--out", path], b.io), 2);
    assert.equal(
      b.err[0],
      `Cannot export GGUF: --model "${builtin}": the checkpoint's key "model.path" must name a ` +
        `model directory (the tokenizer and base weights): current value is "builtin:tiny"`,
    );
    // A full-fine-tuning checkpoint: its weights (the final norm doubled) on the base's tokenizer.
    const weights = await loadQwen3Weights(MODEL, modelConfig);
    const tree = modelParams(weights, modelConfig).tree;
    const norm = tree["model.norm.weight"].map((x) => 2 * x);
    tree["model.norm.weight"] = norm;
    const full = await saveCheckpoint(join(dir, "full_run"), {
      step: 2,
      tensors: tree,
      optimizer: {},
      meta: { ...meta, config: { model: { path: MODEL } } },
    });
    const f = capture();
    const fullPath = join(dir, "full.gguf");
    assert.equal(await main(["--model", full, "--out", fullPath, "--dtype", "f16"], f.io), 0);
    assert.ok(f.out[0].includes(`${full} (full weights on ${MODEL})`), f.out[0]);
    const fullFile = await read(fullPath);
    assert.deepEqual(tensor(fullFile, "output_norm.weight"), norm);
    assert.deepEqual(
      tensor(fullFile, "token_embd.weight"),
      weights.embedTokens.map(Math.f16round),
    );
  }));

Deno.test("deno task gguf refuses an --out inside --model or --adapter, an existing non-.gguf file or a directory, before any work", () =>
  withDir(async (dir) => {
    const model = join(dir, "m");
    await Deno.mkdir(model);
    for (const entry of Deno.readDirSync(MODEL)) {
      await Deno.copyFile(join(MODEL, entry.name), join(model, entry.name));
    }
    const weights = join(model, "model.safetensors");
    const before = await Deno.readFile(weights);
    const adapter = join(dir, "adapter");
    await Deno.mkdir(adapter);
    const notes = join(dir, "notes.txt");
    await Deno.writeTextFile(notes, "keep me");
    const outDir = join(dir, "outdir");
    await Deno.mkdir(outDir);
    const cases: [string[], string][] = [
      [
        ["--model", model, "--out", weights],
        `Cannot export GGUF: --out "${weights}" is inside --model "${model}"`,
      ],
      [
        ["--model", model, "--out", join(model, "new.gguf")],
        `Cannot export GGUF: --out "${join(model, "new.gguf")}" is inside --model "${model}"`,
      ],
      [
        ["--model", model, "--adapter", adapter, "--out", join(adapter, "x.gguf")],
        `Cannot export GGUF: --out "${join(adapter, "x.gguf")}" is inside --adapter "${adapter}"`,
      ],
      [
        ["--model", model, "--out", notes],
        `Cannot export GGUF: --out "${notes}" exists and is not a .gguf file`,
      ],
      [
        ["--model", model, "--out", outDir],
        `Cannot export GGUF: --out "${outDir}" is a directory (give the .gguf file to write)`,
      ],
    ];
    for (const [args, message] of cases) {
      const { err, io } = capture();
      assert.equal(await main(args, io), 2, args.join(" "));
      assert.ok(err[0]?.startsWith(message), `${args.join(" ")}\n${err.join("\n")}`);
    }
    assert.deepEqual(await Deno.readFile(weights), before);
    assert.equal(await Deno.readTextFile(notes), "keep me");
    assert.deepEqual([...Deno.readDirSync(outDir)], []);
    assert.deepEqual([...Deno.readDirSync(adapter)], []);
  }));
