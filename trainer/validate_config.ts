/**
 * Validating a run configuration: a strict `zod` schema of {@linkcode TrainConfig} plus the checks
 * that span fields. Every error names the source and the key path, says what was expected and what
 * came, and names the override when the value came from one, e.g.
 * `Cannot load config "configs/x.yaml": key "trainer.lr" must be > 0: current value is -1`.
 * Reading YAML and applying `--a.b=c` overrides is `cli/load_config.ts`'s job.
 *
 * @example Check a configuration read back from a checkpoint
 * ```ts
 * import { validateConfig } from "./validate_config.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const copy = JSON.parse(JSON.stringify(DEFAULT_CONFIG));
 * deepStrictEqual(validateConfig(copy, { source: "meta.json" }), DEFAULT_CONFIG);
 * ```
 *
 * @module
 */

import { z } from "zod";
import { RL_SCHEMA, rlConfigProblems } from "./rl/config.ts";
import { DEFAULT_CONFIG, type TrainConfig, type TrainerConfig } from "./config.ts";
import { ARITHMETIC_ADDED_TOKENS, ARITHMETIC_ALPHABET } from "../data/arithmetic_tokenizer.ts";
import { expectedKeys } from "../internal/expected_keys.ts";
import { show } from "../internal/show.ts";
import { isPlainObject } from "../internal/is_plain_object.ts";
import { deepFreeze } from "../internal/deep_freeze.ts";
import { SECRET_NAME_KEYS } from "../internal/config_values.ts";

/**
 * Options of {@linkcode validateConfig}.
 *
 * @example Usage
 * ```ts
 * import type { ValidateConfigOptions } from "./validate_config.ts";
 *
 * const options: ValidateConfigOptions = { source: "out/run/step_000100/meta.json" };
 * ```
 */
export interface ValidateConfigOptions {
  /** What the object was read from, named in errors. Default `"<object>"`. */
  source?: string;
  /**
   * Which override set each key path (dotted, e.g. `"trainer.lr"`), as its text (e.g.
   * `"--trainer.lr=-1"`), named in errors about that key or a key below it. Default: none.
   */
  setBy?: ReadonlyMap<string, string>;
}

type Path = readonly (string | number)[];

const ARITHMETIC_VOCAB = ARITHMETIC_ALPHABET.length + ARITHMETIC_ADDED_TOKENS.length;

/**
 * What `run.name` may be: a letter or digit, then letters, digits, ".", "_" or "-".
 *
 * @example A run name, and a folder name that cannot be one
 * ```ts
 * import { RUN_NAME } from "./validate_config.ts";
 * console.log(RUN_NAME.test("rl_arith-2"), RUN_NAME.test("run copy")); // true false
 * ```
 */
