// Copyright 2025 the halo authors. MIT license.
/**
 * One evaluation run of `deno task eval`: sample k responses per problem with `generate()`,
 * verify them (eval mode), append each finished prompt to `samples.jsonl`, and write
 * `summary.json`, `summary.md` and `pass_at_k.svg` (all atomically) once every problem is done.
 * A run that stops (killed, or `stopAfter`) continues where it left off when started again with
 * the same settings; the sampling seed of a prompt is a pure function of (seed, prompt id), so
 * the result equals that of an uninterrupted run.
 *
 * @module
 */

import { exists } from "../internal/exists.ts";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../internal/atomic_write.ts";
import {
  type DirFingerprint,
  type FileFingerprint,
  fingerprintDifference,
  fingerprintFile,
  fingerprintModel,
  parseFingerprint,
} from "../internal/fingerprint.ts";
import { isPlainObject } from "../internal/is_plain_object.ts";
import { loadModel } from "../model/load_model.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { checkTokenizerFitsModel } from "../model/check_tokenizer_vocab.ts";
import { endOfTurnTokenId } from "../model/end_of_turn.ts";
import { readGenerationConfig } from "../model/generation_config.ts";
import { generate } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import { mixNumber } from "../internal/random.ts";
import { loadAdapter } from "../adapters/load_adapter.ts";
import type { Lora } from "../adapters/lora.ts";
import { prepareGold } from "../verify/prepare_gold.ts";
import { verifyReadingNouns } from "../verify/verify.ts";
import {
  defaultTemplate,
  evalDataPath,
  type EvalProblem,
  evalTemplateMessage,
  loadEvalProblems,
} from "./eval_data.ts";
import { findRunTemplate } from "./run_template.ts";
import { findTrainDataOverlap } from "./train_data_overlap.ts";
import { type EvalSampleRecord, formatSampleLines, parseSamplesJsonl } from "./eval_records.ts";
import { type EvalSummary, summarizeEval, voteClasses } from "./eval_summary.ts";
import { passAtKChart, summaryMarkdown } from "./eval_report.ts";
import { createEvalProgress } from "./_progress.ts";
import { readJsonFile } from "../internal/read_json.ts";

/**
 * Options of {@linkcode runEval}. Errors name the matching `deno task eval` flag.
 *
 * @example Usage
 * ```ts
 * import type { RunEvalOptions } from "./run_eval.ts";
 *
 * const options: RunEvalOptions = {
 *   model: "models/arithmetic-tiny", data: "arithmetic", k: 8, temperature: 0.6,
 *   backend: "cpu", outDir: "out/eval/arith", limit: 50,
 * };
 * ```
 */
