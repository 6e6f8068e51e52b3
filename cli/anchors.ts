/**
 * `deno task anchors`: measures the anchor geometry of a model on the arithmetic task, the premise
 * of Hidden-Align. It samples `--samples` rollouts of each of the first `--prompts` held-out
 * problems with `generate()`, scores them with the task's exact-answer check, finds each
 * rollout's anchor (the token just before its last `Answer:` marker in the generated ids), runs a
 * forward with hidden states over prompt + rollout, and prints the mean cosine of the final-norm
 * hidden states at the anchors between rollouts of the same prompt, by pair kind
 * (`eval/anchor_geometry.ts`), plus a control: one random response position per rollout.
 *
 *     deno task anchors [--model DIR] [--config FILE] [--prompts N] [--samples K]
 *                       [--temperature T] [--seed S] [--max-new-tokens N] [--batch N]
 *                       [--backend cpu|webgpu|auto] [--json]
 *
 * The problems come from the `data` section of `--config` (default
 * `configs/arithmetic_tiny.yaml`, the knobs the bundled model was trained on). Every choice is
 * seeded, so a run repeats exactly on the same platform.
 *
 * @example Measure the bundled model (48 problems × 8 samples at temperature 1)
 * ```ts ignore
 * // deno task anchors --model models/arithmetic-tiny
 * import { main } from "./anchors.ts";
 * await main(["--model", "models/arithmetic-tiny"]);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "./load_config.ts";
import { arithmeticDataset, formatExample } from "../data/arithmetic_task.ts";
import { type AnchorGeometry, anchorGeometry } from "../eval/anchor_geometry.ts";
import { extractArithmeticAnswer } from "../trainer/eval_sft.ts";
import { generate } from "../model/generate.ts";
import { loadModel } from "../model/load_model.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { mixNumber, mulberry32 } from "../internal/random.ts";

const USAGE = "usage: deno task anchors [--model DIR] [--config FILE] [--prompts N] " +
  "[--samples K] [--temperature T] [--seed S] [--max-new-tokens N] [--batch N] " +
  "[--backend cpu|webgpu|auto] [--json]";

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
  /** The model directory. */
  model: string;
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
 * Runs the measurement from command-line arguments and prints the table (or JSON with `--json`).
 *
 * @param args The arguments (without the program name).
 * @returns The report, or `null` after `--help`.
 * @throws {TypeError | RangeError} On a bad flag or value, naming it.
 *
 * @example Two problems × three samples of the bundled model
 * ```ts
 * import { main } from "./anchors.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const report = await main(["--prompts", "2", "--samples", "3", "--json"]);
 * strictEqual(report?.rollouts, 6);
 * strictEqual(report?.random.all.count, 2 * 3); // 3 pairs in each of 2 groups
 * ```
 */
