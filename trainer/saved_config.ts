/**
 * Saved run configs (a checkpoint's `meta.config`) from before a key existed, filled with the
 * value that reproduces what those runs did, so that they validate, resume and compare equal to
 * a config that leaves the key at its default.
 *
 * @module
 */
import { withRolloutDefaults } from "./rl/config.ts";

/**
 * A saved run config (JSON) with the keys added since checkpoints were first written filled in:
 * `rl.rollout` (local sampling, see {@linkcode withRolloutDefaults}) when an `rl` section lacks
 * it, and `model.kvDtype: "f32"` (the only KV cache there was) when a `model` section lacks it.
 * Any other value is returned as it is; nothing is filled that the saved config sets.
 *
 * @param config The saved config, as parsed from `meta.json`.
 * @returns The config, copied where filled.
 *
 * @example A checkpoint config from before `model.kvDtype`
 * ```ts
 * import { withSavedConfigDefaults } from "./saved_config.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const filled = withSavedConfigDefaults({ model: { path: "m", weightDtype: "f32" } });
 * deepStrictEqual(filled, { model: { path: "m", weightDtype: "f32", kvDtype: "f32" } });
 * ```
 */
export function withSavedConfigDefaults(config: unknown): unknown {
  const filled = withRolloutDefaults(config);
  if (typeof filled !== "object" || filled === null || Array.isArray(filled)) return filled;
  const model = (filled as { model?: unknown }).model;
  if (typeof model !== "object" || model === null || Array.isArray(model) || "kvDtype" in model) {
    return filled;
  }
  return { ...filled, model: { ...model, kvDtype: "f32" } };
}
