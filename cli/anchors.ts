/**
 * `deno task anchors`: measures the anchor geometry of a model on the arithmetic task, the premise
 * of Hidden-Align. It samples `--samples` rollouts of each of the first `--prompts` held-out
 * problems with `generate()`, scores them with the task's exact-answer check, finds each
 * rollout's anchor (the token just before its last `Answer:` marker in the generated ids), runs a
 * forward with all hidden states over prompt + rollout, and reports, for every layer (the
 * embeddings, each decoder layer's output, the final norm), the mean cosine of the states at the
 * anchors between rollouts of the same prompt by pair kind, plus a control: one random response
 * position per rollout; each with a seeded percentile-bootstrap interval over prompts
 * (`eval/anchor_layers.ts`).
 *
 *     deno task anchors [--model DIR ...] [--adapter DIR|none ...] [--config FILE] [--prompts N]
 *                       [--samples K]
 *                       [--temperature T] [--seed S] [--max-new-tokens N] [--batch N]
 *                       [--resamples N] [--out DIR] [--backend cpu|webgpu|auto] [--json]
 *
 * `--model` may be repeated to measure a series (e.g. the SFT model, then checkpoints of an RL
 * run): each is a model directory (`config.json`, as `<run>/final/`), an adapter directory (a
 * LoRA/HILO run's `final/`, on the base model its `adapter_config.json` names) or a checkpoint
 * `<run>/step_NNNNNN/` (its weights, model or adapters, on the base model its `meta.json` names,
 * opened by `trainer/checkpoint_model.ts` as `eval` and `demo` do), measured
 * on the same problems with the same sampling seed. `--adapter DIR` sets a PEFT LoRA or HILO
 * adapter directory on `--model` (e.g. a run copied from another machine, whose saved base path
 * does not resolve there), paired as `deno task eval` pairs them: one `--adapter` per `--model`,
 * or one `--model` with any number of `--adapter` (`none`: the model as it is). `--out DIR` writes `anchors.md`,
 * `anchors.json`, one `anchors_<i>.svg` per model (cosine against layer, one line per pair kind)
 * and, for a series, `anchors_series.svg`.
 *
 * The problems come from the `data` section of `--config` (default
 * `configs/arithmetic_tiny.yaml`, the knobs the bundled model was trained on). Every choice is
 * seeded, so a run repeats exactly on the same platform.
 *
 * @example Measure the bundled model (48 problems × 8 samples at temperature 1)
 * ```ts ignore
 * // deno task anchors --model models/arithmetic-tiny --out out/anchors
 * import { main } from "./anchors.ts";
 * await main(["--model", "models/arithmetic-tiny", "--out", "out/anchors"]);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { loadConfig } from "./load_config.ts";
import { arithmeticDataset, formatExample } from "../data/arithmetic_task.ts";
import { type AnchorGeometry, anchorGeometry } from "../eval/anchor_geometry.ts";
import { anchorLayerGeometry, type AnchorLayerRow } from "../eval/anchor_layers.ts";
import {
  anchorLayersChart,
  anchorLayersMarkdown,
  anchorSeriesChart,
} from "../eval/anchor_layers_report.ts";
import { extractArithmeticAnswer } from "../trainer/eval_sft.ts";
import {
  type ModelAdapterPair,
  openModelWithAdapter,
  pairModelsAndAdapters,
} from "./_model_adapter.ts";
import { generate } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { checkTokenizerFitsModel } from "../model/check_tokenizer_vocab.ts";
import { mixNumber, mulberry32 } from "../internal/random.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";

const USAGE = "usage: deno task anchors [--model DIR ...] [--adapter DIR|none ...] " +
  "[--config FILE] [--prompts N] " +
  "[--samples K] [--temperature T] [--seed S] [--max-new-tokens N] [--batch N] " +
  "[--resamples N] [--out DIR] [--backend cpu|webgpu|auto] [--json]";

/** `--help`: the usage, then what each option does. */
const HELP = `${USAGE}

Measures the anchor geometry of a model on the arithmetic task: samples rollouts of held-out
problems, finds each rollout's anchor (the token before its last "Answer:"), and reports for every
layer the mean cosine of the anchor states between rollouts of the same problem by pair kind
(correct-correct, incorrect-incorrect, correct-incorrect), against a control of random response
positions, with bootstrap 95% intervals over problems.

Options:
  --model DIR          model directory (a run's final/), adapter directory (a LoRA/HILO run's
                       final/) or checkpoint out/<run>/step_NNNNNN/; repeat to measure a series on
                       the same problems (default models/arithmetic-tiny)
  --adapter DIR        PEFT LoRA or HILO adapter directory set on the model, whatever base its
                       adapter_config.json names; "none" = the model as it is. One --adapter per
                       --model, or one --model with any number of --adapter (as deno task eval)
  --config FILE        run config whose data section gives the problems (default
                       configs/arithmetic_tiny.yaml)
  --prompts N          held-out problems (default 48)
  --samples K          rollouts per problem (default 8)
  --temperature T      sampling temperature, > 0 (default 1)
  --seed S             seed of the sampling, the random positions and the bootstrap (default 0)
  --max-new-tokens N   most new tokens per rollout (default 48)
  --batch N            sequences per generate/forward call (default 64)
  --resamples N        bootstrap resamples of the intervals (default 1000; 0: no intervals)
  --out DIR            also write anchors.md, anchors.json and the charts (anchors_<i>.svg, and
                       anchors_series.svg for two or more models) to DIR
  --backend B          cpu | webgpu | auto (default cpu)
  --json               print the reports as JSON instead of the markdown tables
  -h, --help           print this help`;

