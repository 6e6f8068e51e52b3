// Copyright 2025 the halo authors. MIT license.
/**
 * Command line front end of the verifier.
 *
 * ```sh
 * deno task verify --gold '\frac12' --response 'so \boxed{0.5}'
 * deno task verify --file pairs.jsonl          # {"response": "...", "gold": "..."} per line
 * deno task verify --mode eval --json --gold 13 --response 'The answer is 13.'
 * deno task verify --gold 12 --response '#### 12 bananas' --problem 'How many bananas …?'
 * ```
 *
 * Prints the decision and the reason for each pair (`--json`: one JSON object per line)
 * and, for `--file`, a summary line. Exit code 0 on success (whatever the decisions),
 * 2 on a usage or input error.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { verify, type VerifyOptions, type VerifyResult } from "../verify/verify.ts";
import type { ExtractorName } from "../verify/extract_answer.ts";

/** Where {@linkcode main} writes its output. */
export interface CliIO {
  /** Writes one line of normal output. */
  out: (line: string) => void;
  /** Writes one line of error output. */
  err: (line: string) => void;
  /** Reads a whole text file (for `--file`). */
  readTextFile: (path: string) => Promise<string>;
}

const USAGE = `Usage: deno task verify --gold GOLD --response RESPONSE [options]
       deno task verify --file PAIRS.jsonl [options]

Options:
  --gold TEXT          gold answer
  --response TEXT      model response
  --file PATH          JSON lines, each {"response": "...", "gold": "..."} and an
                       optional "problem": "..." (as --problem, per line)
  --problem TEXT       the problem text: its nouns after a plain-number answer count as
                       that number ("#### 12 bananas" for gold 12), never words such as
                       "dozen", "less" or "sixths" that change the value
  --mode reward|eval   reward (default): answer must follow a marker; eval: any LaTeX / last line
  --extractors LIST    comma-separated priority, e.g. boxed,answer_line,gsm8k
  --budget-ms N        per-check time budget in milliseconds (default: none in reward
                       mode, where a counted work budget keeps rewards deterministic;
                       100 in eval mode), read only past 20000 counted steps
  --json               print one JSON object per pair
  -h, --help           show this help`;

const EXTRACTOR_NAMES: readonly ExtractorName[] = [
  "boxed",
  "minerva",
  "answer_line",
  "gsm8k",
  "latex",
  "plain",
  "last_number",
];

const defaultIO: CliIO = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  readTextFile: (path) => Deno.readTextFile(path),
};

/**
 * Runs the command with the given arguments.
 *
 * @param args Command-line arguments (without the program name).
 * @param io Output and file access (defaults to the console and `Deno.readTextFile`).
 * @returns The exit code: 0 on success, 2 on a usage or input error.
 *
 * @example Usage
 * ```ts
 * import { main } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const code = await main(["--gold", "1/2", "--response", "\\boxed{0.5}"], {
 *   out: (l) => lines.push(l),
 *   err: (l) => lines.push(l),
 *   readTextFile: () => Promise.resolve(""),
 * });
 * assert.equal(code, 0);
 * assert.match(lines[0], /^correct/);
 * ```
 */
export async function main(args: readonly string[], io: CliIO = defaultIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        gold: { type: "string" },
        response: { type: "string" },
        file: { type: "string" },
        mode: { type: "string" },
        extractors: { type: "string" },
        "budget-ms": { type: "string" },
        problem: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.err(`error: ${e instanceof Error ? e.message : String(e)}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const options: VerifyOptions = {};
  if (values.mode !== undefined) {
    if (values.mode !== "reward" && values.mode !== "eval") {
      io.err(`error: expected --mode reward or eval, got ${JSON.stringify(values.mode)}`);
      return 2;
    }
    options.mode = values.mode;
  }
  if (values.extractors !== undefined) {
    const names = values.extractors.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const unknown = names.filter((n) => !EXTRACTOR_NAMES.includes(n as ExtractorName));
    if (names.length === 0 || unknown.length > 0) {
      io.err(
        `error: expected --extractors from ${EXTRACTOR_NAMES.join(",")}, got ${
          JSON.stringify(values.extractors)
        }`,
      );
      return 2;
    }
    options.extractors = names as ExtractorName[];
  }
  if (values["budget-ms"] !== undefined) {
    const ms = Number(values["budget-ms"]);
    if (!(ms > 0)) {
      io.err(`error: expected --budget-ms a positive number, got ${values["budget-ms"]}`);
      return 2;
    }
    options.budgetMs = ms;
  }
  if (values.problem !== undefined) options.problem = values.problem;
  const json = values.json ?? false;

  if (values.file !== undefined) {
    if (values.gold !== undefined || values.response !== undefined) {
      io.err("error: expected either --file or --gold/--response, got both");
      return 2;
    }
    let text: string;
    try {
      text = await io.readTextFile(values.file);
    } catch (e) {
      io.err(`error: cannot read ${values.file}: ${e instanceof Error ? e.message : e}`);
      return 2;
    }
    const counts = { correct: 0, incorrect: 0, skipped: 0 };
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line === "") continue;
      let pair: unknown;
      try {
        pair = JSON.parse(line);
      } catch {
        io.err(`error: expected JSON on line ${i + 1} of ${values.file}, got ${line.slice(0, 60)}`);
        return 2;
      }
      const { response, gold, problem } = (pair ?? {}) as {
        response?: unknown;
        gold?: unknown;
        problem?: unknown;
      };
      if (
        typeof response !== "string" || typeof gold !== "string" ||
        (problem !== undefined && typeof problem !== "string")
      ) {
        io.err(
          `error: expected {"response": string, "gold": string, "problem"?: string} on line ${
            i + 1
          }, got ${line.slice(0, 60)}`,
        );
        return 2;
      }
      const r = verify(response, gold, problem === undefined ? options : { ...options, problem });
      if (r.correct === null) counts.skipped++;
      else if (r.correct) counts.correct++;
      else counts.incorrect++;
      io.out(format(r, json, i + 1));
    }
    const graded = counts.correct + counts.incorrect;
    const summary =
      `${counts.correct} correct, ${counts.incorrect} incorrect, ${counts.skipped} skipped` +
      (graded > 0 ? ` (accuracy ${(counts.correct / graded).toFixed(4)})` : "");
    io.out(json ? JSON.stringify({ summary: counts }) : summary);
    return 0;
  }

  if (values.gold === undefined || values.response === undefined) {
    io.err(
      `error: expected --gold and --response (or --file), got ${
        values.gold === undefined ? "no --gold" : "no --response"
      }`,
    );
    io.err(USAGE);
    return 2;
  }
  io.out(format(verify(values.response, values.gold, options), json));
  return 0;
}

function format(r: VerifyResult, json: boolean, line?: number): string {
  if (json) return JSON.stringify(line === undefined ? r : { line, ...r });
  const decision = r.correct === null ? "skip" : r.correct ? "correct" : "incorrect";
  const parts = [
    `${decision} (${r.reason})`,
    `extractor=${r.extractor ?? "-"}`,
    `offset=${r.markerOffset ?? "-"}`,
    `answer=${JSON.stringify(r.normalized ?? r.extracted ?? "")}`,
    `gold=${JSON.stringify(r.goldNormalized)}`,
  ];
  return (line === undefined ? "" : `${line}: `) + parts.join(" ");
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
