/**
 * Loading a run configuration: YAML file → deep merge over {@linkcode DEFAULT_CONFIG} →
 * `--a.b=c` overrides → validation (a strict `zod` schema plus cross-field checks) → a deeply
 * frozen {@linkcode TrainConfig}.
 *
 * Every error names the file and the key path, says what was expected and what came, and names
 * the override when the value came from one, e.g.
 * `Cannot load config "configs/x.yaml": key "trainer.lr" must be > 0: current value is -1`.
 *
 * @example Load a file with an override
 * ```ts
 * import { loadConfig } from "./load_config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const config = await loadConfig("configs/tiny_sft.yaml", { overrides: ["--trainer.lr=2e-3"] });
 * strictEqual(config.trainer.lr, 2e-3);
 * strictEqual(config.data.task, "arithmetic");
 * ```
 *
 * @module
 */

import { parse as parseYaml, parseDocument } from "yaml";
import { z } from "zod";
import { DEFAULT_CONFIG, type TrainConfig } from "./config.ts";
import { RL_SCHEMA, rlConfigProblems } from "../trainer/rl/config.ts";
import { ARITHMETIC_ADDED_TOKENS, ARITHMETIC_ALPHABET } from "../data/arithmetic_tokenizer.ts";

/**
 * Options of {@linkcode loadConfig}.
 *
 * @example Usage
 * ```ts
 * import type { LoadConfigOptions } from "./load_config.ts";
 *
 * const options: LoadConfigOptions = { overrides: ["--trainer.lr=2e-6", "--data.ops=+,-"] };
 * ```
 */
export interface LoadConfigOptions {
  /**
   * Overrides applied after the file, in order, each `--key.path=value` (the leading `--` is
   * optional). The value is read by the type of the default at that key: numbers and booleans
   * are parsed, strings are taken as they are, lists are `a,b,c` or a YAML flow list `[a, b]`,
   * and mappings (`adapters.rankPattern`) a YAML flow mapping `{q_proj: 16}`; a single entry of
   * a mapping is set with `--adapters.rankPattern.q_proj=16`.
   */
  overrides?: readonly string[];
}

/**
 * Options of {@linkcode validateConfig}.
 *
 * @example Usage
 * ```ts
 * import type { ValidateConfigOptions } from "./load_config.ts";
 *
 * const options: ValidateConfigOptions = { source: "out/run/step_000100/meta.json" };
 * ```
 */
export interface ValidateConfigOptions {
  /** What the object was read from, named in errors. Default `"<object>"`. */
  source?: string;
}

type Path = readonly (string | number)[];

/** Keys whose value is a free mapping (their entries are not fixed by the defaults). */
const MAPPING_KEYS: ReadonlySet<string> = new Set([
  "adapters.rankPattern",
  "adapters.alphaPattern",
]);

const ARITHMETIC_VOCAB = ARITHMETIC_ALPHABET.length + ARITHMETIC_ADDED_TOKENS.length;

const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const nonNegativeInt = z.int().min(0);
const positiveInt = z.int().min(1);
const positive = z.number().gt(0);
const nonNegative = z.number().min(0);
const unitOpen = z.number().min(0).lt(1);

const TARGETS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;