/**
 * The measurement: accuracy, marker hit rate, mixed groups, the anchor cosines by pair kind and
 * the random-position control.
 *
 * @example Usage
 * ```ts
 * import type { AnchorReport } from "./anchors.ts";
 *
 * function summary(r: AnchorReport): string {
 *   return `${r.correct}/${r.rollouts} correct, cc ${r.anchors.correctCorrect.mean.toFixed(3)}`;
 * }
 * ```
 */
export interface AnchorReport {
  /** The model directory (`--model`). */
  model: string;
  /** The adapter directory set on it (`--adapter`); absent when none was. */
  adapter?: string;
  /** Problems (groups). */
  prompts: number;
  /** Rollouts per problem. */
  samples: number;
  /** Sampling temperature. */
  temperature: number;
  /** All rollouts. */
  rollouts: number;
  /** Rollouts with the right answer. */
  correct: number;
  /** Rollouts with an `Answer:` marker token in their generated ids. */
  marked: number;
  /** Groups with both correct and incorrect rollouts. */
  mixedGroups: number;
  /** Cosines at the anchors (rollouts with a marker only). */
  anchors: AnchorGeometry;
  /** Cosines at one seeded random response position per rollout (all rollouts; the control). */
  random: AnchorGeometry;
  /**
   * Every layer (0: the embeddings, 1 … L − 1: decoder layers 0 … L − 2, L: the final norm):
   * the cosines by pair kind and the control, with bootstrap intervals over prompts.
   */
  layers: AnchorLayerRow[];
  /** Wall-clock seconds. */
  seconds: number;
}

function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(
      `Cannot measure anchors: ${flag} must be a positive integer: current value is ${value}`,
    );
  }
  return n;
}

/**
 * Settings of {@linkcode measureAnchors}.
 *
 * @example Usage
 * ```ts
 * import type { MeasureAnchorsOptions } from "./anchors.ts";
 *
 * const options: MeasureAnchorsOptions = {
 *   config: "configs/arithmetic_tiny.yaml", prompts: 48, samples: 8, temperature: 1, seed: 0,
 *   maxNewTokens: 48, batch: 64, backend: "cpu", resamples: 1000,
 * };
 * ```
 */
export interface MeasureAnchorsOptions {
  /** The run config whose `data` section gives the problems. */
  config: string;
  /** Problems (groups). */
  prompts: number;
  /** Rollouts per problem. */
  samples: number;
  /** Sampling temperature (> 0). */
  temperature: number;
  /** Seed of the sampling, the random positions and the bootstrap. */
  seed: number;
  /** Most new tokens per rollout. */
  maxNewTokens: number;
  /** Sequences per generate/forward call. */
  batch: number;
  /** `cpu`, `webgpu` or `auto`, for model directories and checkpoints alike. */
  backend: "cpu" | "webgpu" | "auto";
  /** Bootstrap resamples of the intervals. */
  resamples: number;
  /**
   * A PEFT LoRA or HILO adapter directory set on the model (`--adapter`), whatever base its
   * `adapter_config.json` names; default none.
   */
  adapter?: string | null;
}

