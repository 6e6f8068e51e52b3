/**
 * Reading a JSON file with errors that name it: one place for the "file not found" and "invalid
 * JSON" messages of every loader (`Cannot load tokenizer "dir/tokenizer.json": invalid JSON: …`).
 *
 * @module
 */

/**
 * Options of {@linkcode readJsonFile}.
 *
 * @example Usage
 * ```ts
 * import type { ReadJsonFileOptions } from "./read_json.ts";
 *
 * const options: ReadJsonFileOptions = { context: "Cannot load checkpoint", optional: true };
 * ```
 */
export interface ReadJsonFileOptions {
  /**
   * What failed, the start of every error message (e.g. `"Cannot load adapter"`); the file's
   * path follows in quotes.
   */
  context: string;
  /**
   * A missing file returns `undefined` (which no JSON text parses to, unlike `null`) instead of
   * throwing a `Deno.errors.NotFound` naming it; default false.
   */
  optional?: boolean;
}

/**
 * Reads and parses a JSON file.
 *
 * @param path The file.
 * @param options The message's context and what a missing file does.
 * @returns The parsed value, or `undefined` for a missing file with `optional`.
 * @throws {Deno.errors.NotFound} `<context> "<path>": file not found` (unless `optional`).
 * @throws {SyntaxError} `<context> "<path>": invalid JSON: <parser message>`.
 * @throws {Error} `<context> "<path>": <message>` for other read errors (e.g. permission),
 *   with the original as `cause`.
 *
 * @example A missing file and a file of invalid JSON
 * ```ts
 * import { readJsonFile } from "./read_json.ts";
 * import { rejects, strictEqual } from "node:assert/strict";
 *
 * strictEqual(await readJsonFile("no-such.json", { context: "Cannot load", optional: true }), undefined);
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, "{oops");
 * await rejects(readJsonFile(path, { context: "Cannot load" }), /invalid JSON/);
 * await Deno.remove(path);
 * ```
 */
export async function readJsonFile(
  path: string,
  options: ReadJsonFileOptions & { optional: true },
): Promise<unknown | undefined>;
export async function readJsonFile(path: string, options: ReadJsonFileOptions): Promise<unknown>;
export async function readJsonFile(
  path: string,
  options: ReadJsonFileOptions,
): Promise<unknown | undefined> {
  const where = `${options.context} "${path}"`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      if (options.optional) return undefined;
      throw new Deno.errors.NotFound(`${where}: file not found`, { cause: error });
    }
    throw new Error(`${where}: ${messageOf(error)}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`${where}: invalid JSON: ${messageOf(error)}`, { cause: error });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