const SCHEMA: z.ZodType<TrainConfig> = z.strictObject({
  run: z.strictObject({
    name: z.string().regex(RUN_NAME, {
      error: 'must start with a letter or digit and hold only letters, digits, ".", "_" or "-"',
    }),
    outDir: z.string().min(1),
    seed: nonNegativeInt,
  }),
  model: z.strictObject({
    path: z.string().min(1),
    hidden: positiveInt,
    layers: positiveInt,
    heads: positiveInt,
    kvHeads: positiveInt,
    headDim: positiveInt,
    intermediate: positiveInt,
    vocab: positiveInt,
    maxPositions: positiveInt,
    ropeTheta: positive,
    rmsNormEps: positive,
    tieEmbeddings: z.boolean(),
    initStd: positive,
  }),
  adapters: z.strictObject({
    kind: z.enum(["none", "lora"]),
    targets: z.array(z.enum(TARGETS)).min(1),
    r: positiveInt,
    alpha: positive,
    rankPattern: z.record(z.string().min(1), positiveInt),
    alphaPattern: z.record(z.string().min(1), positive),
    dropout: unitOpen,
    rslora: z.boolean(),
  }),
  data: z.strictObject({
    task: z.enum(["arithmetic"]),
    seed: nonNegativeInt,
    digits: z.int().min(1).max(6),
    ops: z.array(z.enum(["+", "-", "*"])).min(1),
    maxTerms: z.int().min(2).max(4),
    mulDigits: z.int().min(1).max(3),
    trainSize: positiveInt,
    evalSize: positiveInt,
  }),
  trainer: z.strictObject({
    mode: z.enum(["sft", "rl"]),
    steps: positiveInt,
    batchSize: positiveInt,
    microBatches: positiveInt,
    lr: positive,
    warmupSteps: nonNegativeInt,
    schedule: z.enum(["constant", "cosine"]),
    minLrRatio: z.number().min(0).max(1),
    weightDecay: nonNegative,
    maxGradNorm: nonNegative,
    b1: unitOpen,
    b2: unitOpen,
    eps: positive,
  }),
  eval: z.strictObject({
    every: nonNegativeInt,
    samples: positiveInt,
    maxNewTokens: positiveInt,
  }),
  checkpoint: z.strictObject({
    every: nonNegativeInt,
    keep: nonNegativeInt,
  }),
  backend: z.enum(["webgpu", "cpu", "auto"]),
  rl: RL_SCHEMA,
});

/** One problem found while validating, before it is worded with the source. */
interface Problem {
  path: Path;
  /** What is wrong, after `key "<path>"`, e.g. `must be > 0: current value is -1`. */
  text: string;
  kind: "type" | "range";
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}

function formatPath(path: Path): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? segment : `.${segment}`;
  }
  return text === "" ? "<root>" : text;
}

function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const segment of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[segment];
  }
  return node;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length];
}

/** `expected one of "a", "b" (did you mean "c"?)` for an unknown key among `known`. */
function expectedKeys(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const hint = best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : "";
  return `expected one of ${known.map((k) => `"${k}"`).join(", ")}${hint}`;
}

const EXPECTED_WORDS: Readonly<Record<string, string>> = {
  number: "a number",
  int: "an integer",
  string: "a string",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  record: "a mapping",
};

function issueProblems(issue: z.core.$ZodIssue, root: unknown): Problem[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const value = valueAt(root, path);
  const current = `current value is ${show(value)}`;
  switch (issue.code) {
    case "invalid_type": {
      if (value === undefined) return [{ path, text: "is missing", kind: "type" }];
      const words = EXPECTED_WORDS[issue.expected] ?? issue.expected;
      if (issue.expected === "int" && typeof value === "number") {
        return [{ path, text: `must be an integer: ${current}`, kind: "range" }];
      }
      return [{ path, text: `must be ${words}: ${current}`, kind: "type" }];
    }
    case "too_small": {
      const min = issue.minimum;
      if (issue.origin === "array") {
        return [{ path, text: `must have at least ${min} item(s): ${current}`, kind: "range" }];
      }
      if (issue.origin === "string") {
        return [{ path, text: `must not be empty: ${current}`, kind: "range" }];
      }
      return [{
        path,
        text: `must be ${issue.inclusive ? ">=" : ">"} ${min}: ${current}`,
        kind: "range",
      }];
    }
    case "too_big": {
      const max = issue.maximum;
      if (issue.origin === "int" && Number(max) >= Number.MAX_SAFE_INTEGER) {
        return [{ path, text: `must be a safe integer: ${current}`, kind: "range" }];
      }
      return [{
        path,
        text: `must be ${issue.inclusive ? "<=" : "<"} ${max}: ${current}`,
        kind: "range",
      }];
    }
    case "invalid_value":
      return [{
        path,
        text: `must be ${issue.values.length === 1 ? "" : "one of "}${
          issue.values.map(show).join(", ")
        }: ${current}`,
        kind: "range",
      }];
    case "unrecognized_keys": {
      const defaults = valueAt(DEFAULT_CONFIG, path);
      const known = isPlainObject(defaults) ? Object.keys(defaults) : [];
      return issue.keys.map((key) => ({
        path: [...path, key],
        text: `is unknown: ${expectedKeys(key, known)}`,
        kind: "type" as const,
      }));
    }
    case "invalid_union":
      return [{ path, text: `${issue.message}: ${current}`, kind: "range" }];
    case "invalid_format":
      return [{ path, text: `${issue.message}: ${current}`, kind: "range" }];
    default:
      return [{ path, text: `is invalid (${issue.message}): ${current}`, kind: "type" }];
  }
}

