// Copyright 2025 the halo authors. MIT license.
/**
 * The sample records of `deno task eval` and their file, `samples.jsonl`: one JSON object per
 * line, the `k` samples of a prompt written together once the prompt is finished. Reading the file
 * back keeps only whole prompts, so a run killed mid-write (a torn last line, or a prompt with
 * fewer than `k` lines) resumes from its last finished prompt.
 *
 * @module
 */

import type { VerifyReason } from "../verify/types.ts";

/**
 * One sample of one prompt, as stored in `samples.jsonl`.
 *
 * @example Usage
 * ```ts
 * import type { EvalSampleRecord } from "./eval_records.ts";
 *
 * const record: EvalSampleRecord = {
 *   id: "arithmetic/eval/0", sample: 0, gold: "6", text: "1 + 5 = 6\nAnswer: 6",
 *   answer: "6", correct: true, reason: "match-string", vote: 0, tokens: 11, stop: "eos",
 * };
 * ```
 */
export interface EvalSampleRecord {
  /** The prompt id (unique within the data set, e.g. MATH-500's `unique_id`). */
  id: string;
  /** The sample index within the prompt, `0..k-1`. */
  sample: number;
  /** The gold answer the sample was checked against. */
  gold: string;
  /** The decoded response (special tokens dropped). */
  text: string;
  /** The extracted answer, or `null` when none was found. */
  answer: string | null;
  /** The verifier's decision (eval mode); `null` when the gold is unusable (skip the prompt). */
  correct: boolean | null;
  /** Why (see `VerifyReason`). */
  reason: VerifyReason;
  /**
   * The majority-vote class of the answer: the index of the first sample of this prompt whose
   * answer is equivalent to this one (so equal votes share a number), or `null` without an answer.
   */
  vote: number | null;
  /** Generated tokens. */
  tokens: number;
  /** Why generation stopped: `"eos"`, `"stop"` or `"length"`. */
  stop: string;
  /** MATH-500 subject, when the data set has one. */
  subject?: string;
  /** MATH-500 level, when the data set has one. */
  level?: number;
}

/**
 * What {@linkcode parseSamplesJsonl} kept and dropped.
 *
 * @example Usage
 * ```ts
 * import type { ParsedSamples } from "./eval_records.ts";
 *
 * const parsed: ParsedSamples = { records: [], prompts: [], droppedLines: 1, droppedPrompts: [] };
 * ```
 */
export interface ParsedSamples {
  /** The records of whole prompts, in file order. */
  records: EvalSampleRecord[];
  /** The ids of the whole prompts, in file order. */
  prompts: string[];
  /** Lines dropped: a torn or unparseable last line. */
  droppedLines: number;
  /** Prompts dropped because fewer than `k` of their samples were written. */
  droppedPrompts: string[];
}

/**
 * Options of {@linkcode parseSamplesJsonl}.
 *
 * @example Usage
 * ```ts
 * import type { ParseSamplesOptions } from "./eval_records.ts";
 *
 * const options: ParseSamplesOptions = { k: 16, source: "out/eval/samples.jsonl" };
 * ```
 */
export interface ParseSamplesOptions {
  /** Samples per prompt; a prompt with fewer (a run killed while writing it) is dropped. */
  k?: number;
  /** Named in errors; default `"samples.jsonl"`. */
  source?: string;
}

const REASONS = new Set<string>([
  "match-string",
  "match-exact",
  "match-numeric",
  "match-random-points",
  "match-structure",
  "match-text",
  "mismatch",
  "no-answer",
  "response-unparseable",
  "too-large",
  "timeout",
  "invalid-input",
  "internal-error",
  "gold-unparseable",
]);

/** Why a parsed value is not a record, or `null` when it is one. */
function recordProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not an object";
  const r = value as Record<string, unknown>;
  if (typeof r.id !== "string") return `field "id" must be a string`;
  if (!Number.isInteger(r.sample) || (r.sample as number) < 0) {
    return `field "sample" must be a non-negative integer`;
  }
  if (typeof r.gold !== "string") return `field "gold" must be a string`;
  if (typeof r.text !== "string") return `field "text" must be a string`;
  if (r.answer !== null && typeof r.answer !== "string") {
    return `field "answer" must be a string or null`;
  }
  if (r.correct !== null && typeof r.correct !== "boolean") {
    return `field "correct" must be true, false or null`;
  }
  if (typeof r.reason !== "string" || !REASONS.has(r.reason)) {
    return `field "reason" must be a verifier reason`;
  }
  if (r.vote !== null && (!Number.isInteger(r.vote) || (r.vote as number) < 0)) {
    return `field "vote" must be a non-negative integer or null`;
  }
  if (!Number.isInteger(r.tokens) || (r.tokens as number) < 0) {
    return `field "tokens" must be a non-negative integer`;
  }
  if (typeof r.stop !== "string") return `field "stop" must be a string`;
  if (r.subject !== undefined && typeof r.subject !== "string") {
    return `field "subject" must be a string`;
  }
  if (r.level !== undefined && !Number.isInteger(r.level)) {
    return `field "level" must be an integer`;
  }
  return null;
}

