// Copyright 2025 the halo authors. MIT license.
/**
 * The model directory's `generation_config.json`: the stop ids HF `generate` uses.
 *
 * @module
 */
import { readJsonFile } from "../internal/read_json.ts";

/** What halo reads from a `generation_config.json`. */
export interface GenerationConfig {
  /** The file that was read. */
  path: string;
  /** Its `eos_token_id` (a number or a list in the file), `[]` when absent or null. */
  eosTokenIds: number[];
  /** The whole file, for an exporter that copies it. */
  json: Record<string, unknown>;
}

function joinPath(dir: string, name: string): string {
  if (dir === "") return name;
  return dir.endsWith("/") || dir.endsWith("\\") ? `${dir}${name}` : `${dir}/${name}`;
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Options of {@linkcode parseGenerationConfig} and {@linkcode readGenerationConfig}. */
export interface GenerationConfigOptions {
  /**
   * The model's `vocab_size` (from `config.json`): every token id of the file must be below it.
   * Default: only the ids' form is checked.
   */
  vocabSize?: number;
}

/** The token-id keys checked besides `eos_token_id` (a single id or null each). */
const SINGLE_ID_KEYS = ["bos_token_id", "pad_token_id", "decoder_start_token_id"] as const;

/**
 * Validates a parsed `generation_config.json`.
 *
 * HF `generate` stops at every id of the generation config's `eos_token_id` (Qwen3's hybrid
 * checkpoints list `[151645, 151643]` there while `config.json` has only 151645), so the callers
 * merge {@linkcode GenerationConfig.eosTokenIds} into their stop set. `bos_token_id`,
 * `pad_token_id` and `decoder_start_token_id` must be a non-negative integer or null too; with
 * `options.vocabSize` every id must be below it.
 *
 * @param json The value of `JSON.parse` on the file.
 * @param path The file, quoted in error messages.
 * @param options `vocabSize`: the model's vocabulary size, to check the ids against.
 * @returns The parsed config.
 * @throws {TypeError} When the file is not a JSON object, or `eos_token_id` is not a
 *   non-negative integer, a list of them, or null (or another id key not one or null).
 * @throws {RangeError} When an id is not below `options.vocabSize`; the message names the file
 *   and the key (`eos_token_id[1]` for a list's item).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseGenerationConfig } from "./generation_config.ts";
 *
 * const g = parseGenerationConfig({ eos_token_id: [151645, 151643], top_k: 20 }, "g.json");
 * assert.deepEqual(g.eosTokenIds, [151645, 151643]);
 * assert.deepEqual(parseGenerationConfig({ eos_token_id: 7 }, "g.json").eosTokenIds, [7]);
 * assert.throws(() => parseGenerationConfig({ eos_token_id: "x" }, "g.json"), /eos_token_id/);
 * assert.throws(
 *   () => parseGenerationConfig({ eos_token_id: [7, 99] }, "g.json", { vocabSize: 64 }),
 *   /"eos_token_id\[1\]" must be below the model's vocab_size 64/,
 * );
 * ```
 */
export function parseGenerationConfig(
  json: unknown,
  path: string,
  options: GenerationConfigOptions = {},
): GenerationConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TypeError(
      `Cannot read "${path}": expected a JSON object: current value is ${show(json)}`,
    );
  }
  const obj = json as Record<string, unknown>;
  const eos = obj.eos_token_id;
  const ids = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  for (const id of ids) {
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw new TypeError(
        `Cannot read "${path}": key "eos_token_id" must be a non-negative integer, a list of ` +
          `them, or null: current value is ${show(eos)}`,
      );
    }
  }
  const checked: [string, number][] = ids.map((
    id,
    i,
  ) => [Array.isArray(eos) ? `eos_token_id[${i}]` : "eos_token_id", id as number]);
  for (const key of SINGLE_ID_KEYS) {
    const id = obj[key];
    if (id === undefined || id === null) continue;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      throw new TypeError(
        `Cannot read "${path}": key "${key}" must be a non-negative integer or null: current ` +
          `value is ${show(id)}`,
      );
    }
    checked.push([key, id]);
  }
  const { vocabSize } = options;
  if (vocabSize !== undefined) {
    for (const [key, id] of checked) {
      if (id >= vocabSize) {
        throw new RangeError(
          `Cannot read "${path}": key "${key}" must be below the model's vocab_size ` +
            `${vocabSize} (config.json): current value is ${id}`,
        );
      }
    }
  }
  return { path, eosTokenIds: [...new Set(ids as number[])], json: obj };
}

/**
 * Reads `generation_config.json` from a model directory, or `null` when the directory has none.
 *
 * @param dir The model directory.
 * @param options `vocabSize`: the model's vocabulary size, to check the ids against.
 * @returns The parsed config, or `null`.
 * @throws {SyntaxError} When the file is not valid JSON (the message names the file).
 * @throws {TypeError} As {@linkcode parseGenerationConfig}.
 * @throws {RangeError} As {@linkcode parseGenerationConfig}.
 *
 * @example Read a directory's file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readGenerationConfig } from "./generation_config.ts";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await readGenerationConfig(dir), null);
 * await Deno.writeTextFile(`${dir}/generation_config.json`, '{"eos_token_id": [2, 3]}');
 * assert.deepEqual((await readGenerationConfig(dir))?.eosTokenIds, [2, 3]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readGenerationConfig(
  dir: string,
  options: GenerationConfigOptions = {},
): Promise<GenerationConfig | null> {
  const path = joinPath(dir, "generation_config.json");
  const json = await readJsonFile(path, { context: "Cannot read", optional: true });
  return json === undefined ? null : parseGenerationConfig(json, path, options);
}