function crossFieldProblems(config: TrainConfig): Problem[] {
  const problems: Problem[] = [];
  const range = (path: Path, text: string): void => {
    problems.push({ path, text, kind: "range" });
  };
  const { model, adapters, data, trainer } = config;
  if (model.path.startsWith("builtin:") && model.path !== "builtin:tiny") {
    range(
      ["model", "path"],
      `must be "builtin:tiny" or a model directory: current value is ${show(model.path)}`,
    );
  }
  if (model.heads % model.kvHeads !== 0) {
    range(
      ["model", "kvHeads"],
      `must divide "model.heads" (${model.heads}): current value is ${model.kvHeads}`,
    );
  }
  if (model.headDim % 2 !== 0) {
    range(["model", "headDim"], `must be even (for RoPE): current value is ${model.headDim}`);
  }
  if (
    model.path === "builtin:tiny" && data.task === "arithmetic" && model.vocab < ARITHMETIC_VOCAB
  ) {
    range(
      ["model", "vocab"],
      `must be >= ${ARITHMETIC_VOCAB} (the arithmetic tokenizer's vocabulary): current value is ${model.vocab}`,
    );
  }
  const lists: [Path, readonly string[]][] = [
    [["adapters", "targets"], adapters.targets],
    [["data", "ops"], data.ops],
  ];
  for (const [path, list] of lists) {
    const repeated = list.find((item, i) => list.indexOf(item) !== i);
    if (repeated !== undefined) {
      range(path, `must not repeat an item: ${show(repeated)} repeats in ${show(list)}`);
    }
  }
  if (trainer.batchSize % trainer.microBatches !== 0) {
    range(
      ["trainer", "microBatches"],
      `must divide "trainer.batchSize" (${trainer.batchSize}): current value is ${trainer.microBatches}`,
    );
  }
  if (trainer.mode === "rl") {
    for (const [key, text] of rlConfigProblems(config.rl)) {
      const path = key.split(/[.[\]]/).filter((k) => k !== "");
      range(path.map((k) => (/^\d+$/.test(k) ? Number(k) : k)), text);
    }
  }
  if (config.eval.samples > data.evalSize) {
    range(
      ["eval", "samples"],
      `must be <= "data.evalSize" (${data.evalSize}): current value is ${config.eval.samples}`,
    );
  }
  return problems;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Which override set each key path (formatted), for naming it in errors. */
type Origins = Map<string, string>;

function originOf(path: Path, origins: Origins): string {
  for (let n = path.length; n > 0; n--) {
    const origin = origins.get(formatPath(path.slice(0, n)));
    if (origin !== undefined) return ` (set by ${origin})`;
  }
  return "";
}

function fail(source: string, problems: Problem[], origins: Origins): never {
  const lines = problems.map((p) =>
    `Cannot load config "${source}": key "${formatPath(p.path)}"${
      originOf(p.path, origins)
    } ${p.text}`
  );
  const message = lines.join("\n");
  throw problems[0].kind === "type" ? new TypeError(message) : new RangeError(message);
}

function validate(value: unknown, source: string, origins: Origins): TrainConfig {
  const result = SCHEMA.safeParse(value);
  if (!result.success) {
    fail(source, result.error.issues.flatMap((issue) => issueProblems(issue, value)), origins);
  }
  const problems = crossFieldProblems(result.data);
  if (problems.length > 0) fail(source, problems, origins);
  return deepFreeze(result.data);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Deep-merges the file's values over the defaults; unknown keys are kept for the schema to flag. */
function merge(base: unknown, over: unknown, path: readonly string[]): unknown {
  if (over === undefined) return clone(base);
  if (MAPPING_KEYS.has(path.join("."))) return over === null ? {} : clone(over);
  if (isPlainObject(base) && over === null) return clone(base);
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = clone(base);
    for (const [key, value] of Object.entries(over)) {
      out[key] = Object.hasOwn(base, key) ? merge(base[key], value, [...path, key]) : clone(value);
    }
    return out;
  }
  return clone(over);
}

function parseNumber(raw: string): number | string {
  const trimmed = raw.trim();
  if (trimmed === "") return raw;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : raw;
}

function parseBoolean(raw: string): boolean | string {
  const trimmed = raw.trim();
  return trimmed === "true" ? true : trimmed === "false" ? false : raw;
}

function parseYamlValue(raw: string): unknown {
  try {
    return parseYaml(raw);
  } catch {
    return raw;
  }
}

/** Reads an override's text by the type of the default it replaces. */
function typedValue(raw: string, template: unknown): unknown {
  if (typeof template === "number") return parseNumber(raw);
  if (typeof template === "boolean") return parseBoolean(raw);
  if (typeof template === "string") return raw;
  if (Array.isArray(template)) {
    const trimmed = raw.trim();
    const items: unknown[] = trimmed.startsWith("[")
      ? (() => {
        const parsed = parseYamlValue(trimmed);
        return Array.isArray(parsed) ? parsed : [parsed];
      })()
      : trimmed === ""
      ? []
      : trimmed.split(",").map((item) => item.trim());
    const element = template[0];
    return items.map((item) =>
      typeof item === "string" && element !== undefined ? typedValue(item, element) : item
    );
  }
  return parseYamlValue(raw);
}

function applyOverride(
  config: Record<string, unknown>,
  override: string,
  source: string,
  origins: Origins,
): void {
  const text = override.startsWith("--") ? override.slice(2) : override;
  const equals = text.indexOf("=");
  const keyText = equals === -1 ? "" : text.slice(0, equals);
  const keys = keyText.split(".");
  if (equals === -1 || keys.some((k) => k === "")) {
    throw new SyntaxError(
      `Cannot load config "${source}": override ${show(override)} must look like ` +
        `"--key.path=value", e.g. "--trainer.lr=2e-6"`,
    );
  }
  const raw = text.slice(equals + 1);
  const label = `"--${keyText}=${raw}"`;
  let template: unknown = DEFAULT_CONFIG;
  let inMapping = false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const parentPath = keys.slice(0, i).join(".");
    if (MAPPING_KEYS.has(parentPath)) {
      if (i !== keys.length - 1) {
        throw new TypeError(
          `Cannot load config "${source}": override ${label}: key "${parentPath}" maps names ` +
            `to numbers: set one entry as --${parentPath}.<name>=<number>`,
        );
      }
      inMapping = true;
      break;
    }
    if (!isPlainObject(template) || !Object.hasOwn(template, key)) {
      const known = isPlainObject(template) ? Object.keys(template) : [];
      const where = keys.slice(0, i + 1).join(".");
      throw new TypeError(
        `Cannot load config "${source}": override ${label} sets unknown key "${where}": ` +
          (known.length > 0
            ? expectedKeys(key, known)
            : `"${parentPath}" is a value, not a section`),
      );
    }
    template = template[key];
  }
  const fullKey = keys.join(".");
  if (!inMapping && isPlainObject(template) && !MAPPING_KEYS.has(fullKey)) {
    throw new TypeError(
      `Cannot load config "${source}": override ${label}: key "${fullKey}" is a section: ` +
        `set one of its keys, e.g. --${fullKey}.${Object.keys(template)[0]}=...`,
    );
  }
  const value = inMapping ? parseYamlValue(raw) : typedValue(raw, template);
  let node: Record<string, unknown> = config;
  for (const key of keys.slice(0, -1)) {
    let child = node[key];
    if (child === undefined || child === null) child = node[key] = {};
    // A section the file set to a non-mapping stays as it is, so the schema reports the file.
    if (!isPlainObject(child)) return;
    node = child;
  }
  node[keys[keys.length - 1]] = value;
  origins.set(fullKey, label);
}

