// Copyright 2025 the halo authors. MIT license.
/**
 * Command line front end of the GGUF export: writes a model directory, optionally with a PEFT
 * LoRA adapter merged, or a run's checkpoint, as a GGUF file that llama.cpp loads as Qwen3.
 *
 * ```sh
 * deno task gguf --model models/arithmetic-tiny --out arith.gguf
 * deno task gguf --model checkpoints/qwen3-0.6b --adapter out/run/final --out v1.gguf --dtype f16
 * deno task gguf --model out/run/step_000200 --out step200.gguf   # a checkpoint on its base model
 * ```
 *
 * A checkpoint `<run>/step_NNNNNN/` is exported on the base model its `meta.json` names (the run's
 * key `model.path`, which must be a model directory, not `builtin:`): full weights as they are, an
 * adapter checkpoint's LoRA (rebuilt from the run's key `adapters`, then given the checkpoint's
 * values) merged. Exit code 0 on success, 2 on a usage or input error.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, dirname, join } from "node:path";
import type { Lora } from "../adapters/lora.ts";
import { PEFT_PREFIX } from "../adapters/peft_io.ts";
import { exists, statIfExists } from "../internal/exists.ts";
import { isWithin, realPathLoose } from "../internal/real_path.ts";
import { readQwen3Config } from "../model/config.ts";
import { exportQwen3Gguf, type ExportQwen3GgufOptions } from "../model/gguf_export.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { checkBaseModel, loadCheckpoint } from "../trainer/checkpoint.ts";
import { assignParams, loraParams, modelParams } from "../trainer/params.ts";
import { withSavedConfigDefaults } from "../trainer/saved_config.ts";
import { runAdapters } from "../trainer/run_adapters.ts";
import type { ParamTree } from "../trainer/types.ts";
import { validateConfig } from "../trainer/validate_config.ts";
import { isInputError } from "./_input_error.ts";

/**
 * Where {@linkcode main} writes its output.
 *
 * @example Usage
 * ```ts
 * import type { GgufCliIO } from "./gguf.ts";
 *
 * const lines: string[] = [];
 * const io: GgufCliIO = { out: (l) => lines.push(l), err: (l) => lines.push(l) };
 * ```
 */
export interface GgufCliIO {
  /** Writes one line of normal output. */
  out: (line: string) => void;
  /** Writes one line of error output. */
  err: (line: string) => void;
}

const USAGE = `Usage: deno task gguf --model DIR --out FILE.gguf [--adapter DIR] [options]

Writes the model as a GGUF file that llama.cpp (llama-server) loads as Qwen3, with a PEFT LoRA
adapter merged into the weights if given (W + scale·B·A in float64, rounded once).

Options:
  --model DIR        model directory (HuggingFace Qwen3, or a full fine-tuning run's final/), or
                     a run's checkpoint out/<run>/step_NNNNNN/ (full weights, or LoRA adapters
                     merged, on the base model its meta.json names); for a LoRA run's final/
                     (a PEFT adapter) give --model BASE --adapter out/<run>/final
  --out FILE         the GGUF file to write (an existing .gguf file is replaced atomically; not
                     a directory, another existing file, or a path inside --model/--adapter)
  --adapter DIR      PEFT LoRA adapter directory to merge (not with a checkpoint; HILO mixtures
                     cannot be merged)
  --dtype f32|f16    storage of the weight matrices (default f32; f16 halves the file, norms stay
                     f32, a value past ±65504 is an error naming the tensor)
  --pre NAME         tokenizer.ggml.pre, llama.cpp's pre-tokenizer for text prompts (default:
                     detected from tokenizer.json: qwen2 for Qwen's tokenizer, else default)
  -h, --help         show this help`;

const defaultIO: GgufCliIO = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** What to export: the directory with config and tokenizer, and what goes on top of it. */
interface ExportSource {
  modelDir: string;
  options: Pick<ExportQwen3GgufOptions, "adapter" | "weights" | "name">;
  /** How the output line describes it. */
  what: string;
  /** A warning to print first (a checkpoint whose base model cannot be checked). */
  warning?: string | null;
}

