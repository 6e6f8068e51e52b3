/**
 * The training loop's cadence, independent of the objective: run a step, refuse a non-finite
 * loss before the update is applied, log one JSONL line of metrics per step, evaluate and save
 * checkpoints on their cadences (and after the last step), and report progress. SFT
 * (`trainer/sft.ts`) and RL plug in their own step, evaluation and checkpoint functions.
 *
 * The metrics file `metrics.jsonl` holds one JSON object per line, `{"step": N, ...metrics}` with
 * the keys sorted, and nothing that depends on the wall clock, so a resumed run's file matches an
 * uninterrupted one's byte for byte. Lines of steps after the checkpoint a run resumes from are
 * dropped first (that work is redone).
 *
 * @module
 */
import { join } from "node:path";
import type { Progress } from "../internal/progress.ts";
import { writeFileAtomic } from "../internal/atomic_write.ts";

/**
 * A computed step whose update has not been applied yet.
 *
 * @example Usage
 * ```ts
 * import type { PendingStep } from "./train_loop.ts";
 *
 * const pending: PendingStep = {
 *   loss: 1.2,
 *   tokens: 640,
 *   metrics: { "loss/nll": 1.2, "optim/grad_norm": 0.8 },
 *   commit: () => {},
 * };
 * ```
 */
export interface PendingStep {
  /** The step's training loss (checked for NaN/Inf before `commit`). */
  loss: number;
  /** Tokens processed (for tokens/s). */
  tokens: number;
  /** The step's metrics (every value is checked as well). */
  metrics: Record<string, number>;
  /** Applies the parameter update and advances the optimizer state. */
  commit(): void;
}

/**
 * Options of {@linkcode trainLoop}.
 *
 * @example Usage
 * ```ts ignore
 * import type { TrainLoopOptions } from "./train_loop.ts";
 * declare const options: TrainLoopOptions;
 * ```
 */
export interface TrainLoopOptions {
  /** The run directory (`metrics.jsonl` goes here; created if missing). */
  runDir: string;
  /** Steps already done (0 for a fresh run, the checkpoint's step on resume). */
  startStep: number;
  /** The last step. */
  totalSteps: number;
  /**
   * Computes step `step` (1-based) without applying it.
   *
   * @param step The step.
   * @returns The pending step.
   */
  step(step: number): Promise<PendingStep>;
  /**
   * Evaluates the current parameters; the metrics join the step's line.
   *
   * @param step The step just done (0 before training).
   * @returns Metrics, keys namespaced `"eval/…"`.
   */
  evaluate?(step: number): Promise<Record<string, number>>;
  /**
   * Evaluate every this many steps and after the last (unless `evalFinal` is `false`); `0`: only
   * after the last.
   */
  evalEvery: number;
  /**
   * Evaluate after the last step even when `evalEvery` does not fall on it. Default `true`;
   * `false` with `evalEvery: 0` evaluates after no step.
   */
  evalFinal?: boolean;
  /** Evaluate before the first step of a fresh run (a `step: 0` line). Default `false`. */
  evalAtStart?: boolean;
  /**
   * Saves a checkpoint of the state after `step`.
   *
   * @param step The step just done.
   * @param metrics Its metrics line (without `step`).
   * @returns The checkpoint folder.
   */
  checkpoint?(step: number, metrics: Record<string, number>): Promise<string>;
  /** Save every this many steps and after the last; `0` only after the last. */
  checkpointEvery: number;
  /** The checkpoint the run resumed from, named if it has to stop; default none. */
  resumedFrom?: string | null;
  /** The progress line; default none. */
  progress?: Progress;
  /**
   * Stop after this step as if the process were killed (no final evaluation or checkpoint
   * beyond the cadence): for resume tests and time-boxed runs. Default never.
   */
  haltAfterStep?: number;
}