export async function main(args: string[]): Promise<AnchorReport | null> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "models/arithmetic-tiny" },
      config: { type: "string", default: "configs/arithmetic_tiny.yaml" },
      prompts: { type: "string", default: "48" },
      samples: { type: "string", default: "8" },
      temperature: { type: "string", default: "1" },
      seed: { type: "string", default: "0" },
      "max-new-tokens": { type: "string", default: "48" },
      batch: { type: "string", default: "64" },
      backend: { type: "string", default: "cpu" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return null;
  }
  const prompts = positiveInteger(values.prompts, "--prompts");
  const samples = positiveInteger(values.samples, "--samples");
  const maxNewTokens = positiveInteger(values["max-new-tokens"], "--max-new-tokens");
  const batch = positiveInteger(values.batch, "--batch");
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
  const backend = values.backend as "cpu" | "webgpu" | "auto";
  const started = performance.now();

  const { data } = await loadConfig(values.config);
  const problems = arithmeticDataset("eval", {
    seed: data.seed,
    digits: data.digits,
    ops: data.ops,
    maxTerms: data.maxTerms,
    mulDigits: data.mulDigits,
    size: prompts,
  });
  const model = await loadModel(values.model, { backend, warn: false });
  const tokenizer = await loadTokenizer(values.model);
  const marker = tokenizer.encode("Answer:", { addSpecialTokens: false });
  if (marker.length !== 1) {
    throw new RangeError(
      `Cannot measure anchors: the tokenizer of --model must encode "Answer:" as one token: it gives ${marker.length}`,
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

  // Forward with hidden states; the anchor and one random response position per rollout.
  const random = mulberry32(mixNumber(seed, 0x616e6368));
  const hiddenSize = model.config.hiddenSize;
  const anchorRows: (Float32Array | null)[] = [];
  const randomRows: Float32Array[] = [];
  for (let start = 0; start < rows.length; start += batch) {
    const part = rows.slice(start, start + batch);
    const ids = part.map((r) => [...r.prompt, ...r.tokens]);
    const length = Math.max(...ids.map((x) => x.length));
    const output = await model.forward({
      inputIds: ids.map((x) => [...x, ...new Array(length - x.length).fill(padId)]),
      attentionMask: ids.map((x) => x.map(() => 1).concat(new Array(length - x.length).fill(0))),
      outputHiddenStates: true,
    });
    const last = output.hiddenStates!.at(-1)!;
    const rowAt = (b: number, t: number): Float32Array =>
      last.slice((b * length + t) * hiddenSize, (b * length + t + 1) * hiddenSize);
    part.forEach((r, b) => {
      const at = r.tokens.lastIndexOf(marker[0]);
      anchorRows.push(at === -1 ? null : rowAt(b, r.prompt.length + at - 1));
      const position = r.prompt.length + Math.floor(random() * r.tokens.length);
      randomRows.push(rowAt(b, position));
    });
  }
  model.dispose();

  const marked = anchorRows.map((r, i) => (r === null ? -1 : i)).filter((i) => i >= 0);
  const groupCorrect = problems.map((_, g) =>
    rows.filter((r, i) => r.group === g && correct[i]).length
  );
  const report: AnchorReport = {
    model: values.model,
    prompts,
    samples,
    temperature,
    rollouts: rows.length,
    correct: correct.filter((c) => c).length,
    marked: marked.length,
    mixedGroups: groupCorrect.filter((c) => c > 0 && c < samples).length,
    anchors: anchorGeometry(
      marked.map((i) => anchorRows[i]!),
      marked.map((i) => rows[i].group),
      marked.map((i) => correct[i]),
    ),
    random: anchorGeometry(randomRows, rows.map((r) => r.group), correct),
    seconds: (performance.now() - started) / 1000,
  };
  if (values.json) {
    console.log(JSON.stringify(report));
    return report;
  }
  const pct = (n: number, d: number): string => `${((100 * n) / d).toFixed(1)}% (${n}/${d})`;
  const line = (name: string, p: { mean: number; count: number; groups: number }): string =>
    `${name.padEnd(34)} ${Number.isNaN(p.mean) ? "   -  " : p.mean.toFixed(3).padStart(6)}  ` +
    `${String(p.count).padStart(6)} pairs in ${p.groups} groups`;
  console.log(
    [
      `model ${values.model}: ${prompts} held-out prompts x ${samples} samples, temperature ${temperature}, seed ${seed}`,
      `accuracy ${
        pct(report.correct, report.rollouts)
      }, mixed groups ${report.mixedGroups}/${prompts}, ` +
      `marker found ${pct(report.marked, report.rollouts)}`,
      `mean cosine of final-norm hidden states, same prompt:`,
      line("  anchor, correct-correct", report.anchors.correctCorrect),
      line("  anchor, incorrect-incorrect", report.anchors.incorrectIncorrect),
      line("  anchor, correct-incorrect", report.anchors.correctIncorrect),
      line("  random response positions", report.random.all),
      `(${report.seconds.toFixed(1)} s)`,
    ].join("\n"),
  );
  return report;
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    console.error(USAGE);
    Deno.exit(1);
  }
}
