/**
 * Helpers shared by the tests of `model/`: the fixture directory, temporary directories and
 * hand-made (possibly corrupt) safetensors files.
 *
 * @module
 */

const REPO_ROOT = new URL("../", import.meta.url);

/**
 * The fixture directory of the fixture-driven tests: `$HALO_FIXTURE` if set (relative paths
 * resolve against the repository root), else `tests/fixtures/qwen3-tiny` in the repository (a copy
 * of the project's shared fixtures, made with HuggingFace transformers and PEFT in float64 by
 * `make_fixtures.py`, which is kept with them in `shared/fixtures/`, not in this repository). Any
 * fixture that script produces must pass, so tests derive shapes from its config.
 *
 * @returns An absolute path to the fixture directory.
 */
export function fixtureDir(): string {
  const configured = Deno.env.get("HALO_FIXTURE") ?? "tests/fixtures/qwen3-tiny";
  if (configured.startsWith("/") || /^[A-Za-z]:[\\/]/.test(configured)) return configured;
  const url = new URL(configured.endsWith("/") ? configured : `${configured}/`, REPO_ROOT);
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}

/**
 * The bundled qwen3-tiny fixture (`tests/fixtures/qwen3-tiny` in the repository), whatever
 * `$HALO_FIXTURE` says: for checks of values known by hand for that model only.
 */
export const TINY_FIXTURE: string = decodeURIComponent(
  new URL("tests/fixtures/qwen3-tiny", REPO_ROOT).pathname,
);

/**
 * Asserts that two numeric arrays (typed or not) have the same kind, length and elements
 * (compared with `Object.is`, so NaN equals NaN and 0 differs from -0). Unlike node's
 * `deepStrictEqual`, a failure reports the first mismatching index and the number of mismatches
 * instead of a diff of every element, which for a large array can exhaust the memory.
 *
 * @param actual The array under test.
 * @param expected The expected array.
 * @param what What is compared, for the message.
 */
export function assertArrayEqual(
  actual: ArrayLike<number | bigint>,
  expected: ArrayLike<number | bigint>,
  what = "array",
): void {
  const kind = (a: unknown) => Object.prototype.toString.call(a).slice(8, -1);
  if (kind(actual) !== kind(expected)) {
    throw new Error(`${what}: got a ${kind(actual)}, expected a ${kind(expected)}`);
  }
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  let first = -1;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (first >= 0) {
    const show = (x: number | bigint) => (Object.is(x, -0) ? "-0" : String(x));
    throw new Error(
      `${what}: ${count} of ${actual.length} elements differ; first at index ${first}: ` +
        `${show(actual[first])} vs expected ${show(expected[first])}`,
    );
  }
}

/**
 * Runs `fn` with a fresh temporary directory and removes the directory afterwards.
 *
 * @param fn The test body; receives the directory path.
 * @returns What `fn` returns.
 */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "halo_model_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Copies the files of a model directory (flat: config, weights, tokenizer files) into `to`, which
 * is created, so that a test can edit the copy.
 *
 * @param to The new directory.
 * @param options `from`: the model directory (default the bundled `models/arithmetic-tiny`);
 *   `files`: only these files (default all).
 * @returns `to`.
 */
export async function copyModelDir(
  to: string,
  options: { from?: string; files?: readonly string[] } = {},
): Promise<string> {
  const from = options.from ?? "models/arithmetic-tiny";
  await Deno.mkdir(to, { recursive: true });
  const files = options.files ?? (await Array.fromAsync(Deno.readDir(from))).map((e) => e.name);
  for (const name of files) await Deno.copyFile(`${from}/${name}`, `${to}/${name}`);
  return to;
}

/** Options of {@linkcode rawSafetensors}. */
export interface RawSafetensorsOptions {
  /** Value to store in the 8-byte length field instead of the header's real length. */
  headerLength?: bigint;
}

/**
 * Builds the bytes of a safetensors file from an arbitrary header (an object is JSON-encoded, a
 * string is used verbatim) and data section, without any validation.
 *
 * @param header The header.
 * @param data The data section.
 * @param options Overrides for corrupt files.
 * @returns The file's bytes.
 */
export function rawSafetensors(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  options: RawSafetensorsOptions = {},
): Uint8Array {
  const headerBytes = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(
    0,
    options.headerLength ?? BigInt(headerBytes.length),
    true,
  );
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

/** What {@linkcode expectError} checks. */
export interface ExpectErrorOptions {
  /** The class the error must be an instance of. */
  type: abstract new (...args: never[]) => Error;
  /** Substrings the message must contain (file names, tensor names, keys, values). */
  includes: string[];
}

/**
 * Asserts that `fn` throws (or returns a promise that rejects with) an error of the given class
 * whose message contains every given substring.
 *
 * @param fn The code that must fail.
 * @param options The expected class and message parts.
 * @returns The error, for further checks.
 */
export async function expectError(fn: () => unknown, options: ExpectErrorOptions): Promise<Error> {
  const { type, includes } = options;
  let caught: unknown = undefined;
  let threw = false;
  try {
    await fn();
  } catch (error) {
    caught = error;
    threw = true;
  }
  if (!threw) throw new Error(`Expected a ${type.name} mentioning ${JSON.stringify(includes)}`);
  if (!(caught instanceof type)) {
    throw new Error(`Expected a ${type.name}, got: ${caught}`, { cause: caught });
  }
  for (const part of includes) {
    if (!caught.message.includes(part)) {
      throw new Error(
        `Expected the message to contain ${JSON.stringify(part)}: ${caught.message}`,
        { cause: caught },
      );
    }
  }
  return caught;
}

/**
 * Runs `fn` with `console.log` captured (restored afterwards, also on a throw).
 *
 * @param fn What prints, e.g. a CLI's `main(["--help"])`.
 * @returns Its result and the printed lines, joined by newlines.
 *
 * @example The help text of a command
 * ```ts
 * import { logOf } from "./test_utils.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const { result, text } = await logOf(() => {
 *   console.log("usage:", "x");
 *   return Promise.resolve(0);
 * });
 * strictEqual(text, "usage: x");
 * strictEqual(result, 0);
 * ```
 */
export async function logOf<T>(fn: () => Promise<T>): Promise<{ result: T; text: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    const result = await fn();
    return { result, text: lines.join("\n") };
  } finally {
    console.log = log;
  }
}

/**
 * The `--flags` of a `--help` text's first line (the usage) that no option line below describes
 * (a line starting `  --flag` or `  -x, --flag`): empty when the help explains every flag.
 *
 * @param help The `--help` output.
 * @returns The undescribed flags, in usage order.
 */
export function undescribedFlags(help: string): string[] {
  const [usage, ...rest] = help.split("\n");
  const options = rest.join("\n");
  return [...new Set([...usage.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]))].filter((flag) =>
    !new RegExp(`^  (-\\w, )?${flag}\\b`, "m").test(options)
  );
}
