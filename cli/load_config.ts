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
import { DEFAULT_CONFIG, type TrainConfig } from "../trainer/config.ts";
import { validateConfig } from "../trainer/validate_config.ts";
import { expectedKeys } from "../internal/expected_keys.ts";
import { show } from "../internal/show.ts";
import { isPlainObject } from "../internal/is_plain_object.ts";
import { RL_LOSS_TERM_DEFAULTS } from "../trainer/rl/config.ts";

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
   * a mapping is set with `--adapters.rankPattern.q_proj=16`. One key of one `rl.losses` term is
   * set by the term's name or its index in the list, `--rl.losses.hidden_align.weight=0.5` or
   * `--rl.losses.1.weight=0.5` (read by the type of that term's default, a whole number as a
   * number: `--rl.losses.hidden_align.layer=0`), but not its `name` (its kind); the whole list
   * with `--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.5}]`.
   */
  overrides?: readonly string[];
}

/** Keys whose value is a free mapping (their entries are not fixed by the defaults). */
const MAPPING_KEYS: ReadonlySet<string> = new Set([
  "adapters.rankPattern",
  "adapters.alphaPattern",
]);

/**
 * Lists of terms told apart by their `name`, each with its terms' defaults by name: one key of
 * one term is set with `--<list>.<name or index>.<key>=value`.
 */
const TERM_LISTS: ReadonlyMap<string, Readonly<Record<string, object>>> = new Map([
  ["rl.losses", RL_LOSS_TERM_DEFAULTS],
]);

/** Which override set each key path (formatted), for naming it in errors. */
type Origins = Map<string, string>;

/**
 * Records that `label` set the key `path` (formatted as validateConfig names keys, e.g.
 * `rl.losses[1].weight`); an earlier override of a key below it no longer holds.
 */
function setOrigin(origins: Origins, path: string, label: string): void {
  for (const key of [...origins.keys()]) {
    if (key.startsWith(`${path}.`) || key.startsWith(`${path}[`)) origins.delete(key);
  }
  origins.set(path, label);
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
  // Decimal only: Number() would also take "0x10", "0b1", "0o7" (and "Infinity").
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) return raw;
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

/**
 * Reads an override's text by the type of the default it replaces; a YAML flow list of numbers
 * (`[1, 3]`) stays a list whatever that type (per-layer HILO schedules default to a number or a
 * text form), while other text in brackets for a text key stays text (`--run.outDir=[runs]`).
 */
function typedValue(raw: string, template: unknown): unknown {
  if (!Array.isArray(template) && raw.trim().startsWith("[")) {
    const list = parseYamlValue(raw.trim());
    const numbers = Array.isArray(list) && list.every((x) => typeof x === "number");
    if (numbers || typeof template !== "string") return list;
  }
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
    const termDefaults = TERM_LISTS.get(parentPath);
    if (termDefaults !== undefined) {
      applyTermOverride(config, keys, i, raw, { source, label, termDefaults, origins });
      return;
    }
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
  setOrigin(origins, fullKey, label);
}

/** What {@linkcode applyTermOverride} needs besides the config and the override. */
interface TermOverride {
  source: string;
  label: string;
  termDefaults: Readonly<Record<string, object>>;
  origins: Origins;
}

/**
 * Sets one key of one term of the list at `keys.slice(0, at)` (`rl.losses`): the term is named
 * by `keys[at]`, its `name` or its index in the list as it stands (the file's, or an earlier
 * override's), and the key is `keys[at + 1]`, read by the type of the term's default. The
 * term's `name` is refused (its other keys are those of its kind): the error says to set the
 * whole list, as it does when the list names no term to address.
 */