/**
 * Validates a whole configuration object (e.g. the `config` of a checkpoint's `meta.json`)
 * without merging defaults: every key must be present and known.
 *
 * @param value The object.
 * @param options `source`, named in errors.
 * @returns The configuration, deeply frozen (a copy; `value` is not modified).
 * @throws {TypeError} When a key is unknown or missing, or a value has the wrong type.
 * @throws {RangeError} When a value is out of range or two values disagree.
 *
 * @example Check a configuration read back from a checkpoint
 * ```ts
 * import { validateConfig } from "./load_config.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { deepStrictEqual, throws } from "node:assert/strict";
 *
 * const copy = JSON.parse(JSON.stringify(DEFAULT_CONFIG));
 * deepStrictEqual(validateConfig(copy, { source: "meta.json" }), DEFAULT_CONFIG);
 * copy.trainer.lr = -1;
 * throws(() => validateConfig(copy, { source: "meta.json" }), {
 *   name: "RangeError",
 *   message: 'Cannot load config "meta.json": key "trainer.lr" must be > 0: current value is -1',
 * });
 * ```
 */
export function validateConfig(value: unknown, options: ValidateConfigOptions = {}): TrainConfig {
  return validate(value, options.source ?? "<object>", new Map());
}

/**
 * Loads a run configuration: reads the YAML file (when `path` is given), deep-merges it over
 * {@linkcode DEFAULT_CONFIG}, applies the overrides in order, and validates the result. Needs
 * `--allow-read` for the file.
 *
 * An empty file, or a section written with no keys (`trainer:`), keeps the defaults. Lists and
 * the mappings `adapters.rankPattern`/`adapters.alphaPattern` are replaced, not merged.
 *
 * @param path The YAML file, or `undefined` for the defaults plus overrides (errors then name
 *   `"<defaults>"`).
 * @param options The overrides.
 * @returns The configuration, deeply frozen.
 * @throws {Deno.errors.NotFound} When the file does not exist.
 * @throws {SyntaxError} When the file is not valid YAML (the message has the line and column), or
 *   an override is not `--key.path=value`.
 * @throws {TypeError} When a key is unknown, or a value has the wrong type.
 * @throws {RangeError} When a value is out of range, or two values disagree (e.g.
 *   `trainer.microBatches` does not divide `trainer.batchSize`).
 *
 * @example An unknown key is an error that suggests the right one
 * ```ts
 * import { loadConfig } from "./load_config.ts";
 * import { rejects, strictEqual } from "node:assert/strict";
 *
 * const config = await loadConfig(undefined, { overrides: ["--data.ops=+,*"] });
 * strictEqual(config.data.ops.join(" "), "+ *");
 * await rejects(loadConfig(undefined, { overrides: ["--trainer.lrr=1"] }), {
 *   name: "TypeError",
 *   message: /unknown key "trainer.lrr": expected one of .* \(did you mean "lr"\?\)/,
 * });
 * ```
 */