export const RUN_NAME: RegExp = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const nonNegativeInt = z.int().min(0);
const positiveInt = z.int().min(1);
const positive = z.number().gt(0);
/** A HILO layer schedule: "2-4-6-8", "uniform:4", a number, or one value per layer. */
const SCHEDULE = z.union([z.string().min(1), positiveInt, z.array(positiveInt).min(1)]);
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
    weightDtype: z.enum(["f32", "f16"]),
    kvDtype: z.enum(["f32", "f16"]),
    submitEveryLayers: z.union([nonNegativeInt, z.null()], {
      error: "must be an integer ≥ 0, or null for the adapter's default",
    }),
  }),
  adapters: z.strictObject({
    kind: z.enum(["none", "lora", "hilo"]),
    targets: z.array(z.enum(TARGETS)).min(1),
    r: positiveInt,
    alpha: positive,
    rankPattern: z.record(z.string().min(1), positiveInt),
    alphaPattern: z.record(z.string().min(1), positive),
    dropout: unitOpen,
    rslora: z.boolean(),
    hilo: z.strictObject({
      experts: SCHEDULE,
      rank: SCHEDULE,
      alpha: positive,
      alphaPerRank: z.boolean(),
      topK: z.union([SCHEDULE, z.null()]),
      activation: z.enum(["top-k", "top-p"]),
      topP: z.number().gt(0).max(1),
      balanceCoef: z.number().min(0),
    }),
  }),
  data: z.strictObject({
    task: z.enum(["arithmetic", "suite"]),
    seed: nonNegativeInt,
    digits: z.int().min(1).max(6),
    ops: z.array(z.enum(["+", "-", "*"])).min(1),
    maxTerms: z.int().min(2).max(4),
    mulDigits: z.int().min(1).max(3),
    // arithmeticDataset's bound on "size", named here by its key.
    trainSize: positiveInt.max(10_000_000),
    evalSize: positiveInt.max(10_000_000),
    suite: z.strictObject({
      tasks: z.array(z.enum(["arithmetic", "sort", "count", "base"])).min(1),
      level: z.int().min(1).max(4),
    }),
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
    optimizer: z.enum(["auto", "host", "device"]),
    b1: unitOpen,
    b2: unitOpen,
    eps: positive,
    keepActivations: z.boolean(),
  }),
  eval: z.strictObject({
    every: nonNegativeInt,
    final: z.boolean(),
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

/**
 * What is wrong with `trainer.warmupSteps` under the cosine schedule, worded after
 * `key "trainer.warmupSteps"`: the warm-up must end before the run's last step
 * (`trainer.steps`, which counts RL steps too), or there is no decay to schedule. `undefined`
 * when it does, or when the schedule is constant (any warm-up works). Both `validateConfig` and
 * the optimizer's set-up word their error with it.
 *
 * @param trainer The `trainer` section.
 * @returns The problem's text, or `undefined`.
 *
 * @example A warm-up as long as the run
 * ```ts
 * import { cosineWarmupProblem } from "./validate_config.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const trainer = { ...DEFAULT_CONFIG.trainer, steps: 4, warmupSteps: 4 };
 * strictEqual(
 *   cosineWarmupProblem(trainer),
 *   'must be < "trainer.steps" (4) for the cosine schedule: current value is 4',
 * );
 * strictEqual(cosineWarmupProblem({ ...trainer, schedule: "constant" }), undefined);
 * ```
 */
export function cosineWarmupProblem(trainer: TrainerConfig): string | undefined {
  if (trainer.schedule !== "cosine" || trainer.warmupSteps < trainer.steps) return undefined;
  return `must be < "trainer.steps" (${trainer.steps}) for the cosine schedule: current value ` +
    `is ${trainer.warmupSteps}`;
}

/** One problem found while validating, before it is worded with the source. */
interface Problem {
  path: Path;
  /** What is wrong, after `key "<path>"`, e.g. `must be > 0: current value is -1`. */
  text: string;
  kind: "type" | "range";
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

/** A zod schema's definition, as far as {@linkcode schemaAt} reads it. */
interface SchemaDef {
  type: string;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
  options?: readonly z.core.$ZodType[];
  discriminator?: string;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  out?: z.core.$ZodType;
  values?: readonly unknown[];
}

function defOf(schema: z.core.$ZodType): SchemaDef {
  return schema._zod.def as unknown as SchemaDef;
}

/** `schema` without its `.default()`, `.optional()`, `.nullable()` or `z.preprocess` wrappers. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    const def = defOf(schema);
    if (def.innerType !== undefined) schema = def.innerType;
    else if (def.type === "pipe" && def.in !== undefined && def.out !== undefined) {
      schema = defOf(def.in).type === "transform" ? def.out : def.in;
    } else return schema;
  }
}

/**
 * Which option of a union `value` is meant as: for a discriminated union (the `rl.losses`
 * terms), the one whose discriminator literal is `value`'s; otherwise the only mapping option.
 */
function unionOption(def: SchemaDef, value: unknown): z.core.$ZodType | undefined {
  const options = (def.options ?? []).map(unwrap);
  const tag = def.discriminator;
  if (tag !== undefined) {
    if (!isPlainObject(value)) return undefined;
    return options.find((option) => {
      const field = defOf(option).shape?.[tag];
      return field !== undefined && (defOf(unwrap(field)).values ?? []).includes(value[tag]);
    });
  }
  const objects = options.filter((option) => defOf(option).type === "object");
  return objects.length === 1 ? objects[0] : undefined;
}

/**
 * The schema of the value at `path` in `root`, choosing union options by the value itself (at
 * `path` itself only when `resolveLast`).
 */
function schemaAt(path: Path, root: unknown, resolveLast = true): z.core.$ZodType | undefined {
  let schema: z.core.$ZodType | undefined = SCHEMA;
  for (let i = 0;; i++) {
    schema = unwrap(schema);
    const def = defOf(schema);
    if (def.type === "union" && (resolveLast || i < path.length)) {
      schema = unionOption(def, valueAt(root, path.slice(0, i)));
      if (schema === undefined) return undefined;
      schema = unwrap(schema);
    }
    if (i === path.length) return schema;
    const segment = path[i];
    const node = defOf(schema);
    if (node.type === "object" && typeof segment === "string") schema = node.shape?.[segment];
    else if (node.type === "array" && typeof segment === "number") schema = node.element;
    else return undefined;
    if (schema === undefined) return undefined;
  }
}

/** A zod check's definition, as far as {@linkcode bounds} reads it. */
interface CheckDef {
  check: string;
  value?: number;
  inclusive?: boolean;
  minimum?: number;
}

/** The bounds a number or list schema's checks put on it, e.g. `[">= 0", "< 1"]`. */
function bounds(schema: z.core.$ZodType): { numbers: string[]; minLength: number } {
  const checks = (schema._zod.def as { checks?: readonly z.core.$ZodCheck[] }).checks ?? [];
  const numbers: string[] = [];
  let minLength = 0;
  for (const check of checks) {
    const def = check._zod.def as unknown as CheckDef;
    if (def.check === "greater_than") numbers.push(`${def.inclusive ? ">=" : ">"} ${def.value}`);
    if (def.check === "less_than") numbers.push(`${def.inclusive ? "<=" : "<"} ${def.value}`);
    if (def.check === "min_length") minLength = def.minimum ?? 0;
  }
  return { numbers, minLength };
}

/**
 * What a schema accepts, in words (e.g. `"final" or an integer >= 0` for a union), or
 * `undefined` for a kind of schema it cannot word.
 */
function describe(schema: z.core.$ZodType): string | undefined {
  schema = unwrap(schema);
  const def = defOf(schema);
  switch (def.type) {
    case "literal":
      return (def.values ?? []).map((v) => show(v)).join(" or ");
    case "null":
      return "null";
    case "number": {
      const int = (def as { format?: string }).format?.includes("int") === true;
      return [int ? "an integer" : "a number", ...bounds(schema).numbers].join(" ");
    }
    case "string":
      return bounds(schema).minLength > 0 ? "a non-empty string" : "a string";
    case "array": {
      const element = def.element === undefined ? undefined : describe(def.element);
      if (element === undefined) return undefined;
      const plural = element.replace(/^an? (\S+)/, "$1s");
      return `a ${bounds(schema).minLength > 0 ? "non-empty " : ""}list of ${plural}`;
    }
    case "union": {
      const words: string[] = [];
      for (const option of def.options ?? []) {
        const inner = unwrap(option);
        const nested = defOf(inner).type === "union" ? defOf(inner).options ?? [] : [inner];
        for (const alternative of nested) {
          const word = describe(alternative);
          if (word === undefined) return undefined;
          words.push(word);
        }
      }
      return words.length <= 2
        ? words.join(" or ")
        : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
    }
    default:
      return undefined;
  }
}

/**
 * The keys allowed in the mapping at `path`: its own schema's (for a loss term, that of the term
 * its `name` picks), else the defaults'.
 */
function knownKeys(path: Path, root: unknown): string[] {
  const schema = schemaAt(path, root);
  const shape = schema === undefined ? undefined : defOf(schema).shape;
  if (shape !== undefined) return Object.keys(shape);
  const defaults = valueAt(DEFAULT_CONFIG, path);
  return isPlainObject(defaults) ? Object.keys(defaults) : [];
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
  const current = SECRET_NAME_KEYS.has(formatPath(path)) && typeof value === "string"
    ? `the current value (${value.length} characters) is not shown: it looks like the key itself`
    : `current value is ${show(value)}`;
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
          issue.values.map((v) => show(v)).join(", ")
        }: ${current}`,
        kind: "range",
      }];
    case "unrecognized_keys": {
      const known = knownKeys(path, root);
      return issue.keys.map((key) => ({
        path: [...path, key],
        text: `is unknown: ${expectedKeys(key, known)}`,
        kind: "type" as const,
      }));
    }
    case "invalid_union": {
      // zod's own message is a bare "Invalid input": say what each option accepts instead.
      const schema = issue.message === "Invalid input" ? schemaAt(path, root, false) : undefined;
      const accepted = schema === undefined ? undefined : describe(schema);
      const text = accepted === undefined ? issue.message : `must be ${accepted}`;
      return [{ path, text: `${text}: ${current}`, kind: "range" }];
    }
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
  if (trainer.optimizer === "device" && config.backend === "cpu") {
    range(
      ["trainer", "optimizer"],
      `must be "auto" or "host" with backend "cpu" (a device optimizer needs WebGPU): current ` +
        `value is "device"`,
    );
  }
  if (model.weightDtype === "f16" && adapters.kind === "none") {
    range(
      ["model", "weightDtype"],
      `must be "f32" when the base weights train (adapters.kind "none"): f16 weights are ` +
        `frozen: current value is "f16"`,
    );
  }
  if (
    model.path === "builtin:tiny" && model.vocab < ARITHMETIC_VOCAB
  ) {
    range(
      ["model", "vocab"],
      `must be >= ${ARITHMETIC_VOCAB} (the arithmetic tokenizer's vocabulary): current value is ${model.vocab}`,
    );
  }
  const lists: [Path, readonly string[]][] = [
    [["adapters", "targets"], adapters.targets],
    [["data", "ops"], data.ops],
    [["data", "suite", "tasks"], data.suite.tasks],
  ];
  for (const [path, list] of lists) {
    const repeated = list.find((item, i) => list.indexOf(item) !== i);
    if (repeated !== undefined) {
      range(path, `must not repeat an item: ${show(repeated)} repeats in ${show(list)}`);
    }
  }
  const rl = trainer.mode === "rl";
  // RL batches and evaluates by its own "rl.*" keys: SFT's cross-checks would refuse keys it
  // never reads (rlRunKeyWarnings warns of them instead).
  if (!rl && trainer.batchSize % trainer.microBatches !== 0) {
    range(
      ["trainer", "microBatches"],
      `must divide "trainer.batchSize" (${trainer.batchSize}): current value is ${trainer.microBatches}`,
    );
  }
  const warmup = cosineWarmupProblem(trainer);
  if (warmup !== undefined) range(["trainer", "warmupSteps"], warmup);
  if (rl) {
    const problems = rlConfigProblems(config.rl, {
      adaptersKind: adapters.kind,
      dataTask: data.task,
    });
    for (const [key, text] of problems) {
      const path = key.split(/[.[\]]/).filter((k) => k !== "");
      range(path.map((k) => (/^\d+$/.test(k) ? Number(k) : k)), text);
    }
  }
  if (!rl && config.eval.samples > data.evalSize) {
    range(
      ["eval", "samples"],
      `must be <= "data.evalSize" (${data.evalSize}): current value is ${config.eval.samples}`,
    );
  }
  return problems;
}

/** Which override set each key path (formatted), for naming it in errors. */
type Origins = ReadonlyMap<string, string>;

function originOf(path: Path, origins: Origins): string {
  for (let n = path.length; n > 0; n--) {
    const origin = origins.get(formatPath(path.slice(0, n)));
    if (origin === undefined) continue;
    // An override "--key=value" of a secret's key: not its value (see SECRET_NAME_KEYS).
    const hide = SECRET_NAME_KEYS.has(formatPath(path)) && origin.includes("=");
    return ` (set by ${hide ? `${origin.slice(0, origin.indexOf("=") + 1)}…"` : origin})`;
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

/**
 * Validates a whole configuration object (e.g. the `config` of a checkpoint's `meta.json`)
 * without merging defaults: every key must be present and known.
 *
 * @param value The object.
 * @param options `source` and `setBy`, named in errors.
 * @returns The configuration, deeply frozen (a copy; `value` is not modified).
 * @throws {TypeError} When a key is unknown or missing, or a value has the wrong type.
 * @throws {RangeError} When a value is out of range or two values disagree.
 *
 * @example Check a configuration read back from a checkpoint
 * ```ts
 * import { validateConfig } from "./validate_config.ts";
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
  return validate(value, options.source ?? "<object>", options.setBy ?? new Map());
}