/**
 * The JSONL text of one finished prompt: one line per sample, each ending in `\n`, with the keys
 * in a fixed order (so equal records give equal bytes).
 *
 * @param records The prompt's samples, in sample order.
 * @returns The lines, ready to append to `samples.jsonl`.
 *
 * @example Two samples
 * ```ts
 * import { formatSampleLines } from "./eval_records.ts";
 * import assert from "node:assert/strict";
 *
 * const base = { id: "p", gold: "2", text: "Answer: 2", answer: "2", correct: true,
 *   reason: "match-string" as const, vote: 0, tokens: 3, stop: "eos" };
 * const text = formatSampleLines([{ ...base, sample: 0 }, { ...base, sample: 1 }]);
 * assert.equal(text.split("\n").length, 3); // two lines and the final newline
 * assert.ok(text.startsWith('{"id":"p","sample":0,'));
 * ```
 */
export function formatSampleLines(records: readonly EvalSampleRecord[]): string {
  let out = "";
  for (const r of records) {
    const ordered: Record<string, unknown> = {
      id: r.id,
      sample: r.sample,
      gold: r.gold,
      text: r.text,
      answer: r.answer,
      correct: r.correct,
      reason: r.reason,
      vote: r.vote,
      tokens: r.tokens,
      stop: r.stop,
    };
    if (r.subject !== undefined) ordered.subject = r.subject;
    if (r.level !== undefined) ordered.level = r.level;
    out += JSON.stringify(ordered) + "\n";
  }
  return out;
}

/**
 * Parses `samples.jsonl` for a resume or a summary. A last line that is torn (no final newline)
 * or not JSON is dropped, as are the samples of a prompt that has fewer than `k` of them (a run
 * killed while appending it); an unparseable line anywhere else is an error. Duplicate samples of
 * a prompt, or a prompt whose samples are not `0..k-1` in order, are errors too.
 *
 * @param text The file's text.
 * @param options Samples per prompt (default: the sample count of the first prompt) and the
 * file name for errors.
 * @returns The records of the whole prompts and what was dropped.
 * @throws {SyntaxError} When a line other than the last is not a valid record (the message names
 * the file and line), or samples are out of order.
 *
 * @example A torn last line is dropped with its prompt
 * ```ts
 * import { formatSampleLines, parseSamplesJsonl } from "./eval_records.ts";
 * import assert from "node:assert/strict";
 *
 * const r = { id: "a", sample: 0, gold: "1", text: "1", answer: "1", correct: true,
 *   reason: "match-string" as const, vote: 0, tokens: 1, stop: "eos" };
 * const whole = formatSampleLines([r, { ...r, sample: 1 }]);
 * const torn = formatSampleLines([{ ...r, id: "b" }]) + '{"id":"b","sam';
 * const parsed = parseSamplesJsonl(whole + torn, { k: 2 });
 * assert.deepEqual(parsed.prompts, ["a"]);
 * assert.equal(parsed.droppedLines, 1);
 * assert.deepEqual(parsed.droppedPrompts, ["b"]);
 * ```
 */
export function parseSamplesJsonl(text: string, options: ParseSamplesOptions = {}): ParsedSamples {
  const source = options.source ?? "samples.jsonl";
  const lines = text.split("\n");
  // After a final "\n" the split leaves one empty string; anything else there is a torn line.
  const tail = lines.pop() ?? "";
  let droppedLines = tail.trim() === "" ? 0 : 1;
  const parsed: EvalSampleRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    let value: unknown;
    let problem: string | null;
    try {
      value = JSON.parse(line);
      problem = recordProblem(value);
    } catch (error) {
      problem = `not JSON (${(error as Error).message})`;
    }
    if (problem !== null) {
      if (i === lines.length - 1 && droppedLines === 0) {
        droppedLines = 1;
        continue;
      }
      throw new SyntaxError(`Cannot read samples "${source}": line ${i + 1}: ${problem}`);
    }
    parsed.push(value as EvalSampleRecord);
  }
  // Group consecutive lines by prompt; each group must be samples 0, 1, 2, ... in order.
  const groups: EvalSampleRecord[][] = [];
  const seen = new Set<string>();
  for (const r of parsed) {
    const last = groups.at(-1);
    if (last !== undefined && last[0].id === r.id) {
      if (r.sample !== last.length) {
        throw new SyntaxError(
          `Cannot read samples "${source}": prompt "${r.id}" has sample ${r.sample} where ` +
            `sample ${last.length} was expected`,
        );
      }
      last.push(r);
      continue;
    }
    if (seen.has(r.id)) {
      throw new SyntaxError(`Cannot read samples "${source}": prompt "${r.id}" appears twice`);
    }
    if (r.sample !== 0) {
      throw new SyntaxError(
        `Cannot read samples "${source}": prompt "${r.id}" starts with sample ${r.sample}, not 0`,
      );
    }
    seen.add(r.id);
    groups.push([r]);
  }
  const k = options.k ?? groups[0]?.length;
  const records: EvalSampleRecord[] = [];
  const prompts: string[] = [];
  const droppedPrompts: string[] = [];
  groups.forEach((group, g) => {
    if (group.length === k) {
      records.push(...group);
      prompts.push(group[0].id);
    } else if (g === groups.length - 1 && k !== undefined && group.length < k) {
      droppedPrompts.push(group[0].id);
    } else {
      throw new SyntaxError(
        `Cannot read samples "${source}": prompt "${group[0].id}" has ${group.length} samples, ` +
          `expected ${k}`,
      );
    }
  });
  return { records, prompts, droppedLines, droppedPrompts };
}