/**
 * Result of {@linkcode trainLoop}.
 *
 * @example Usage
 * ```ts
 * import type { TrainLoopResult } from "./train_loop.ts";
 *
 * const result: TrainLoopResult = {
 *   step: 300, halted: false, metrics: { "loss/nll": 0.3 }, lastCheckpoint: "out/run/step_000300",
 * };
 * ```
 */
export interface TrainLoopResult {
  /** The last step done. */
  step: number;
  /** Whether `haltAfterStep` stopped the run early. */
  halted: boolean;
  /** The last step's metrics line (without `step`). */
  metrics: Record<string, number>;
  /** The newest checkpoint saved or resumed from, or `null`. */
  lastCheckpoint: string | null;
}

/**
 * Thrown when a step's loss or a metric is NaN or infinite: the update of that step is not
 * applied, no checkpoint is written for it, and earlier checkpoints are kept.
 *
 * @example Catch it and report the step
 * ```ts
 * import { NonFiniteLossError } from "./train_loop.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const error = new NonFiniteLossError(17, "loss/nll", NaN, "out/run/step_000010");
 * strictEqual(error.step, 17);
 * strictEqual(error.lastCheckpoint, "out/run/step_000010");
 * ```
 */
export class NonFiniteLossError extends Error {
  /** The step whose loss was not finite. */
  readonly step: number;
  /** The newest good checkpoint, or `null` when none was saved yet. */
  readonly lastCheckpoint: string | null;

  /**
   * Creates the error.
   *
   * @param step The step.
   * @param key The metric that was not finite.
   * @param value Its value.
   * @param lastCheckpoint The newest good checkpoint, or `null`.
   */
  constructor(step: number, key: string, value: number, lastCheckpoint: string | null) {
    super(
      `Training stopped at step ${step}: "${key}" must be finite: current value is ${value}; ` +
        `the update of step ${step} was not applied and ` +
        (lastCheckpoint === null
          ? "no checkpoint was saved yet"
          : `the last good checkpoint is "${lastCheckpoint}"`),
    );
    this.name = "NonFiniteLossError";
    this.step = step;
    this.lastCheckpoint = lastCheckpoint;
  }
}

function encodeValue(value: number): number | string {
  if (Number.isFinite(value)) return value;
  return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
}

/**
 * One metrics line: `{"step": N, ...}` with the other keys sorted, non-finite values as strings.
 *
 * @param step The step.
 * @param metrics The metrics.
 * @returns The JSON text, without a newline.
 *
 * @example Usage
 * ```ts
 * import { metricsLine } from "./train_loop.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(metricsLine(3, { "optim/lr": 0.001, "loss/nll": 1.5 }),
 *   '{"step":3,"loss/nll":1.5,"optim/lr":0.001}');
 * ```
 */
export function metricsLine(step: number, metrics: Readonly<Record<string, number>>): string {
  const out: Record<string, number | string> = { step };
  for (const key of Object.keys(metrics).sort()) {
    if (key !== "step") out[key] = encodeValue(metrics[key]);
  }
  return JSON.stringify(out);
}