export async function loadConfig(
  path: string | undefined,
  options: LoadConfigOptions = {},
): Promise<TrainConfig> {
  const source = path ?? "<defaults>";
  let fileValue: unknown = null;
  if (path !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Deno.errors.NotFound(`Cannot load config "${source}": file not found`, {
          cause: error,
        });
      }
      throw new Error(
        `Cannot load config "${source}": ${error instanceof Error ? error.message : error}`,
        { cause: error },
      );
    }
    const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (document.errors.length > 0) {
      throw new SyntaxError(
        `Cannot load config "${source}": invalid YAML: ${document.errors[0].message}`,
        { cause: document.errors[0] },
      );
    }
    fileValue = document.toJS();
    if (fileValue !== null && !isPlainObject(fileValue)) {
      throw new TypeError(
        `Cannot load config "${source}": the file must hold a mapping of sections ` +
          `(${Object.keys(DEFAULT_CONFIG).map((k) => `"${k}"`).join(", ")}): current value is ${
            show(fileValue)
          }`,
      );
    }
  }
  const merged = merge(DEFAULT_CONFIG, fileValue, []) as Record<string, unknown>;
  const origins: Origins = new Map();
  for (const override of options.overrides ?? []) {
    applyOverride(merged, override, source, origins);
  }
  return validate(merged, source, origins);
}