export interface RunEvalOptions {
  /** The model directory (`--model`). */
  model: string;
  /**
   * An adapter directory applied on the model (`--adapter`): PEFT LoRA or HILO, read by
   * `loadAdapter` (by the config's `peft_type`); default none.
   */
  adapter?: string | null;
  /** `"gsm8k"`, `"math500"`, `"arithmetic"` or a `.jsonl` path (`--data`). */
  data: string;
  /** Samples per problem, n (`--k`, a positive integer). */
  k: number;
  /** Sampling temperature (`--temperature`); 0 is greedy. */
  temperature: number;
  /** Nucleus sampling (`--top-p`), in (0, 1]; default 1. */
  topP?: number;
  /** Most generated tokens per sample (`--max-new-tokens`); default 64 for arithmetic, else 1024. */
  maxNewTokens?: number;
  /**
   * `"boxed"`, `"dapo"`, `"task"` or a text with `{question}` (`--template`); default: the
   * `rl.template` of the RL run behind `adapter` or `model` (its checkpoint `meta.json`), else per
   * data.
   */
  template?: string;
  /**
   * Qwen3's thinking mode (`--thinking`): the chat template's `enable_thinking`. Default `false`:
   * the prompt ends with an empty `<think>\n\n</think>\n\n` block. Give thinking a larger
   * `maxNewTokens`.
   */
  thinking?: boolean;
  /**
   * Extra ids that end a sample (`--stop 151645,151643`; reason `"stop"` in `samples.jsonl`).
   * They extend the derived stop set, as `rl.stopTokenIds` does for RL: the EOS ids of the
   * model's `config.json`, its tokenizer and `generation_config.json`, plus the chat template's
   * end-of-turn token when the prompts are rendered through it (`<|im_end|>`, which a
   * Qwen3-*-Base checkpoint does not list as an EOS). Default `[]`: the derived set alone.
   */
  stop?: readonly number[];
  /**
   * Give the verifier each problem's text (`VerifyOptions.problem`: `#### 12 bananas` is 12
   * for a problem about bananas, and votes with `12`); default `true`. `false`
   * (`--no-problem-nouns`) ablates the noun rule: trailing words are part of the answer.
   */
  problemNouns?: boolean;
  /** Evaluate the first this many problems (`--limit`); default all (arithmetic: 200). */
  limit?: number;
  /**
   * `"cpu"`, `"webgpu"` or `"auto"` (`--backend`; WebGPU when an adapter exists, else the CPU);
   * default `"auto"`. Both draw the same random numbers, so they give the same samples up to
   * float rounding.
   */
  backend?: "cpu" | "webgpu" | "auto";
  /** The run's seed (`--seed`), a non-negative safe integer; default 0. */
  seed?: number;
  /** The output folder (`--out`); created when missing. */
  outDir: string;
  /** Delete the folder's previous results instead of resuming (`--overwrite`); default false. */
  overwrite?: boolean;
  /**
   * Stop after this many newly finished prompts, as if killed (`--stop-after`): splits a long
   * run into sessions, and lets the tests interrupt a run. Default: run to the end.
   */
  stopAfter?: number;
  /**
   * Progress line: `false` for none, or where to write it (default stderr, redrawn in place on a
   * terminal).
   */
  progress?: false | { write?: (text: string) => void; tty?: boolean; label?: string };
  /** Notes (resume, dropped lines, written files); default `console.error`. */
  log?: (line: string) => void;
  /**
   * Opens `model`: the model and its tokenizer's directory. Default `loadModel` on a model
   * directory; `deno task eval` passes `loadModelOrCheckpoint` (trainer/checkpoint_model.ts),
   * which also opens a checkpoint `<run>/step_NNNNNN/` or an adapter directory on its base model.
   */
  openModel?: (
    dir: string,
    options: { backend: "cpu" | "webgpu" | "auto" },
  ) => Promise<{ model: Qwen3Model; tokenizerDir: string }>;
}

/**
 * Result of {@linkcode runEval}.
 *
 * @example Usage
 * ```ts
 * import type { RunEvalResult } from "./run_eval.ts";
 *
 * function line(r: RunEvalResult): string {
 *   return `${r.promptsDone}/${r.promptsTotal} prompts, ${r.generatedTokens} tokens`;
 * }
 * ```
 */
export interface RunEvalResult {
  /** The output folder. */
  outDir: string;
  /** Whether every problem is done and the summary was written. */
  complete: boolean;
  /** Problems in the run. */
  promptsTotal: number;
  /** Problems done (resumed ones included). */
  promptsDone: number;
  /** Problems found done in `samples.jsonl` at the start. */
  promptsResumed: number;
  /** Tokens generated in this session. */
  generatedTokens: number;
  /** Seconds spent generating and verifying in this session. */
  seconds: number;
  /** The summary, when complete. */
  summary: EvalSummary | null;
  /** The settings stored in `eval_config.json` and the summary. */
  config: Record<string, unknown>;
}

/** Settings added later, as folders written before them ran: such a folder still resumes. */
const SETTINGS_BEFORE_THEY_EXISTED: Readonly<Record<string, unknown>> = {
  thinking: false,
  stop: [],
  problemNouns: true,
};

function fail(message: string, type: typeof RangeError | typeof TypeError = RangeError): never {
  throw new type(`Cannot evaluate: ${message}`);
}

/**
 * The sampling seed of one prompt: a pure function of the run's seed and the prompt id (FNV-1a of
 * the id mixed with the seed), so a prompt draws the same samples whatever ran before it.
 *
 * @param seed The run's seed (a non-negative safe integer).
 * @param id The prompt id.
 * @returns A seed for `generate()`, in [0, 2^32).
 *
 * @example Usage
 * ```ts
 * import { promptSeed } from "./run_eval.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(promptSeed(0, "gsm8k/test/0001"), promptSeed(0, "gsm8k/test/0001"));
 * assert.notEqual(promptSeed(0, "a"), promptSeed(1, "a"));
 * ```
 */
export function promptSeed(seed: number, id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return mixNumber(mixNumber(0x6576616c, seed), h >>> 0);
}