/**
 * A checkpoint's weights on its base model: full weights as `weights`, adapters as a LoRA built
 * from the run's config and given the checkpoint's values.
 */
async function checkpointSource(dir: string): Promise<ExportSource> {
  const what = `Cannot export GGUF: --model "${dir}"`;
  const checkpoint = await loadCheckpoint(dir);
  const meta = checkpoint.meta;
  const base = (meta.config as { model?: { path?: unknown } } | null)?.model?.path;
  if (typeof base !== "string" || base.startsWith("builtin:")) {
    throw new RangeError(
      `${what}: the checkpoint's key "model.path" must name a model directory (the tokenizer and ` +
        `base weights): current value is ${JSON.stringify(base)}`,
    );
  }
  if (!(await exists(join(base, "config.json")))) {
    throw new Deno.errors.NotFound(
      `${what}: the checkpoint's base model "${base}" (key "model.path") has no config.json ` +
        `(a relative path is read from the current directory)`,
    );
  }
  // Adapters fit only the base model they were trained on (its fingerprint is in meta.json).
  let warning: string | null;
  try {
    warning = await checkBaseModel(checkpoint, base);
  } catch (error) {
    throw new RangeError(`${what}: ${(error as Error).message}`);
  }
  const name = `${basename(dirname(dir.replace(/[\\/]+$/, "")))}-${basename(dir)}`;
  const config = await readQwen3Config(base);
  const values: ParamTree = {};
  const prefix = meta.weights === "adapter" ? PEFT_PREFIX : "";
  for (const [key, tensor] of Object.entries(checkpoint.tensors)) {
    if (!key.startsWith(prefix) || !(tensor.data instanceof Float32Array)) {
      throw new TypeError(`${what}: tensor "${key}" is not a float parameter of a ${meta.weights}`);
    }
    values[key.slice(prefix.length)] = tensor.data;
  }
  const fit = (target: ParamTree) => {
    try {
      assignParams(target, values);
    } catch (error) {
      const message = `${what}: its tensors do not fit the base model "${base}": ${
        (error as Error).message
      }`;
      throw error instanceof RangeError ? new RangeError(message) : new TypeError(message);
    }
  };
  if (meta.weights === "model") {
    const weights = await loadQwen3Weights(base, config);
    fit(modelParams(weights, config).tree);
    return {
      modelDir: base,
      options: { weights, name },
      what: `${dir} (full weights on ${base})`,
      warning,
    };
  }
  // An adapter checkpoint holds only the A/B (and router) tensors: the run's key "adapters"
  // says which modules with what rank and scale.
  const run = validateConfig(withSavedConfigDefaults(meta.config), {
    source: join(dir, "meta.json"),
  });
  const lora: Lora | null = runAdapters(run, config);
  if (lora === null || lora.hilo !== undefined) {
    throw new RangeError(
      `${what}: only a LoRA adapter checkpoint can be merged into GGUF weights: the run's key ` +
        `"adapters.kind" is "${run.adapters.kind}"` +
        (lora?.hilo ? " (a HILO mixture routes its experts per token)" : ""),
    );
  }
  fit(loraParams(lora).tree);
  return {
    modelDir: base,
    options: { adapter: lora, name },
    what: `${dir} (LoRA merged into ${base})`,
    warning,
  };
}

/**
 * Refuses an `--out` inside one of the input directories, an existing file not ending in
 * `.gguf`, or an existing directory.
 */
async function checkOut(out: string, inputs: [string, string | undefined][]): Promise<void> {
  const target = await realPathLoose(out);
  for (const [flag, dir] of inputs) {
    if (dir === undefined) continue;
    if (isWithin(await realPathLoose(dir), target)) {
      throw new RangeError(
        `Cannot export GGUF: --out "${out}" is inside ${flag} "${dir}" (it would write over or ` +
          `beside the input): write the .gguf file elsewhere`,
      );
    }
  }
  const info = await statIfExists(out);
  if (info === null) return;
  if (info.isDirectory) {
    throw new RangeError(
      `Cannot export GGUF: --out "${out}" is a directory (give the .gguf file to write)`,
    );
  }
  if (!out.toLowerCase().endsWith(".gguf")) {
    throw new RangeError(
      `Cannot export GGUF: --out "${out}" exists and is not a .gguf file (it would be replaced): ` +
        `give a path ending in .gguf, or remove the file first`,
    );
  }
}

