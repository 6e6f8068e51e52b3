/**
 * A run config's values by flattened key (`a.b.c`), as resume checks and experiment runners
 * compare them, and how a value is shown in their messages: never the value of a key that names
 * where a secret is (a pasted API key would be the secret itself).
 *
 * @module
 */

/**
 * Keys that name where a secret is (an environment variable): a value there may be the secret
 * itself (a pasted API key), so no error, warning or difference shows it.
 *
 * @example
 * ```ts
 * import { SECRET_NAME_KEYS } from "./config_values.ts";
 * import { ok } from "node:assert/strict";
 *
 * ok(SECRET_NAME_KEYS.has("rl.rollout.apiKeyEnv"));
 * ```
 */
export const SECRET_NAME_KEYS: ReadonlySet<string> = new Set(["rl.rollout.apiKeyEnv"]);

/**
 * Each leaf of `value` (arrays are leaves) as JSON, by its dotted key.
 *
 * @param value A config, or any JSON value.
 * @returns The leaves' JSON by key (`""` for a leaf at the top).
 *
 * @example
 * ```ts
 * import { flattenConfig } from "./config_values.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(
 *   flattenConfig({ trainer: { lr: 0.001, steps: 2 }, tags: ["a"] }),
 *   new Map([["trainer.lr", "0.001"], ["trainer.steps", "2"], ["tags", '["a"]']]),
 * );
 * ```
 */
export function flattenConfig(value: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (v: unknown, prefix: string): void => {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      for (const [key, child] of Object.entries(v)) {
        walk(child, prefix === "" ? key : `${prefix}.${key}`);
      }
    } else {
      out.set(prefix, JSON.stringify(v));
    }
  };
  walk(value, "");
  return out;
}

/**
 * A flattened value as messages show it: `unset` for none, and for a {@linkcode SECRET_NAME_KEYS}
 * key anything but an empty string as its length only.
 *
 * @param key The flattened key.
 * @param json The value's JSON (from {@linkcode flattenConfig}), or undefined when unset.
 * @returns The text to show.
 *
 * @example
 * ```ts
 * import { configValueText } from "./config_values.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * strictEqual(configValueText("trainer.lr", "0.001"), "0.001");
 * strictEqual(configValueText("trainer.lr", undefined), "unset");
 * strictEqual(configValueText("rl.rollout.apiKeyEnv", '"sk-abc123"'), "(9 characters, not shown)");
 * strictEqual(configValueText("rl.rollout.apiKeyEnv", '""'), '""');
 * ```
 */
export function configValueText(key: string, json: string | undefined): string {
  if (json === undefined) return "unset";
  if (SECRET_NAME_KEYS.has(key) && json !== '""') {
    return `(${json.length - 2} characters, not shown)`;
  }
  return json;
}
