// Copyright 2025 the halo authors. MIT license.
/**
 * Reading a run's `metrics.jsonl` (one `{"step": N, "ns/key": value, …}` object per line, as the
 * trainer's `metricsLine` writes it) back into numbers.
 *
 * @module
 */

/** One line of `metrics.jsonl`: its step and its other values (non-finite ones decoded). */
export interface MetricsRow {
  /** The step the line belongs to. */
  step: number;
  /** The metrics of that step, by key (e.g. "loss/nll"); NaN and ±Infinity as numbers. */
  values: Record<string, number>;
}

const NON_FINITE: Readonly<Record<string, number>> = {
  NaN: NaN,
  Infinity: Infinity,
  "-Infinity": -Infinity,
};

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Parses the text of a `metrics.jsonl` file; blank lines are skipped.
 *
 * @param text The file's contents.
 * @param path The file's name, for error messages.
 * @returns One row per non-blank line, in file order.
 * @throws {SyntaxError} When a line is not JSON; the message names the file and the line.
 * @throws {TypeError} When a line is not an object with a finite numeric "step", or a value is
 * neither a number nor one of "NaN", "Infinity", "-Infinity"; the message names the file and line.
 *
 * @example Parse two lines
 * ```ts
 * import { parseMetrics } from "./read_metrics.ts";
 * import assert from "node:assert/strict";
 *
 * const rows = parseMetrics('{"step":1,"loss/nll":2.5}\n{"step":2,"loss/nll":"NaN"}\n', "m.jsonl");
 * assert.deepEqual(rows[0], { step: 1, values: { "loss/nll": 2.5 } });
 * assert.ok(Number.isNaN(rows[1].values["loss/nll"]));
 * ```
 */
export function parseMetrics(text: string, path: string): MetricsRow[] {
  const rows: MetricsRow[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `Cannot read metrics "${path}": line ${i + 1}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      throw new SyntaxError(
        `${where} is not valid JSON (${(error as Error).message}): current text is ${
          describe(line)
        }`,
      );
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new TypeError(`${where} must be a JSON object: current value is ${describe(parsed)}`);
    }
    const record = parsed as Record<string, unknown>;
    const step = record.step;
    if (typeof step !== "number" || !Number.isFinite(step)) {
      throw new TypeError(
        `${where} must have a numeric "step": current value is ${describe(step)}`,
      );
    }
    const values: Record<string, number> = {};
    for (const [key, value] of Object.entries(record)) {
      if (key === "step") continue;
      if (typeof value === "number") values[key] = value;
      else if (typeof value === "string" && Object.hasOwn(NON_FINITE, value)) {
        values[key] = NON_FINITE[value];
      } else {
        throw new TypeError(
          `${where} key "${key}" must be a number: current value is ${describe(value)}`,
        );
      }
    }
    rows.push({ step, values });
  }
  return rows;
}

/**
 * Reads and parses a `metrics.jsonl` file (see {@linkcode parseMetrics}).
 *
 * @param path The file.
 * @returns One row per non-blank line, in file order.
 * @throws {Deno.errors.NotFound} When the file does not exist; the message names it.
 * @throws {SyntaxError} When a line is not JSON; the message names the file and the line.
 * @throws {TypeError} When a line or a value has the wrong type; the message names file and line.
 *
 * @example Read a file
 * ```ts
 * import { readMetrics } from "./read_metrics.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"step":1,"optim/lr":0.001}\n');
 * const rows = await readMetrics(`${dir}/metrics.jsonl`);
 * assert.equal(rows[0].values["optim/lr"], 0.001);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readMetrics(path: string): Promise<MetricsRow[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot read metrics "${path}": the file does not exist`, {
        cause: error,
      });
    }
    throw error;
  }
  return parseMetrics(text, path);
}