function applyTermOverride(
  config: Record<string, unknown>,
  keys: readonly string[],
  at: number,
  raw: string,
  { source, label, termDefaults, origins }: TermOverride,
): void {
  const list = keys.slice(0, at).join(".");
  const selector = keys[at];
  const cannot = `Cannot load config "${source}": override ${label}`;
  let node: unknown = config;
  for (const key of keys.slice(0, at)) node = isPlainObject(node) ? node[key] : undefined;
  if (!Array.isArray(node)) {
    throw new TypeError(
      `${cannot}: key "${list}" must be a list of terms to set one of their keys: current ` +
        `value is ${show(node)}`,
    );
  }
  const terms: unknown[] = node;
  const names = terms.map((term) => (isPlainObject(term) ? term.name : undefined));
  const holds = terms.length === 0
    ? "it is empty"
    : `it holds ${names.map((name, i) => `[${i}] ${show(name)}`).join(", ")}`;
  // The whole list with the term added, setting the override's key when it names one.
  const example = (name: string) => {
    const set = keys.length === at + 2 ? `, ${keys[at + 1]}: ${raw}` : "";
    const others = names.filter((n) => typeof n === "string" && n !== name);
    return `--${list}=[${
      [...others.map((n) => `{name: ${n}}`), `{name: ${name}${set}}`].join(", ")
    }]`;
  };
  let index: number;
  if (/^\d+$/.test(selector)) {
    index = Number(selector);
    if (index >= terms.length) {
      // With no named term, there is no term to address: the list itself is what to set.
      const named = names.find((n) => typeof n === "string");
      throw new RangeError(
        `${cannot}: "${list}" has no term [${index}] (${holds}): ` +
          (named === undefined
            ? `set the whole list, e.g. "${example(Object.keys(termDefaults)[0])}" (a term's ` +
              `keys left out take their defaults)`
            : `name a term by its index or its name, e.g. --${list}.${named}.weight=...`),
      );
    }
  } else {
    const matches = names.flatMap((name, i) => (name === selector ? [i] : []));
    if (matches.length === 0) {
      if (Object.hasOwn(termDefaults, selector)) {
        throw new TypeError(
          `${cannot}: "${list}" has no "${selector}" term (${holds}): add it to ${list} in ` +
            `the YAML, or set the whole list, e.g. "${example(selector)}" (a term's keys left ` +
            `out take their defaults)`,
        );
      }
      throw new TypeError(
        `${cannot} names unknown term "${selector}" of "${list}" (${holds}): ` +
          `${expectedKeys(selector, Object.keys(termDefaults))}, or a term's index`,
      );
    }
    if (matches.length > 1) {
      throw new RangeError(
        `${cannot}: "${list}" holds ${matches.length} "${selector}" terms ([${
          matches.join("], [")
        }]), so the name is ambiguous: name the term by its index, e.g. ` +
          `--${[list, matches[0], ...keys.slice(at + 1)].join(".")}=${raw}`,
      );
    }
    index = matches[0];
  }
  const term = terms[index];
  const defaults = isPlainObject(term) && typeof term.name === "string"
    ? (termDefaults[term.name] as Record<string, unknown> | undefined)
    : undefined;
  if (!isPlainObject(term) || defaults === undefined) {
    throw new TypeError(
      `${cannot}: term "${list}[${index}]" must be a mapping whose name is one of ` +
        `${Object.keys(termDefaults).map((n) => `"${n}"`).join(", ")}: current value is ` +
        `${show(term)}`,
    );
  }
  const termKeys = Object.keys(defaults);
  const at1 = at + 1;
  if (keys.length === at1) {
    throw new TypeError(
      `${cannot}: term "${list}[${index}]" (${show(term.name)}) is a section: set one of its ` +
        `keys, e.g. --${list}.${selector}.${termKeys.find((k) => k !== "name")}=...`,
    );
  }
  const key = keys[at1];
  const path = `${list}[${index}].${key}`;
  // A term's other keys are those of its kind, so its kind changes with the whole term only.
  if (key === "name") {
    const renamed = names.map((n, i) => (i === index ? raw.trim() : n));
    throw new TypeError(
      `${cannot} sets "${path}" (${show(term.name)}): a term's name is not set by an override, ` +
        `as its other keys are those of its kind: set the whole list, e.g. "--${list}=[${
          renamed.filter((n) => typeof n === "string").map((n) => `{name: ${n}}`).join(", ")
        }]" (a term's keys left out take their defaults)`,
    );
  }
  const settable = termKeys.filter((k) => k !== "name");
  if (!settable.includes(key)) {
    throw new TypeError(
      `${cannot} sets unknown key "${path}" of the ${show(term.name)} term: ` +
        expectedKeys(key, settable),
    );
  }
  if (keys.length > at1 + 1) {
    throw new TypeError(
      `${cannot} sets unknown key "${path}.${keys.slice(at1 + 1).join(".")}": "${path}" is a ` +
        `value, not a section`,
    );
  }
  // A whole number for a text key is a number: hidden_align's layer is "final" or an index.
  const value = typedValue(raw, defaults[key]);
  term[key] = typeof defaults[key] === "string" && typeof value === "string" &&
      /^\d+$/.test(value.trim())
    ? Number(value)
    : value;
  setOrigin(origins, path, label);
}

/**
 * The error for a `--config` file that sets no key: the run would be the defaults, which a file
 * given explicitly is unlikely to mean.
 */
function setsNoKeys(source: string, sections: string): TypeError {
  return new TypeError(
    `Cannot load config "${source}": the file sets no keys (expected a mapping of sections ` +
      `${sections}); leave out --config to run the defaults`,
  );
}

/**
 * Loads a run configuration: reads the YAML file (when `path` is given), deep-merges it over
 * {@linkcode DEFAULT_CONFIG}, applies the overrides in order, and validates the result. Needs
 * `--allow-read` for the file.
 *
 * A file that sets no key (empty, only comments, `{}`, or only sections with no keys) is refused;
 * a section written with no keys (`trainer:`) beside others keeps its defaults. Lists and
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
    const sections = Object.keys(DEFAULT_CONFIG).map((k) => `"${k}"`).join(", ");
    if (!isPlainObject(fileValue)) {
      if (fileValue === null || fileValue === undefined) throw setsNoKeys(source, sections);
      throw new TypeError(
        `Cannot load config "${source}": the file must hold a mapping of sections ` +
          `(${sections}): current value is ${show(fileValue)}`,
      );
    }
    // `{}`, or only sections with no keys (`trainer:`, `rl: {}`): as empty as an empty file (an
    // unknown section, `trainr:`, is left to the unknown-key error).
    const empty = ([key, value]: [string, unknown]) =>
      Object.hasOwn(DEFAULT_CONFIG, key) &&
      (value === null || (isPlainObject(value) && Object.keys(value).length === 0));
    if (Object.entries(fileValue).every(empty)) throw setsNoKeys(source, sections);
  }
  const merged = merge(DEFAULT_CONFIG, fileValue, []) as Record<string, unknown>;
  const origins: Origins = new Map();
  for (const override of options.overrides ?? []) {
    applyOverride(merged, override, source, origins);
  }
  return validateConfig(merged, { source, setBy: origins });
}