/**
 * The model of a model directory, or of an adapter directory or checkpoint on its base model;
 * with `adapter`, that adapter directory set on it.
 */
async function openModel(
  dir: string,
  adapter: string | null,
  backend: "cpu" | "webgpu" | "auto",
): Promise<{ model: Qwen3Model; tokenizerDir: string }> {
  return await openModelWithAdapter(dir, adapter, { backend, cannot: "Cannot measure anchors" });
}

/**
 * Samples, scores and measures one model: the anchor cosines by pair kind at every layer, with
 * bootstrap intervals, and the random-position control.
 *
 * @param modelDir A model, adapter or checkpoint directory.
 * @param options The problems, sampling and bootstrap settings, and an adapter to set on it.
 * @returns The report.
 * @throws {RangeError} When the tokenizer does not encode `Answer:` as one token, the
 *   directory is neither a model nor a usable checkpoint, or the adapter does not fit it.
 *
 * @example Two problems × three samples of the bundled model
 * ```ts
 * import { measureAnchors } from "./anchors.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const report = await measureAnchors("models/arithmetic-tiny", {
 *   config: "configs/arithmetic_tiny.yaml", prompts: 2, samples: 3, temperature: 1, seed: 0,
 *   maxNewTokens: 48, batch: 64, backend: "cpu", resamples: 100,
 * });
 * strictEqual(report.layers.length, 3); // embeddings, layer 0, final norm
 * strictEqual(report.layers[2].random.pairs, 2 * 3);
 * ```
 */
