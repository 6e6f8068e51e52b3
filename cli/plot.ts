// Copyright 2025 the halo authors. MIT license.
/**
 * Command line front end of the run charts: draws the main curves of a run folder's
 * `metrics.jsonl` as SVG files in `<run dir>/plots/`.
 *
 * ```sh
 * deno task plot out/rl_arith_hidden_align
 * deno task plot out/run --out docs/results/run_plots --all
 * ```
 *
 * Exit code 0 on success, 2 on a usage or input error (missing or malformed `metrics.jsonl`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { plotRunCurves } from "../plot/run_curves.ts";

/** Where {@linkcode main} writes its output. */
export interface PlotCliIO {
  /** Writes one line of normal output. */
  out: (line: string) => void;
  /** Writes one line of error output. */
  err: (line: string) => void;
}

const USAGE = `Usage: deno task plot RUN_DIR [options]

Draws the main curves of RUN_DIR/metrics.jsonl as SVG files in RUN_DIR/plots/.

Options:
  --out DIR     write the SVG files to DIR instead of RUN_DIR/plots
  --all         also chart the keys no chart group takes, one chart per namespace
  -h, --help    show this help`;

const defaultIO: PlotCliIO = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/**
 * Runs the command with the given arguments.
 *
 * @param args Command-line arguments (without the program name).
 * @param io Output (defaults to the console).
 * @returns The exit code: 0 on success, 2 on a usage or input error.
 *
 * @example Plot a run folder
 * ```ts
 * import { main } from "./plot.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1,"loss/nll":2}\n{"step":2,"loss/nll":1}\n');
 * const lines: string[] = [];
 * const code = await main([dir], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
 * assert.equal(code, 0);
 * assert.ok(lines[0].endsWith("loss.svg (loss/nll)"));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function main(args: readonly string[], io: PlotCliIO = defaultIO): Promise<number> {
  let values: { out?: string; all?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        out: { type: "string" },
        all: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    io.err((error as Error).message);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    io.err(
      `Cannot plot: expected one run folder: current arguments are ${JSON.stringify(positionals)}`,
    );
    io.err(USAGE);
    return 2;
  }
  try {
    if (values.out !== undefined && (await Deno.stat(values.out).catch(() => null))?.isFile) {
      throw new RangeError(
        `Cannot plot: --out "${values.out}" is a file: give a directory (created if missing)`,
      );
    }
    const { charts } = await plotRunCurves(positionals[0], { outDir: values.out, all: values.all });
    if (charts.length === 0) io.err(`No chart: no known metric key in "${positionals[0]}"`);
    for (const chart of charts) io.out(`${chart.path} (${chart.keys.join(", ")})`);
    return 0;
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound || error instanceof SyntaxError ||
      error instanceof TypeError || error instanceof RangeError
    ) {
      io.err((error as Error).message);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
