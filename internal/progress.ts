/**
 * A training progress line on stderr: step, a bar, loss, tokens per second and the time left.
 * On a terminal it redraws one line in place; otherwise (CI logs, pipes) it prints plain lines
 * every few steps.
 *
 * @module
 */

/**
 * Options of {@linkcode createProgress}.
 *
 * @example Usage
 * ```ts
 * import type { ProgressOptions } from "./progress.ts";
 *
 * const options: ProgressOptions = { total: 300, startStep: 100, tty: false, every: 10 };
 * ```
 */
export interface ProgressOptions {
  /** The last step of the run. */
  total: number;
  /** The step the run starts from (after a resume); default 0. */
  startStep?: number;
  /** Where text goes; default stderr. */
  write?: (text: string) => void;
  /** Redraw in place (a terminal); default whether stderr is a terminal. */
  tty?: boolean;
  /** Without a terminal, print every this many steps (and the last); default `total / 20`. */
  every?: number;
  /** The clock in milliseconds; default `performance.now`. */
  now?: () => number;
}

/**
 * What one step reports to the progress line.
 *
 * @example Usage
 * ```ts
 * import type { ProgressUpdate } from "./progress.ts";
 *
 * const update: ProgressUpdate = { loss: 1.25, tokens: 720 };
 * ```
 */
export interface ProgressUpdate {
  /** The step's training loss. */
  loss: number;
  /** Tokens the step processed (for tokens/s). */
  tokens: number;
  /**
   * Seconds the step's own work took; tokens/s then counts only step time (not evaluation or
   * checkpoints). Default: the wall time since the previous update.
   */
  seconds?: number;
}

/**
 * A progress line.
 *
 * @example Usage
 * ```ts
 * import { createProgress, type Progress } from "./progress.ts";
 *
 * const progress: Progress = createProgress({ total: 10, write: () => {} });
 * progress.update(1, { loss: 2, tokens: 100 });
 * progress.done();
 * ```
 */
export interface Progress {
  /**
   * Reports a finished step.
   *
   * @param step The step just finished (1-based).
   * @param update Its loss and token count.
   */
  update(step: number, update: ProgressUpdate): void;
  /**
   * Prints a message on its own line (evaluation results, checkpoints) without breaking the bar.
   *
   * @param text The message.
   */
  note(text: string): void;
  /** Ends the line (on a terminal). */
  done(): void;
}

/**
 * `1h02m`, `3m05s`, `42s`: a duration for humans.
 *
 * @param seconds The duration (non-finite or negative gives `"?"`).
 * @returns The text.
 *
 * @example Usage
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(formatDuration(185), "3m05s");
 * strictEqual(formatDuration(3720), "1h02m");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "?";
  return perSecond >= 1000 ? `${(perSecond / 1000).toFixed(1)}k` : perSecond.toFixed(0);
}

/**
 * Creates a progress line. Tokens/s is averaged over the steps' own time, the ETA over the wall
 * time of this session (evaluations and checkpoints included).
 *
 * @param options Total steps, start step, output, terminal mode and cadence.
 * @returns The progress line.
 *
 * @example Plain lines every 5 steps
 * ```ts
 * import { createProgress } from "./progress.ts";
 * import { ok, strictEqual } from "node:assert/strict";
 *
 * const lines: string[] = [];
 * let clock = 0;
 * const progress = createProgress({
 *   total: 10, tty: false, every: 5, write: (t) => lines.push(t), now: () => clock,
 * });
 * for (let step = 1; step <= 10; step++) {
 *   clock += 500;
 *   progress.update(step, { loss: 1 / step, tokens: 1000 });
 * }
 * strictEqual(lines.length, 2);
 * ok(lines[0].startsWith("step  5/10 [##########..........] loss 0.2000"));
 * ok(lines[0].includes("2.0k tok/s") && lines[0].includes("ETA 3s"));
 * ```
 */
export function createProgress(options: ProgressOptions): Progress {
  const total = options.total;
  const startStep = options.startStep ?? 0;
  const write = options.write ?? ((text: string) => {
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  });
  const tty = options.tty ?? Deno.stderr.isTerminal();
  const every = Math.max(1, options.every ?? Math.round(total / 20));
  const now = options.now ?? (() => performance.now());
  const start = now();
  let last = start;
  let tokens = 0;
  let stepSeconds = 0;
  let drawn = false;
  return {
    update(step: number, update: ProgressUpdate): void {
      const t = now();
      tokens += update.tokens;
      stepSeconds += update.seconds ?? (t - last) / 1000;
      last = t;
      const seconds = (t - start) / 1000;
      const done = step - startStep;
      const eta = done > 0 ? (seconds / done) * (total - step) : NaN;
      const width = 20;
      const filled = Math.min(width, Math.round((width * step) / Math.max(1, total)));
      const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
      const digits = String(total).length;
      const text = `step ${String(step).padStart(digits)}/${total} ${bar} loss ` +
        `${update.loss.toFixed(4)} | ${formatRate(tokens / stepSeconds)} tok/s | ETA ` +
        formatDuration(eta);
      if (tty) {
        write(`\r\x1b[2K${text}`);
        drawn = true;
      } else if (step % every === 0 || step === total) {
        write(`${text}\n`);
      }
    },
    note(text: string): void {
      write(tty && drawn ? `\r\x1b[2K${text}\n` : `${text}\n`);
      drawn = false;
    },
    done(): void {
      if (tty && drawn) write("\n");
      drawn = false;
    },
  };
}