function encodePrompt(tokenizer: Tokenizer, message: string, thinking: boolean): number[] {
  try {
    return tokenizer.encodeChat([{ role: "user", content: message }], {
      addGenerationPrompt: true,
      enableThinking: thinking,
    });
  } catch (error) {
    // A tokenizer without a chat template: the message as it is.
    if (/chat_template/.test((error as Error).message)) return tokenizer.encode(message);
    throw error;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

function resolveOptions(options: RunEvalOptions): Record<string, unknown> {
  const { k, temperature } = options;
  if (!Number.isInteger(k) || k < 1) fail(`--k must be a positive integer: current value is ${k}`);
  if (typeof temperature !== "number" || !(temperature >= 0) || !Number.isFinite(temperature)) {
    fail(`--temperature must be a finite number >= 0: current value is ${temperature}`);
  }
  const topP = options.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) fail(`--top-p must be in (0, 1]: current value is ${topP}`);
  const maxNewTokens = options.maxNewTokens ?? (options.data === "arithmetic" ? 64 : 1024);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
    fail(`--max-new-tokens must be a positive integer: current value is ${maxNewTokens}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    fail(`--seed must be a non-negative safe integer: current value is ${seed}`);
  }
  const backend = options.backend ?? "auto";
  if (!["cpu", "webgpu", "auto"].includes(backend)) {
    fail(`--backend must be "cpu", "webgpu" or "auto": current value is "${backend}"`);
  }
  if (
    options.stopAfter !== undefined &&
    (!Number.isInteger(options.stopAfter) || options.stopAfter < 1)
  ) {
    fail(`--stop-after must be a positive integer: current value is ${options.stopAfter}`);
  }
  const stop = options.stop ?? [];
  if (!Array.isArray(stop) || !stop.every((id) => Number.isSafeInteger(id) && id >= 0)) {
    fail(
      `--stop must be a list of non-negative integer token ids: current value is ` +
        `${JSON.stringify(stop)}`,
    );
  }
  const template = options.template ?? defaultTemplate(options.data);
  evalTemplateMessage("", template); // throws on an unknown template, naming --template
  const problemNouns = options.problemNouns ?? true;
  if (typeof problemNouns !== "boolean") {
    fail(
      `problemNouns (--no-problem-nouns) must be true or false: current value is ` +
        `${JSON.stringify(problemNouns)}`,
    );
  }
  return {
    model: options.model,
    adapter: options.adapter ?? null,
    data: options.data,
    limit: options.limit ?? null,
    template,
    thinking: options.thinking ?? false,
    stop: [...stop],
    k,
    temperature,
    topP,
    maxNewTokens,
    seed,
    backend,
    problemNouns,
  };
}

async function loadSystem(
  options: RunEvalOptions,
  backend: "cpu" | "webgpu" | "auto",
  log: (line: string) => void,
): Promise<{ model: Qwen3Model; tokenizer: Tokenizer; generationEos: number[] }> {
  // "auto": WebGPU when any adapter exists, software ones included: with its KV cache, batched
  // sampling on llvmpipe measured 110 tok/s against 50 tok/s on the CPU backend (which
  // recomputes the prefix each step) for arithmetic-tiny, k = 8, on the 2-core dev machine.
  const { model, tokenizerDir } = options.openModel
    ? await options.openModel(options.model, { backend })
    : {
      model: await loadModel(options.model, { backend, warn: false }),
      tokenizerDir: options.model,
    };
  log(`Sampling on ${model.backend} (${model.device})`);
  try {
    if (options.adapter) {
      let lora: Lora;
      try {
        lora = await loadAdapter(options.adapter, model.config);
      } catch (error) {
        const Type = (error as Error).constructor as ErrorConstructor;
        throw new Type(
          `Cannot evaluate: --adapter "${options.adapter}": ${(error as Error).message}`,
        );
      }
      (model as unknown as { setAdapters(lora: Lora | null): void }).setAdapters(lora);
    }
    const tokenizer = await loadTokenizer(tokenizerDir);
    const files = { tokenizer: join(tokenizerDir, "tokenizer.json"), config: options.model };
    checkTokenizerFitsModel(tokenizer, model.config, files);
    // As HF generate: generation_config.json's eos_token_id stops too (Qwen3: [151645, 151643]).
    const generationEos =
      (await readGenerationConfig(tokenizerDir, { vocabSize: model.config.vocabSize }))
        ?.eosTokenIds ?? [];
    return { model, tokenizer, generationEos };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Throws when a file behind `--model`, `--adapter` or `--data` differs from the record. */
function checkFingerprints(
  configPath: string,
  recorded: unknown,
  now: Record<string, unknown>,
  options: RunEvalOptions,
  dataPath: string | null,
): void {
  if (!isPlainObject(recorded)) {
    throw new TypeError(
      `Cannot resume the evaluation: "${configPath}": key "fingerprints" must be a mapping: ` +
        `current value is ${JSON.stringify(recorded)}`,
    );
  }
  const outDir = dirname(configPath);
  const sources: [string, string, string | null][] = [
    ["model", "--model", options.model],
    ["adapter", "--adapter", options.adapter ?? null],
    ["data", "--data", dataPath],
  ];
  for (const [key, flag, path] of sources) {
    const was = recorded[key];
    const is = now[key];
    if (was === undefined && is === undefined) continue;
    let difference: string | null;
    if (key === "data") {
      const wrap = (f: unknown) =>
        f === undefined ? {} : { [basename(path ?? "data")]: parseFileFingerprint(f, configPath) };
      difference = fingerprintDifference(
        wrap(was),
        wrap(is),
        path === null ? undefined : dirname(path),
      );
    } else {
      difference = fingerprintDifference(
        was === undefined ? {} : parseFingerprint(was, configPath, `fingerprints.${key}`),
        (is ?? {}) as DirFingerprint,
        path ?? undefined,
      );
    }
    if (difference !== null) {
      throw new Error(
        `Cannot resume the evaluation in "${outDir}": ${flag} "${path ?? "none"}" changed since ` +
          `its samples were drawn: ${difference} (a fingerprint: size and SHA-256, of sampled ` +
          `chunks for weights): give the same files, another --out, or --overwrite`,
      );
    }
  }
}

function parseFileFingerprint(value: unknown, configPath: string): FileFingerprint {
  return parseFingerprint({ data: value }, configPath, "fingerprints").data;
}

/**
 * Runs (or resumes) one evaluation: loads the problems, then, for each problem not yet in
 * `<outDir>/samples.jsonl`, renders the prompt (template through the tokenizer's chat template,
 * thinking off unless `thinking`; the bare message when the tokenizer has none), samples `k` responses in one batch
 * with seed {@linkcode promptSeed}`(seed, id)` (each ends at an EOS id, at the chat template's
 * end-of-turn token or a `stop` id, or after `maxNewTokens`), verifies each in eval mode, groups the answers
 * into vote classes, and appends the prompt's `k` lines. Once every problem is done it writes
 * `summary.json` ({@linkcode summarizeEval}), `summary.md` and `pass_at_k.svg`. Each session that
 * samples appends one line to `timing.jsonl` (start time, prompts, tokens, seconds, tokens/s,
 * backend and device), kept out of the summary so that it stays a pure function of the samples.
 *
 * When the run behind `model` or `adapter` drew its RL prompts from the `data` file (its
 * checkpoint's `rl.data.path`, {@linkcode findTrainDataOverlap}), a warning naming both goes to
 * `log`: the score is then not a held-out result.
 *
 * The settings are stored in `eval_config.json`; a folder holding another run's settings is an
 * error (naming the differing setting) unless `overwrite`. On a resume the torn tail of
 * `samples.jsonl` (a partial last line, or a prompt with fewer than `k` lines) is dropped and the
 * file rewritten atomically before sampling continues. The model is only loaded when there is
 * something to sample, so a finished folder is re-summarized without it.
 *
 * @param options Model, data, sampling settings and the output folder.
 * @returns What was done, and the summary when complete.
 * @throws {RangeError} On a bad setting (the message names the flag) or a prompt that does not
 * fit the model's context with `--max-new-tokens`.
 * @throws {Deno.errors.NotFound} When `--model`, `--adapter` or a `--data` file is missing.
 * @throws {Error} When `outDir` holds a run with other settings and `overwrite` is off.
 *
 * @example Three arithmetic problems, two samples each, on the CPU
 * ```ts
 * import { runEval } from "./run_eval.ts";
 * import assert from "node:assert/strict";
 *
 * const outDir = await Deno.makeTempDir();
 * const result = await runEval({
 *   model: "models/arithmetic-tiny", data: "arithmetic", limit: 3, k: 2, temperature: 0.6,
 *   maxNewTokens: 24, backend: "cpu", outDir, progress: false, log: () => {},
 * });
 * assert.equal(result.complete, true);
 * assert.deepEqual(result.summary?.ks, [1, 2]);
 * await Deno.remove(outDir, { recursive: true });
 * ```
 */
export async function runEval(options: RunEvalOptions): Promise<RunEvalResult> {
  const log = options.log ?? ((line: string) => console.error(line));
  // An RL run's checkpoint is asked in the format it was trained on (an explicit --template wins).
  const fromRun = options.template === undefined ? await findRunTemplate(options) : null;
  const config = resolveOptions(
    fromRun === null ? options : { ...options, template: fromRun.template },
  );
  if (fromRun !== null) {
    log(
      `Template "${fromRun.template}": the evaluated run's rl.template (${fromRun.metaPath}); ` +
        `--template overrides it`,
    );
  }
  const backend = config.backend as "cpu" | "webgpu" | "auto";
  const k = config.k as number;
  if (!(await exists(options.model))) {
    throw new Deno.errors.NotFound(
      `Cannot evaluate: --model directory "${options.model}" not found`,
    );
  }
  if (options.adapter && !(await exists(options.adapter))) {
    throw new Deno.errors.NotFound(
      `Cannot evaluate: --adapter directory "${options.adapter}" not found`,
    );
  }
  const problems = await loadEvalProblems(options.data, {
    limit: options.limit,
    onRepeats: (repeats, rows) =>
      log(
        `--data "${options.data}": ${rows} rows, ${repeats} repeating an earlier problem ` +
          `(same question and gold): each problem is evaluated once`,
      ),
  });
  if (problems.length === 0) fail(`--data "${options.data}" holds no problem`);
  const dataPath = evalDataPath(options.data);
  const overlap = dataPath === null ? null : await findTrainDataOverlap(dataPath, options);
  if (overlap !== null) log(overlap.message);
  const outDir = options.outDir;
  await Deno.mkdir(outDir, { recursive: true });
  const configPath = join(outDir, "eval_config.json");
  const samplesPath = join(outDir, "samples.jsonl");
  const outputs = ["summary.json", "summary.md", "pass_at_k.svg"].map((f) => join(outDir, f));
  if (options.overwrite) {
    const timingPath = join(outDir, "timing.jsonl");
    for (const path of [configPath, samplesPath, timingPath, ...outputs]) {
      await removeIfPresent(path);
    }
  }
  // What the settings name by path, fingerprinted: a resume on other files at those paths would
  // mix samples of two models (or two data sets) into one summary.
  const fingerprints: Record<string, unknown> = {
    model: await fingerprintModel(options.model),
    ...(options.adapter ? { adapter: await fingerprintModel(options.adapter) } : {}),
    ...(dataPath === null ? {} : { data: await fingerprintFile(dataPath) }),
  };
  const configText = JSON.stringify({ ...config, fingerprints }, null, 2) + "\n";
  if (await exists(configPath)) {
    const { fingerprints: recorded, ...saved } = await readJsonFile(configPath, {
      context: `Cannot resume the evaluation in "${outDir}": reading`,
    }) as Record<string, unknown>;
    const previous = { ...SETTINGS_BEFORE_THEY_EXISTED, ...saved };
    if (recorded === undefined) {
      log(
        `"${configPath}" records no fingerprints (written before they were): cannot check that ` +
          `--model, --adapter and --data are the files its samples came from`,
      );
    } else {
      checkFingerprints(configPath, recorded, fingerprints, options, dataPath);
    }
    for (const key of new Set([...Object.keys(previous), ...Object.keys(config)])) {
      if (JSON.stringify(previous[key]) !== JSON.stringify(config[key])) {
        throw new Error(
          `Cannot resume the evaluation in "${outDir}": its eval_config.json has ${key} = ` +
            `${JSON.stringify(previous[key])}, this run has ${JSON.stringify(config[key])}: ` +
            `give the same settings, another --out, or --overwrite`,
        );
      }
    }
  } else {
    if (await exists(samplesPath)) {
      throw new Error(
        `Cannot evaluate into "${outDir}": samples.jsonl exists without eval_config.json: ` +
          `use another --out or --overwrite`,
      );
    }
    await writeFileAtomic(configPath, configText);
  }

  // Resume: keep the whole prompts of samples.jsonl, drop a torn tail.
  const byId = new Map(problems.map((p, i) => [p.id, i]));
  let records: EvalSampleRecord[] = [];
  if (await exists(samplesPath)) {
    const text = await Deno.readTextFile(samplesPath);
    const parsed = parseSamplesJsonl(text, { k, source: samplesPath });
    for (const id of parsed.prompts) {
      if (!byId.has(id)) {
        throw new Error(
          `Cannot resume the evaluation in "${outDir}": samples.jsonl holds prompt "${id}", ` +
            `which --data "${options.data}" does not have`,
        );
      }
    }
    records = parsed.records;
    if (parsed.droppedLines > 0 || parsed.droppedPrompts.length > 0) {
      log(
        `Dropping the torn tail of ${samplesPath}: ${parsed.droppedLines} partial line(s), ` +
          `${parsed.droppedPrompts.length} unfinished prompt(s) (${
            parsed.droppedPrompts.join(", ")
          })`,
      );
      await writeFileAtomic(samplesPath, formatSampleLines(records));
    }
  }
  const done = new Set(records.map((r) => r.id));
  const todo = problems.filter((p) => !done.has(p.id));
  const resumed = done.size;
  if (resumed > 0 && todo.length > 0) {
    log(`Resuming "${outDir}": ${resumed} of ${problems.length} prompts already done`);
  }

  let generatedTokens = 0;
  let seconds = 0;
  let stopped = false;
  if (todo.length > 0) {
    const startedAt = new Date().toISOString();
    const { model, tokenizer, generationEos } = await loadSystem(options, backend, log);
    let finished = 0;
    try {
      const eos = [
        ...new Set([
          ...model.config.eosTokenIds,
          ...(tokenizer.eosTokenId === null ? [] : [tokenizer.eosTokenId]),
          ...generationEos,
        ]),
      ];
      const listed = config.stop as number[];
      const vocab = model.config.vocabSize;
      if (listed.some((id) => id >= vocab)) {
        fail(
          `--stop must hold token ids below the model's vocabulary size (${vocab}): current ` +
            `value is ${JSON.stringify(listed)}`,
        );
      }
      // As RL: the chat template's end of turn stops too (null without a template, when the
      // prompts are the bare messages).
      const endOfTurn = endOfTurnTokenId(tokenizer);
      const stop = [...new Set([...(endOfTurn === null ? [] : [endOfTurn]), ...listed])]
        .filter((id) => !eos.includes(id));
      const maxPos = model.config.maxPositionEmbeddings;
      const maxNewTokens = config.maxNewTokens as number;
      const prompts = todo.map((p) => {
        const ids = encodePrompt(
          tokenizer,
          evalTemplateMessage(p.question, config.template as string),
          config.thinking as boolean,
        );
        if (ids.length >= maxPos) {
          fail(
            `prompt "${p.id}" of --data "${options.data}" has ${ids.length} tokens, more than ` +
              `the model's context leaves for an answer (max_position_embeddings = ${maxPos})`,
          );
        }
        if (ids.length + maxNewTokens > maxPos) {
          fail(
            `--max-new-tokens ${maxNewTokens} plus the ${ids.length} tokens of prompt "${p.id}" ` +
              `exceed the model's context (max_position_embeddings = ${maxPos}): lower ` +
              `--max-new-tokens to at most ${maxPos - ids.length}`,
          );
        }
        return ids;
      });
      const progress = options.progress === false ? null : createEvalProgress({
        total: problems.length,
        start: resumed,
        label: options.progress?.label,
        write: options.progress?.write,
        tty: options.progress?.tty,
      });
      for (let i = 0; i < todo.length; i++) {
        const t0 = performance.now();
        const fresh = await sampleProblem(todo[i], prompts[i], {
          model,
          tokenizer,
          k,
          temperature: config.temperature as number,
          topP: config.topP as number,
          maxNewTokens,
          seed: promptSeed(config.seed as number, todo[i].id),
          eos,
          stop,
          problemNouns: config.problemNouns as boolean,
        });
        await appendText(samplesPath, formatSampleLines(fresh.records));
        records.push(...fresh.records);
        generatedTokens += fresh.tokens;
        seconds += (performance.now() - t0) / 1000;
        finished++;
        progress?.update(resumed + finished, {
          correct: fresh.records.filter((r) => r.correct === true).length,
          samples: k,
          tokens: fresh.tokens,
        });
        if (
          options.stopAfter !== undefined && finished >= options.stopAfter && i < todo.length - 1
        ) {
          stopped = true;
          break;
        }
      }
      progress?.done();
    } finally {
      model.dispose();
      // Timing lives beside the summary, not in it, so that summary.json stays a pure function
      // of the samples.
      const session = {
        startedAt,
        prompts: finished,
        tokens: generatedTokens,
        seconds: Math.round(seconds * 1000) / 1000,
        tokensPerSecond: seconds > 0 ? Math.round((generatedTokens / seconds) * 10) / 10 : null,
        backend: model.backend,
        device: model.device,
      };
      await appendText(join(outDir, "timing.jsonl"), JSON.stringify(session) + "\n");
    }
  }
  const promptsDone = new Set(records.map((r) => r.id)).size;
  const result: RunEvalResult = {
    outDir,
    complete: !stopped && promptsDone === problems.length,
    promptsTotal: problems.length,
    promptsDone,
    promptsResumed: resumed,
    generatedTokens,
    seconds,
    summary: null,
    config,
  };
  if (!result.complete) {
    log(`Stopped after ${promptsDone} of ${problems.length} prompts: run again to continue`);
    return result;
  }
  const summary = summarizeEval(records, { config });
  await writeFileAtomic(outputs[0], JSON.stringify(summary, null, 2) + "\n");
  await writeFileAtomic(outputs[1], summaryMarkdown(summary, { title: evalTitle(config) }));
  await writeFileAtomic(
    outputs[2],
    await passAtKChart([{ name: "", summary }], {
      title: evalTitle(config),
    }),
  );
  result.summary = summary;
  return result;
}