/**
 * Runs the command with the given arguments.
 *
 * @param args Command-line arguments (without the program name).
 * @param io Output (defaults to the console).
 * @returns The exit code: 0 on success, 2 on a usage or input error.
 *
 * @example Bad input names the flag
 * ```ts
 * import { main } from "./gguf.ts";
 * import assert from "node:assert/strict";
 *
 * const errors: string[] = [];
 * const io = { out: () => {}, err: (l: string) => errors.push(l) };
 * const args = ["--model", "models/arithmetic-tiny", "--out", "x.gguf", "--dtype", "bf16"];
 * assert.equal(await main(args, io), 2);
 * assert.ok(errors[0].includes("--dtype"));
 * ```
 */
export async function main(args: readonly string[], io: GgufCliIO = defaultIO): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...args],
      allowPositionals: false,
      options: {
        model: { type: "string" },
        out: { type: "string" },
        adapter: { type: "string" },
        dtype: { type: "string" },
        pre: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    io.err(`Cannot export GGUF: ${(error as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  try {
    const str = (key: string) => values[key] as string | undefined;
    const model = str("model");
    const out = str("out");
    if (model === undefined || model === "") {
      throw new RangeError("Cannot export GGUF: --model is required (a model directory)");
    }
    if (out === undefined || out === "") {
      throw new RangeError("Cannot export GGUF: --out is required (the .gguf file to write)");
    }
    const dtype = str("dtype") ?? "f32";
    if (dtype !== "f32" && dtype !== "f16") {
      throw new RangeError(
        `Cannot export GGUF: --dtype must be "f32" or "f16": current value is "${dtype}"`,
      );
    }
    const pre = str("pre");
    if (pre !== undefined && !/^[a-z0-9._-]+$/i.test(pre)) {
      throw new RangeError(
        `Cannot export GGUF: --pre must be a llama.cpp pre-tokenizer name (such as "qwen2" or ` +
          `"default"): current value is "${pre}"`,
      );
    }
    const adapter = str("adapter");
    let source: ExportSource | null = null;
    if (await exists(join(model, "config.json"))) {
      source = {
        modelDir: model,
        options: adapter === undefined ? {} : { adapter },
        what: adapter === undefined ? model : `${model} with ${adapter} merged`,
      };
    } else if (!(await exists(model))) {
      throw new Deno.errors.NotFound(
        `Cannot export GGUF: --model "${model}": directory not found`,
      );
    } else if (!(await exists(join(model, "meta.json")))) {
      throw new RangeError(
        `Cannot export GGUF: --model "${model}" must be a model directory (config.json) or a ` +
          `checkpoint (step_NNNNNN/ with meta.json): it has neither`,
      );
    } else if (adapter !== undefined) {
      throw new RangeError(
        `Cannot export GGUF: --adapter cannot be combined with a checkpoint --model ("${model}"), ` +
          `whose own weights are exported: give its base model directory instead`,
      );
    }
    // Before any work: the output must not land on an input, on a file that is not a GGUF, or
    // on a directory.
    await checkOut(out, [["--model", model], ["--adapter", adapter]]);
    source ??= await checkpointSource(model);
    if (source.modelDir !== model) await checkOut(out, [["the base model", source.modelDir]]);
    if (source.warning) io.err(`Warning: ${source.warning}`);
    const result = await exportQwen3Gguf(source.modelDir, out, {
      ...source.options,
      dtype,
      ...(pre === undefined ? {} : { pre }),
    });
    io.out(
      `wrote ${result.path}: ${source.what}, ${result.tensors} tensors (${dtype}), ` +
        `${(result.bytes / 1e6).toFixed(1)} MB, tokenizer.ggml.pre "${result.pre}"` +
        (result.mergedModules > 0 ? `, LoRA merged into ${result.mergedModules} projections` : ""),
    );
    return 0;
  } catch (error) {
    if (isInputError(error)) {
      io.err(error.message);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