/** Keeps the lines of steps `<= step` (all of them when resuming from the end). */
async function truncateMetrics(path: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const kept = text.split("\n").filter((line) => {
    if (line.trim() === "") return false;
    try {
      const value = JSON.parse(line).step;
      return typeof value === "number" && value <= step;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(path, kept.map((line) => `${line}\n`).join(""));
}

function firstNonFinite(
  loss: number,
  metrics: Readonly<Record<string, number>>,
): [string, number] | null {
  if (!Number.isFinite(loss)) return ["loss", loss];
  for (const [key, value] of Object.entries(metrics)) {
    if (typeof value === "number" && !Number.isFinite(value)) return [key, value];
  }
  return null;
}

/**
 * Runs steps `startStep + 1 .. totalSteps`. Per step: compute it; if its loss or any metric is
 * NaN/Inf, throw {@linkcode NonFiniteLossError} without applying it; else apply it, evaluate on
 * the cadence, append the metrics line to `runDir/metrics.jsonl`, save a checkpoint on the
 * cadence, and update the progress line. A fresh run (`startStep` 0) starts a new metrics file;
 * a resumed one first drops the lines after `startStep`.
 *
 * @param options The step, evaluation and checkpoint functions and their cadences.
 * @returns The last step, its metrics and the newest checkpoint.
 * @throws {NonFiniteLossError} When a step's loss or metrics are not finite.
 * @throws {RangeError} When `startStep` or `totalSteps` is out of range.
 *
 * @example Three steps of a toy objective, logged
 * ```ts
 * import { trainLoop } from "./train_loop.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const runDir = await Deno.makeTempDir();
 * try {
 *   let w = 1;
 *   const result = await trainLoop({
 *     runDir, startStep: 0, totalSteps: 3, evalEvery: 0, checkpointEvery: 0,
 *     step: () => Promise.resolve({
 *       loss: w * w, tokens: 1, metrics: { "loss/l2": w * w }, commit: () => { w /= 2; },
 *     }),
 *   });
 *   strictEqual(result.step, 3);
 *   const lines = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n");
 *   strictEqual(lines[2], '{"step":3,"loss/l2":0.0625}');
 * } finally {
 *   await Deno.remove(runDir, { recursive: true });
 * }
 * ```
 */
export async function trainLoop(options: TrainLoopOptions): Promise<TrainLoopResult> {
  const { runDir, startStep, totalSteps, progress } = options;
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(
      `Cannot run the training loop: "totalSteps" must be a positive integer: current value is ` +
        `${totalSteps}`,
    );
  }
  if (!Number.isSafeInteger(startStep) || startStep < 0 || startStep > totalSteps) {
    throw new RangeError(
      `Cannot run the training loop: "startStep" must be an integer in [0, ${totalSteps}]: ` +
        `current value is ${startStep}`,
    );
  }
  await Deno.mkdir(runDir, { recursive: true });
  const metricsPath = join(runDir, "metrics.jsonl");
  if (startStep === 0) await writeFileAtomic(metricsPath, "");
  else await truncateMetrics(metricsPath, startStep);
  const append = (step: number, metrics: Record<string, number>): Promise<void> =>
    Deno.writeTextFile(metricsPath, `${metricsLine(step, metrics)}\n`, { append: true });
  const due = (step: number, every: number, last = true): boolean =>
    (last && step === totalSteps) || (every > 0 && step % every === 0);

  let lastCheckpoint = options.resumedFrom ?? null;
  let metrics: Record<string, number> = {};
  if (startStep === 0 && options.evalAtStart && options.evaluate) {
    metrics = await options.evaluate(0);
    await append(0, metrics);
  }
  for (let step = startStep + 1; step <= totalSteps; step++) {
    const began = performance.now();
    const pending = await options.step(step);
    const bad = firstNonFinite(pending.loss, pending.metrics);
    if (bad !== null) {
      progress?.done();
      throw new NonFiniteLossError(step, bad[0], bad[1], lastCheckpoint);
    }
    pending.commit();
    metrics = { ...pending.metrics };
    const seconds = (performance.now() - began) / 1000;
    progress?.update(step, { loss: pending.loss, tokens: pending.tokens, seconds });
    if (options.evaluate && due(step, options.evalEvery, options.evalFinal ?? true)) {
      Object.assign(metrics, await options.evaluate(step));
    }
    await append(step, metrics);
    if (options.checkpoint && due(step, options.checkpointEvery)) {
      lastCheckpoint = await options.checkpoint(step, metrics);
    }
    if (options.haltAfterStep === step && step < totalSteps) {
      progress?.done();
      return { step, halted: true, metrics, lastCheckpoint };
    }
  }
  progress?.done();
  return { step: totalSteps, halted: false, metrics, lastCheckpoint };
}