/**
 * `arithmetic-tiny (+ adapter x) on arithmetic`: the title of a run's reports.
 *
 * @param config The run's settings (`model`, `adapter`, `data`).
 * @returns The title.
 *
 * @example Usage
 * ```ts
 * import { evalTitle } from "./run_eval.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(evalTitle({ model: "models/arithmetic-tiny", data: "arithmetic" }),
 *   "arithmetic-tiny on arithmetic");
 * ```
 */
export function evalTitle(config: Record<string, unknown>): string {
  const name = (path: unknown) => String(path).replace(/[\\/]+$/, "").split(/[\\/]/).at(-1);
  const adapter = config.adapter ? ` + ${name(config.adapter)}` : "";
  return `${name(config.model)}${adapter} on ${name(config.data)}`;
}

async function appendText(path: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  const file = await Deno.open(path, { append: true, create: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
}

interface SampleContext {
  model: Qwen3Model;
  tokenizer: Tokenizer;
  k: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  eos: number[];
  stop: number[];
  problemNouns: boolean;
}

async function sampleProblem(
  problem: EvalProblem,
  ids: number[],
  ctx: SampleContext,
): Promise<{ records: EvalSampleRecord[]; tokens: number }> {
  const { sequences } = await generate(ctx.model, {
    prompts: Array.from({ length: ctx.k }, () => ids),
    maxNewTokens: ctx.maxNewTokens,
    temperature: ctx.temperature,
    topP: ctx.topP,
    seed: ctx.seed,
    eosTokenIds: ctx.eos,
    stopTokenIds: ctx.stop,
  });
  const gold = prepareGold(problem.gold, { mode: "eval" });
  const texts = sequences.map((s) => ctx.tokenizer.decode(s.tokens, { skipSpecialTokens: true }));
  // The noun rule runs once a sample: where verify ran it, the votes reuse its reading.
  const withProblem = ctx.problemNouns ? { problem: problem.question } : {};
  const read = texts.map((text) =>
    verifyReadingNouns(text, gold, { mode: "eval", ...withProblem })
  );
  const checks = read.map((r) => r.result);
  const votes = voteClasses(checks.map((c) => c.extracted), {
    ...withProblem,
    gold,
    nouns: read.map((r) => r.nouns),
  });
  const records = sequences.map((s, i): EvalSampleRecord => {
    const record: EvalSampleRecord = {
      id: problem.id,
      sample: i,
      gold: problem.gold,
      text: texts[i],
      answer: checks[i].extracted,
      correct: checks[i].correct,
      reason: checks[i].reason,
      vote: votes[i],
      tokens: s.length,
      stop: s.stopReason,
    };
    if (problem.subject !== undefined) record.subject = problem.subject;
    if (problem.level !== undefined) record.level = problem.level;
    return record;
  });
  return { records, tokens: sequences.reduce((sum, s) => sum + s.length, 0) };
}
