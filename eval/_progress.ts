// Copyright 2025 the halo authors. MIT license.
// The progress line of `deno task eval`: prompts done, a bar, running accuracy, generated
// tokens/s and the time left; redrawn in place on a terminal, plain lines otherwise (as the
// trainer's `trainer/progress.ts`, whose line is about steps and loss).

import { formatDuration } from "../internal/progress.ts";

export interface EvalProgressOptions {
  /** Prompts in the whole run. */
  total: number;
  /** Prompts already done (a resume). */
  start: number;
  /** A label in front of the line (the model or adapter). */
  label?: string;
  /** Where text goes; default stderr. */
  write?: (text: string) => void;
  /** Redraw in place; default whether stderr is a terminal. */
  tty?: boolean;
  /** The clock in milliseconds; default `performance.now`. */
  now?: () => number;
}

export interface EvalProgress {
  update(done: number, update: { correct: number; samples: number; tokens: number }): void;
  done(): void;
}

function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "?";
  return perSecond >= 1000 ? `${(perSecond / 1000).toFixed(1)}k` : perSecond.toFixed(1);
}

export function createEvalProgress(options: EvalProgressOptions): EvalProgress {
  const write = options.write ?? ((text: string) => {
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  });
  const tty = options.tty ?? Deno.stderr.isTerminal();
  const now = options.now ?? (() => performance.now());
  const every = Math.max(1, Math.round(options.total / 20));
  const start = now();
  let tokens = 0;
  let correct = 0;
  let samples = 0;
  let drawn = false;
  return {
    update(done, update) {
      tokens += update.tokens;
      correct += update.correct;
      samples += update.samples;
      const seconds = (now() - start) / 1000;
      const fresh = done - options.start;
      const eta = fresh > 0 ? (seconds / fresh) * (options.total - done) : NaN;
      const width = 20;
      const filled = Math.min(width, Math.round((width * done) / Math.max(1, options.total)));
      const digits = String(options.total).length;
      const text = `${options.label ? `${options.label} ` : ""}prompt ` +
        `${String(done).padStart(digits)}/${options.total} ` +
        `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` +
        `acc ${samples > 0 ? (correct / samples).toFixed(3) : "?"} | ` +
        `${rate(tokens / seconds)} tok/s | ETA ${formatDuration(eta)}`;
      if (tty) {
        write(`\r\x1b[2K${text}`);
        drawn = true;
      } else if (done % every === 0 || done === options.total) {
        write(`${text}\n`);
      }
    },
    done() {
      if (tty && drawn) write("\n");
      drawn = false;
    },
  };
}
