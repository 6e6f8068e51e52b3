/**
 * What an RL checkpoint records of its prompts (counts and content hashes of the training and
 * held-out lists, after duplicates are removed), and the resume check against it: the data
 * position counts into the training list's shuffled order, which depends on its length, so a
 * resume on other prompts would silently train on another order.
 *
 * @module
 */
import { promptsSha256, type RlPrompt } from "./prompt_data.ts";

/**
 * A checkpoint's record of its prompts (`meta.json` key `data`).
 *
 * @example Usage
 * ```ts
 * import type { PromptRecord } from "./prompt_record.ts";
 *
 * const record: PromptRecord = {
 *   source: "data/dapo.parquet", trainPrompts: 17398, trainSha256: "ab".repeat(32),
 *   evalPrompts: 500, evalSha256: "cd".repeat(32),
 * };
 * ```
 */
export interface PromptRecord {
  /** The training file (`rl.data.path`), or `"arithmetic"`. */
  source: string;
  /** Training prompts (unique, after the held-out split and `rl.data.trainSize`). */
  trainPrompts: number;
  /** {@linkcode promptsSha256} of the training prompts. */
  trainSha256: string;
  /** Held-out prompts. */
  evalPrompts: number;
  /** {@linkcode promptsSha256} of the held-out prompts. */
  evalSha256: string;
}

/**
 * The record of a run's prompts.
 *
 * @param source The training file, or `"arithmetic"`.
 * @param train The training prompts.
 * @param heldOut The held-out prompts.
 * @returns The record.
 *
 * @example Usage
 * ```ts
 * import { promptRecord } from "./prompt_record.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const record = promptRecord("p.jsonl", [{ question: "1 + 1?", gold: "2" }], []);
 * strictEqual(record.trainPrompts, 1);
 * ```
 */
export function promptRecord(
  source: string,
  train: readonly RlPrompt[],
  heldOut: readonly RlPrompt[],
): PromptRecord {
  return {
    source,
    trainPrompts: train.length,
    trainSha256: promptsSha256(train),
    evalPrompts: heldOut.length,
    evalSha256: promptsSha256(heldOut),
  };
}

/**
 * Options of {@linkcode checkResumePrompts}.
 *
 * @example Usage
 * ```ts
 * import type { CheckResumePromptsOptions } from "./prompt_record.ts";
 *
 * const options: CheckResumePromptsOptions = { checkpointDir: "out/run/step_000010", repeatedRows: 0 };
 * ```
 */
export interface CheckResumePromptsOptions {
  /** The checkpoint, named in messages. */
  checkpointDir: string;
  /** Rows of the training file the order before de-duplication held and training now drops (its repeats, and training prompts asking a held-out question). */
  repeatedRows: number;
}

/**
 * Checks that a resumed run reads the prompts its checkpoint was saved with. A checkpoint that
 * records none (saved before the record existed) read its files with their repeated rows: it
 * is refused when this run dropped any (its data position counts into another order), and
 * otherwise resumes with a warning (returned) that the file could not be checked.
 *
 * @param saved The checkpoint's `data` (`null` when it has none).
 * @param current This run's record.
 * @param options The checkpoint's folder and the rows dropped as repeats.
 * @returns A warning, or `null`.
 * @throws {RangeError} When the prompts differ (naming the file, the checkpoint and the counts).
 *
 * @example A file changed at the same path
 * ```ts
 * import { checkResumePrompts, promptRecord } from "./prompt_record.ts";
 * import { throws } from "node:assert/strict";
 *
 * const a = { question: "1 + 1?", gold: "2" };
 * const b = { question: "2 + 2?", gold: "4" };
 * const saved = promptRecord("p.jsonl", [a, b], []);
 * throws(
 *   () => checkResumePrompts(saved, promptRecord("p.jsonl", [b, a], []), {
 *     checkpointDir: "out/run/step_000002", repeatedRows: 0,
 *   }),
 *   /"p\.jsonl"/,
 * );
 * ```
 */
export function checkResumePrompts(
  saved: unknown,
  current: PromptRecord,
  options: CheckResumePromptsOptions,
): string | null {
  const where = `Cannot resume from "${options.checkpointDir}"`;
  if (saved === null || saved === undefined) {
    if (current.source === "arithmetic") return null;
    if (options.repeatedRows > 0) {
      throw new RangeError(
        `${where}: the checkpoint was saved before halo removed repeated prompts, and ` +
          `"${current.source}" (key "rl.data.path") has rows that are no longer trained on ` +
          `(${options.repeatedRows}: repeated prompts, or questions that are held out): its ` +
          `data position counts into the ${current.trainPrompts} unique prompts' order no ` +
          `more. Start a new run (or resume with the halo that saved it)`,
      );
    }
    return `the checkpoint "${options.checkpointDir}" records nothing of its prompts (saved ` +
      `before the record existed): that "${current.source}" is unchanged could not be checked`;
  }
  const s = saved as Partial<PromptRecord>;
  const differs: string[] = [];
  if (s.trainPrompts !== current.trainPrompts || s.trainSha256 !== current.trainSha256) {
    differs.push(
      `training prompts: ${s.trainPrompts} (sha256 ${String(s.trainSha256).slice(0, 12)}) in ` +
        `the checkpoint, ${current.trainPrompts} (sha256 ${current.trainSha256.slice(0, 12)}) now`,
    );
  }
  if (s.evalPrompts !== current.evalPrompts || s.evalSha256 !== current.evalSha256) {
    differs.push(
      `held-out prompts: ${s.evalPrompts} (sha256 ${String(s.evalSha256).slice(0, 12)}) in ` +
        `the checkpoint, ${current.evalPrompts} (sha256 ${current.evalSha256.slice(0, 12)}) now`,
    );
  }
  if (differs.length === 0) return null;
  throw new RangeError(
    `${where}: the prompts of "${current.source}" differ from those the checkpoint was saved ` +
      `with${s.source === current.source ? "" : ` ("${s.source}")`} (the file changed, or the ` +
      `split or size keys did): ${differs.join("; ")}. The data position would count into ` +
      `another order; start a new run`,
  );
}