export async function measureAnchors(
  modelDir: string,
  options: MeasureAnchorsOptions,
): Promise<AnchorReport> {
  const { prompts, samples, temperature, seed, maxNewTokens, batch } = options;
  const started = performance.now();
  const { data } = await loadConfig(options.config);
  const problems = arithmeticDataset("eval", {
    seed: data.seed,
    digits: data.digits,
    ops: data.ops,
    maxTerms: data.maxTerms,
    mulDigits: data.mulDigits,
    size: prompts,
  });
  const adapter = options.adapter ?? null;
  const { model, tokenizerDir } = await openModel(modelDir, adapter, options.backend);
  try {
    const tokenizer = await loadTokenizer(tokenizerDir);
    checkTokenizerFitsModel(tokenizer, model.config, {
      tokenizer: join(tokenizerDir, "tokenizer.json"),
      config: modelDir,
    });
    const marker = tokenizer.encode("Answer:", { addSpecialTokens: false });
    if (marker.length !== 1) {
      throw new RangeError(
        `Cannot measure anchors: the tokenizer of --model must encode "Answer:" as one token: ` +
          `it gives ${marker.length}`,
      );
    }
    const padId = tokenizer.padTokenId ?? model.config.padTokenId ?? 0;

    // Rollouts: every problem `samples` times, in chunks of `batch` sequences with their own seed.
    const promptIds = problems.map((p) =>
      tokenizer.encode(formatExample(p).prompt, { addSpecialTokens: false })
    );
    const rows: { group: number; prompt: number[]; tokens: number[] }[] = [];
    for (let g = 0; g < problems.length; g++) {
      for (let k = 0; k < samples; k++) rows.push({ group: g, prompt: promptIds[g], tokens: [] });
    }
    for (let start = 0, chunk = 0; start < rows.length; start += batch, chunk++) {
      const part = rows.slice(start, start + batch);
      const { sequences } = await generate(model, {
        prompts: part.map((r) => r.prompt),
        maxNewTokens,
        temperature,
        seed: mixNumber(seed, chunk),
      });
      sequences.forEach((s, i) => (part[i].tokens = s.tokens));
    }
    const correct = rows.map((r) => {
      const got = extractArithmeticAnswer(tokenizer.decode(r.tokens, { skipSpecialTokens: true }));
      return got !== null && got === problems[r.group].answer;
    });

    // Forward with every hidden state; the anchor and one random response position per rollout.
    const random = mulberry32(mixNumber(seed, 0x616e6368));
    const hiddenSize = model.config.hiddenSize;
    const anchorRows: (Float32Array[] | null)[] = [];
    const randomRows: Float32Array[][] = [];
    for (let start = 0; start < rows.length; start += batch) {
      const part = rows.slice(start, start + batch);
      const ids = part.map((r) => [...r.prompt, ...r.tokens]);
      const length = Math.max(...ids.map((x) => x.length));
      const output = await model.forward({
        inputIds: ids.map((x) => [...x, ...new Array(length - x.length).fill(padId)]),
        attentionMask: ids.map((x) => x.map(() => 1).concat(new Array(length - x.length).fill(0))),
        outputHiddenStates: true,
      });
      const states = output.hiddenStates!;
      const rowsAt = (b: number, t: number): Float32Array[] =>
        states.map((h) =>
          h.slice((b * length + t) * hiddenSize, (b * length + t + 1) * hiddenSize)
        );
      part.forEach((r, b) => {
        const at = r.tokens.lastIndexOf(marker[0]);
        anchorRows.push(at === -1 ? null : rowsAt(b, r.prompt.length + at - 1));
        const position = r.prompt.length + Math.floor(random() * r.tokens.length);
        randomRows.push(rowsAt(b, position));
      });
    }
    const layerCount = randomRows[0]?.length ?? 0;
    const labels = Array.from(
      { length: layerCount },
      (_, l) =>
        l === 0
          ? "embeddings"
          : l === layerCount - 1
          ? `final norm (layer ${l - 1})`
          : `layer ${l - 1}`,
    );
    const layers = anchorLayerGeometry(
      rows.map((r, i) => ({
        group: r.group,
        correct: correct[i],
        anchor: anchorRows[i],
        random: randomRows[i],
      })),
      { labels, resamples: options.resamples, seed },
    );

    const marked = anchorRows.map((r, i) => (r === null ? -1 : i)).filter((i) => i >= 0);
    const groupCorrect = problems.map((_, g) =>
      rows.filter((r, i) => r.group === g && correct[i]).length
    );
    return {
      model: modelDir,
      ...(adapter === null ? {} : { adapter }),
      prompts,
      samples,
      temperature,
      rollouts: rows.length,
      correct: correct.filter((c) => c).length,
      marked: marked.length,
      mixedGroups: groupCorrect.filter((c) => c > 0 && c < samples).length,
      anchors: anchorGeometry(
        marked.map((i) => anchorRows[i]!.at(-1)!),
        marked.map((i) => rows[i].group),
        marked.map((i) => correct[i]),
      ),
      random: anchorGeometry(randomRows.map((r) => r.at(-1)!), rows.map((r) => r.group), correct),
      layers,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    model.dispose();
  }
}

function note(r: AnchorReport): string {
  const pct = (n: number, d: number): string => `${((100 * n) / d).toFixed(1)}% (${n}/${d})`;
  return `${r.prompts} held-out prompts × ${r.samples} samples at temperature ${r.temperature}: ` +
    `accuracy ${pct(r.correct, r.rollouts)}, mixed groups ${r.mixedGroups}/${r.prompts}, ` +
    `marker found ${pct(r.marked, r.rollouts)}; ${r.seconds.toFixed(1)} s.`;
}

/**
 * Runs the measurement from command-line arguments, prints the tables (or JSON with `--json`),
 * and with `--out` writes them with the charts.
 *
 * @param args The arguments (without the program name).
 * @returns One report per `--model` (per `--adapter` with one `--model`), or `null` after
 *   `--help`.
 * @throws {TypeError | RangeError} On a bad flag or value, naming it.
 *
 * @example Two problems × three samples of the bundled model
 * ```ts
 * import { main } from "./anchors.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const [report] = (await main(["--prompts", "2", "--samples", "3", "--resamples", "50", "--json"]))!;
 * strictEqual(report.rollouts, 6);
 * strictEqual(report.random.all.count, 2 * 3); // 3 pairs in each of 2 groups
 * ```
 */
export async function main(args: string[]): Promise<AnchorReport[] | null> {
  const parsed = parseAnchorsArgs(args);
  return parsed === null ? null : await runAnchors(args, parsed);
}

/** The command line read by {@linkcode parseAnchorsArgs}. */
interface AnchorsArgs {
  values: ReturnType<typeof parseAnchorsValues>;
  /** The models to measure, each with its adapter or `null`. */
  pairs: ModelAdapterPair[];
  seed: number;
  options: MeasureAnchorsOptions;
}

function parseAnchorsValues(args: string[]) {
  return parseArgs({
    args,
    options: {
      model: { type: "string", multiple: true },
      adapter: { type: "string", multiple: true },
      config: { type: "string", default: "configs/arithmetic_tiny.yaml" },
      prompts: { type: "string", default: "48" },
      samples: { type: "string", default: "8" },
      temperature: { type: "string", default: "1" },
      seed: { type: "string", default: "0" },
      "max-new-tokens": { type: "string", default: "48" },
      batch: { type: "string", default: "64" },
      resamples: { type: "string", default: "1000" },
      out: { type: "string" },
      backend: { type: "string", default: "cpu" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  }).values;
}

/**
 * The flags and the measurement's options, or `null` after `--help` (the usage printed). Its
 * errors are those the usage is printed after.
 */
function parseAnchorsArgs(args: string[]): AnchorsArgs | null {
  const values = parseAnchorsValues(args);
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(
      `Cannot measure anchors: --seed must be a non-negative integer: current value is ${values.seed}`,
    );
  }
  const temperature = Number(values.temperature);
  if (!(temperature > 0)) {
    throw new RangeError(
      `Cannot measure anchors: --temperature must be a positive number (sampling): current value is ${values.temperature}`,
    );
  }
  const resamples = Number(values.resamples);
  if (!Number.isSafeInteger(resamples) || resamples < 0) {
    throw new RangeError(
      `Cannot measure anchors: --resamples must be a non-negative integer: current value is ${values.resamples}`,
    );
  }
  if (!["cpu", "webgpu", "auto"].includes(values.backend)) {
    throw new RangeError(
      `Cannot measure anchors: --backend must be "cpu", "webgpu" or "auto": current value is "${values.backend}"`,
    );
  }
  const options: MeasureAnchorsOptions = {
    config: values.config,
    prompts: positiveInteger(values.prompts, "--prompts"),
    samples: positiveInteger(values.samples, "--samples"),
    temperature,
    seed,
    maxNewTokens: positiveInteger(values["max-new-tokens"], "--max-new-tokens"),
    batch: positiveInteger(values.batch, "--batch"),
    backend: values.backend as "cpu" | "webgpu" | "auto",
    resamples,
  };
  const pairs = pairModelsAndAdapters(
    values.model ?? ["models/arithmetic-tiny"],
    values.adapter ?? [],
    "Cannot measure anchors",
  );
  return { values, pairs, seed, options };
}

/** The measurement, tables and files: its failures (a model, a GPU error) print no usage. */
async function runAnchors(
  args: string[],
  { values, pairs, seed, options }: AnchorsArgs,
): Promise<AnchorReport[]> {
  const reports: AnchorReport[] = [];
  for (const { model, adapter } of pairs) {
    reports.push(await measureAnchors(model, { ...options, adapter }));
  }
  const entries = reports.map((r) => ({
    name: r.adapter === undefined ? r.model : `${r.model} + ${r.adapter}`,
    rows: r.layers,
    note: note(r),
  }));
  const markdown = `# Anchor geometry\n\nMeasured by \`deno run --allow-read --allow-write ` +
    `--allow-env cli/anchors.ts ${args.join(" ")}\` (on ` +
    `${new Date().toISOString().slice(0, 10)}, ${navigator.hardwareConcurrency} cores, ` +
    `backend ${values.backend}). Seed ${seed}; problems from the data section of ` +
    `\`${values.config}\`; anchor: the token before the last "Answer:". Layers as HF's ` +
    `\`hidden_states\`: the embeddings, each decoder layer's output, the final norm.\n\n` +
    anchorLayersMarkdown(entries);
  if (values.out) {
    await Deno.mkdir(values.out, { recursive: true });
    await writeFileAtomic(join(values.out, "anchors.md"), markdown);
    await writeFileAtomic(
      join(values.out, "anchors.json"),
      JSON.stringify(reports, null, 1) + "\n",
    );
    for (let i = 0; i < entries.length; i++) {
      await writeFileAtomic(
        join(values.out, `anchors_${i}.svg`),
        await anchorLayersChart(entries[i]),
      );
    }
    if (entries.length >= 2) {
      await writeFileAtomic(
        join(values.out, "anchors_series.svg"),
        await anchorSeriesChart(entries),
      );
    }
  }
  console.log(values.json ? JSON.stringify(reports) : markdown);
  return reports;
}

if (import.meta.main) {
  // The usage follows the command line's errors only, not the measurement's (model, GPU).
  let parsed: AnchorsArgs | null = null;
  try {
    parsed = parseAnchorsArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    console.error(USAGE);
    Deno.exit(1);
  }
  try {
    if (parsed !== null) await runAnchors(Deno.args, parsed);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
