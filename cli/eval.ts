// Copyright 2025 the halo authors. MIT license.
/**
 * Command line front end of the evaluation: samples k responses per problem, verifies them and
 * reports pass@k, avg@n and maj@k with 95% confidence intervals.
 *
 * ```sh
 * deno task eval --model models/arithmetic-tiny --data arithmetic --k 8 --limit 50 --backend cpu
 * deno task eval --model checkpoints/qwen3-0.6b --data math500 --k 16 --max-new-tokens 2048
 * deno task eval --model M --adapter none --adapter out/run/final --data gsm8k   # side by side
 * ```
 *
 * Writes `samples.jsonl`, `summary.json`, `summary.md` and `pass_at_k.svg` in `--out` (several
 * models or adapters: one folder each, plus `comparison.md` and `pass_at_k.svg` beside them), with
 * `eval_config.json` (the settings a resume must match) and `timing.jsonl` (one line per session).
 * Running the same command again resumes an interrupted run. Exit code 0 on success (also when
 * `--stop-after` stopped the run early), 2 on a usage or input error.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { evalTitle, runEval, type RunEvalResult } from "../eval/run_eval.ts";
import { comparisonMarkdown, formatInterval, passAtKChart } from "../eval/eval_report.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { openModelForAdapter, pairModelsAndAdapters } from "./_model_adapter.ts";
import { isInputError } from "./_input_error.ts";

/**
 * Where {@linkcode main} writes its output.
 *
 * @example Usage
 * ```ts
 * import type { EvalCliIO } from "./eval.ts";
 *
 * const lines: string[] = [];
 * const io: EvalCliIO = { out: (l) => lines.push(l), err: (l) => lines.push(l), progress: null };
 * ```
 */
export interface EvalCliIO {
  /** Writes one line of normal output. */
  out: (line: string) => void;
  /** Writes one line of error output (also the progress line's notes). */
  err: (line: string) => void;
  /** Where the progress line goes (default: stderr); `null` for none. */
  progress?: ((text: string) => void) | null;
}

const USAGE = `Usage: deno task eval --model DIR [--adapter DIR] --data NAME|FILE.jsonl [options]

Samples --k responses per problem, verifies them (eval mode) and reports pass@k (k = 1, 2, 4, ...
below --k, and --k), avg@k and maj@k with 95% confidence intervals, overall and per MATH-500 subject
and level.

Options:
  --model DIR            model directory (HuggingFace Qwen3, or a run's final/), adapter directory (a
                         LoRA/HILO run's final/, on the base model it names) or checkpoint
                         out/<run>/step_NNNNNN/ (on its base model); repeat to compare models
  --adapter DIR          PEFT LoRA or HILO adapter on the model; repeat to compare ("none" = the base)
  --data NAME|FILE       gsm8k, math500, arithmetic, or a .jsonl file
  --k N                  samples per problem (default 16)
  --temperature T        sampling temperature, 0 = greedy (default 0.6)
  --top-p P              nucleus sampling (default 0.95)
  --max-new-tokens N     most generated tokens per sample (default 64 for arithmetic, else 1024)
  --template T           boxed | dapo | task | a text with {question} (default: the rl.template
                         of the RL run whose checkpoint is evaluated, else task for
                         arithmetic, boxed otherwise); rendered with the chat template
  --thinking             Qwen3 thinking mode (the chat template's enable_thinking; default off:
                         the prompt ends with an empty <think></think> block)
  --stop IDS             extra stop token ids, comma-separated (e.g. 151645); always added: the
                         EOS ids and the chat template's end of turn (<|im_end|>), as in RL
  --no-problem-nouns     ablate the verifier's noun rule: without it, "12 bananas" counts as 12
                         (and votes with 12) when the problem counts bananas; with this flag
                         trailing words are part of the answer
  --limit N              only the first N problems (arithmetic: default 200)
  --backend B            cpu | webgpu | auto (default auto: WebGPU when an adapter exists)
  --submit-every-layers N
                         WebGPU: decoder layers per queue submit in the prefill (0: one submit;
                         default 1 on a hardware adapter, 0 on a software one; same results)
  --seed S               sampling seed (default 0); prompt seeds derive from (S, prompt id)
  --out DIR              output folder (default out/eval/<model>_<data>)
  --overwrite            start afresh instead of resuming the folder's run
  --stop-after N         stop after N newly finished prompts (continue later by rerunning)
  --quiet                no progress line
  -h, --help             show this help`;

const defaultIO: EvalCliIO = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/**
 * One model (with an optional adapter) to evaluate, with its name and output folder.
 *
 * @example Usage
 * ```ts
 * import type { EvalSystem } from "./eval.ts";
 *
 * const system: EvalSystem = { name: "final", model: "models/m", adapter: "out/run/final", outDir: "out/eval/x/final" };
 * ```
 */
export interface EvalSystem {
  /** The column name in the comparison (folder name of the adapter or model). */
  name: string;
  /** The model directory. */
  model: string;
  /** The adapter directory, or `null`. */
  adapter: string | null;
  /** Where its files go. */
  outDir: string;
}

function baseName(path: string): string {
  return path.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1) || path;
}

/**
 * Pairs `--model` and `--adapter` values into the systems to evaluate: no adapter, each model;
 * one model, each adapter on it (`none` = the bare model); otherwise the i-th adapter on the i-th
 * model. With several systems each gets a subfolder of `out` named after it (made unique).
 *
 * @param models The `--model` values.
 * @param adapters The `--adapter` values.
 * @param out The output folder.
 * @returns The systems in order.
 * @throws {RangeError} When there is no model, or the counts cannot be paired (names the flags).
 *
 * @example One model, the base and an adapter
 * ```ts
 * import { pairSystems } from "./eval.ts";
 * import assert from "node:assert/strict";
 *
 * const systems = pairSystems(["models/m"], ["none", "out/run/final"], "out/eval/cmp");
 * assert.deepEqual(systems.map((s) => [s.name, s.adapter, s.outDir]), [
 *   ["m", null, "out/eval/cmp/m"],
 *   ["final", "out/run/final", "out/eval/cmp/final"],
 * ]);
 * ```
 */
export function pairSystems(
  models: readonly string[],
  adapters: readonly string[],
  out: string,
): EvalSystem[] {
  if (models.length === 0) {
    throw new RangeError("Cannot evaluate: --model is required (a model directory)");
  }
  const pairs = pairModelsAndAdapters(models, adapters, "Cannot evaluate");
  const used = new Set<string>();
  return pairs.map(({ model, adapter: adapterDir }) => {
    const base = baseName(adapterDir ?? model);
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    return { name, model, adapter: adapterDir, outDir: pairs.length === 1 ? out : join(out, name) };
  });
}

function positiveInteger(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `Cannot evaluate: ${flag} must be a positive integer: current value is "${value}"`,
    );
  }
  return n;
}

/**
 * A comma-separated list of token ids (`--stop 151645,151643`); `undefined` when the flag is
 * absent.
 */
function tokenIds(flag: string, value: string | undefined): number[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(",").map((item) => item.trim());
  const ids = items.map(Number);
  if (items.some((item, i) => !/^\d+$/.test(item) || !Number.isSafeInteger(ids[i]))) {
    throw new RangeError(
      `Cannot evaluate: ${flag} must be comma-separated non-negative integer token ids: ` +
        `current value is "${value}"`,
    );
  }
  return ids;
}

function finiteNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new RangeError(`Cannot evaluate: ${flag} must be a number: current value is "${value}"`);
  }
  return n;
}

function headline(name: string, r: RunEvalResult): string {
  const s = r.summary!;
  const kMax = s.ks.at(-1)!;
  const tokPerS = r.seconds > 0 ? (r.generatedTokens / r.seconds).toFixed(1) : "?";
  const parts = [
    `${name}: ${s.problems} problems × ${s.samplesPerProblem} samples`,
    `pass@1 ${formatInterval(s.overall.passAtK[1])}`,
    // With k = 1, pass@k is pass@1: shown once.
    ...(kMax > 1 ? [`pass@${kMax} ${formatInterval(s.overall.passAtK[kMax])}`] : []),
    `maj@${kMax} ${formatInterval(s.overall.majAtK[kMax])}`,
    `this session ${r.generatedTokens} tokens in ${r.seconds.toFixed(1)} s (${tokPerS} tok/s)`,
  ];
  return parts.join(" | ");
}

/**
 * Runs the command with the given arguments.
 *
 * @param args Command-line arguments (without the program name).
 * @param io Output (defaults to the console).
 * @returns The exit code: 0 on success (or a run stopped by `--stop-after`), 2 on a usage or
 * input error.
 *
 * @example Bad input names the flag
 * ```ts
 * import { main } from "./eval.ts";
 * import assert from "node:assert/strict";
 *
 * const errors: string[] = [];
 * const io = { out: () => {}, err: (l: string) => errors.push(l), progress: null };
 * assert.equal(await main(["--model", "models/arithmetic-tiny", "--data", "nope"], io), 2);
 * assert.ok(errors[0].includes("--data"));
 * ```
 */
export async function main(args: readonly string[], io: EvalCliIO = defaultIO): Promise<number> {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    const parsed = parseArgs({
      args: [...args],
      allowPositionals: false,
      options: {
        model: { type: "string", multiple: true },
        adapter: { type: "string", multiple: true },
        data: { type: "string" },
        k: { type: "string" },
        temperature: { type: "string" },
        "top-p": { type: "string" },
        "max-new-tokens": { type: "string" },
        template: { type: "string" },
        thinking: { type: "boolean" },
        stop: { type: "string" },
        "no-problem-nouns": { type: "boolean" },
        limit: { type: "string" },
        backend: { type: "string" },
        "submit-every-layers": { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        overwrite: { type: "boolean" },
        "stop-after": { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    values = parsed.values;
  } catch (error) {
    io.err(`Cannot evaluate: ${(error as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  try {
    const str = (key: string) => values[key] as string | undefined;
    if (str("data") === undefined) {
      throw new RangeError(
        'Cannot evaluate: --data is required ("gsm8k", "math500", "arithmetic" or a .jsonl file)',
      );
    }
    const data = str("data")!;
    const models = (values.model as string[] | undefined) ?? [];
    const adapters = (values.adapter as string[] | undefined) ?? [];
    const dataName = baseName(data).replace(/\.jsonl$/, "");
    const out = str("out") ??
      join(
        "out",
        "eval",
        models.length === 1 && adapters.length <= 1
          ? `${baseName(adapters[0] ?? models[0] ?? "model")}_${dataName}`
          : `compare_${dataName}`,
      );
    if ((await Deno.stat(out).catch(() => null))?.isFile) {
      throw new RangeError(
        `Cannot evaluate: --out "${out}" is a file: give a directory (created if missing)`,
      );
    }
    const systems = pairSystems(models, adapters, out);
    const k = positiveInteger("--k", str("k")) ?? 16;
    const backend = str("backend") ?? "auto";
    if (!["cpu", "webgpu", "auto"].includes(backend)) {
      throw new RangeError(
        `Cannot evaluate: --backend must be "cpu", "webgpu" or "auto": current value is "${backend}"`,
      );
    }
    const submitText = str("submit-every-layers");
    const submitEvery = submitText === undefined ? undefined : Number(submitText);
    if (
      submitText !== undefined &&
      (submitText.trim() === "" || !Number.isSafeInteger(submitEvery) || submitEvery! < 0)
    ) {
      throw new RangeError(
        `Cannot evaluate: --submit-every-layers must be an integer ≥ 0: current value is ` +
          `"${submitText}"`,
      );
    }
    const seedText = str("seed");
    const seed = seedText === undefined ? 0 : Number(seedText);
    if (seedText !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) {
      throw new RangeError(
        `Cannot evaluate: --seed must be a non-negative integer: current value is "${seedText}"`,
      );
    }
    const results: { name: string; result: RunEvalResult }[] = [];
    for (const system of systems) {
      const result = await runEval({
        model: system.model,
        adapter: system.adapter,
        data,
        k,
        temperature: finiteNumber("--temperature", str("temperature")) ?? 0.6,
        topP: finiteNumber("--top-p", str("top-p")) ?? 0.95,
        maxNewTokens: positiveInteger("--max-new-tokens", str("max-new-tokens")),
        template: str("template"),
        thinking: values.thinking === true,
        stop: tokenIds("--stop", str("stop")) ?? [],
        problemNouns: values["no-problem-nouns"] !== true,
        limit: positiveInteger("--limit", str("limit")),
        backend: backend as "cpu" | "webgpu" | "auto",
        seed,
        outDir: system.outDir,
        overwrite: values.overwrite === true,
        stopAfter: positiveInteger("--stop-after", str("stop-after")),
        progress: values.quiet || io.progress === null ? false : {
          write: io.progress,
          label: systems.length > 1 ? system.name : undefined,
        },
        log: io.err,
        openModel: async (dir, { backend }) => {
          // runEval sets the adapter itself (and checks it against the record of a resume).
          const opened = await openModelForAdapter(dir, system.adapter, {
            backend,
            cannot: "Cannot evaluate",
          });
          // The CPU backend has no submits to split.
          if (submitEvery !== undefined && opened.model instanceof WebGpuQwen3) {
            opened.model.submitEveryLayers = submitEvery;
          }
          return opened;
        },
      });
      results.push({ name: system.name, result });
      if (!result.complete) {
        io.out(
          `${system.name}: stopped after ${result.promptsDone} of ${result.promptsTotal} ` +
            `prompts; rerun the same command to continue`,
        );
        return 0;
      }
      io.out(headline(system.name, result));
      io.out(`  wrote ${system.outDir}/{samples.jsonl,summary.json,summary.md,pass_at_k.svg}`);
    }
    if (systems.length > 1) {
      const entries = results.map(({ name, result }) => ({ name, summary: result.summary! }));
      await writeFileAtomic(join(out, "comparison.md"), comparisonMarkdown(entries));
      const title = `pass@k on ${evalTitle({ model: "", data }).replace(/^ on /, "")}`;
      await writeFileAtomic(join(out, "pass_at_k.svg"), await passAtKChart(entries, { title }));
      io.out(`  wrote ${out}/{comparison.md,pass_at_k.svg}`);
    }
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
