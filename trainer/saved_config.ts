/**
 * Saved run configs (a checkpoint's `meta.config`) from before a key existed, filled with the
 * value that reproduces what those runs did, so that they validate, resume and compare equal to
 * a config that leaves the key at its default.
 *
 * @module
 */
import { withRolloutDefaults } from "./rl/config.ts";

/** `rl` keys added since checkpoints were first written, with what the runs before them did. */
const RL_KEYS_ADDED_SINCE: Readonly<Record<string, unknown>> = {
  enableThinking: false,
  stopTokenIds: [],
};

/** `model` keys added since checkpoints were first written, with what the runs before them did. */
const MODEL_KEYS_ADDED_SINCE: Readonly<Record<string, unknown>> = {
  kvDtype: "f32",
  submitEveryLayers: null, // the adapter's default (how work is split changes no result)
};

/**
 * A saved run config (JSON) with the keys added since checkpoints were first written filled in:
 * `rl.rollout`, `rl.releaseWorkspaces`, `rl.gpuMemoryBudget` and `rl.gpuMemoryHeadroom` (local
 * sampling and no budget, see {@linkcode withRolloutDefaults}) when an `rl` section lacks them, `rl.enableThinking: false` (the prompts were rendered with thinking off) and
 * `rl.stopTokenIds: []` (no extra stop ids; the derived stop set, which now holds the chat
 * template's end-of-turn token, applies as to any run) when it lacks those,
 * `rl.reward.problemNouns: true` (the reward and held-out eval were given the problem's text)
 * when an `rl.reward` section lacks it, `eval.final: true` and `rl.eval.final: true` (the runs
 * evaluated after the last step) when an `eval` or `rl.eval` section lacks it, and
 * `model.kvDtype: "f32"` (the only KV cache there was) and `model.submitEveryLayers: null` (the
 * adapter's default) when a `model` section lacks them. An RL run's `data.task: "suite"` (refused
 * since; those runs read their prompts as `"arithmetic"`) becomes `"arithmetic"`.
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
 * deepStrictEqual(filled, {
 *   model: { path: "m", weightDtype: "f32", kvDtype: "f32", submitEveryLayers: null },
 * });
 * ```
 */
export function withSavedConfigDefaults(config: unknown): unknown {
  const withRollout = withRolloutDefaults(config);
  if (typeof withRollout !== "object" || withRollout === null || Array.isArray(withRollout)) {
    return withRollout;
  }
  let filled: object = withRollout;
  const rl = (filled as { rl?: unknown }).rl;
  if (typeof rl === "object" && rl !== null && !Array.isArray(rl)) {
    const missing = Object.entries(RL_KEYS_ADDED_SINCE).filter(([key]) => !(key in rl));
    let rlFilled: object = missing.length > 0
      ? { ...rl, ...structuredClone(Object.fromEntries(missing)) }
      : rl;
    // rl.reward.problemNouns: the runs before it gave the verifier the problem's text.
    const reward = (rl as { reward?: unknown }).reward;
    if (
      typeof reward === "object" && reward !== null && !Array.isArray(reward) &&
      !("problemNouns" in reward)
    ) {
      rlFilled = { ...rlFilled, reward: { ...reward, problemNouns: true } };
    }
    // rl.eval.final: the runs before it always evaluated after the last step.
    const evalSection = (rl as { eval?: unknown }).eval;
    if (
      typeof evalSection === "object" && evalSection !== null && !Array.isArray(evalSection) &&
      !("final" in evalSection)
    ) {
      rlFilled = { ...rlFilled, eval: { ...evalSection, final: true } };
    }
    if (rlFilled !== rl) filled = { ...filled, rl: rlFilled };
  }
  // eval.final: the runs before it always evaluated after the last step.
  const evalSection = (filled as { eval?: unknown }).eval;
  if (
    typeof evalSection === "object" && evalSection !== null && !Array.isArray(evalSection) &&
    !("final" in evalSection)
  ) {
    filled = { ...filled, eval: { ...evalSection, final: true } };
  }
  // data.task "suite" in an RL run: refused since, but the RL runs before that read their
  // prompts as data.task "arithmetic" (or from a file, where data.task is not read).
  const trainer = (filled as { trainer?: { mode?: unknown } }).trainer;
  const data = (filled as { data?: unknown }).data;
  if (
    trainer?.mode === "rl" && typeof data === "object" && data !== null &&
    (data as { task?: unknown }).task === "suite"
  ) {
    filled = { ...filled, data: { ...data, task: "arithmetic" } };
  }
  const model = (filled as { model?: unknown }).model;
  if (typeof model !== "object" || model === null || Array.isArray(model)) return filled;
  const missing = Object.entries(MODEL_KEYS_ADDED_SINCE).filter(([key]) => !(key in model));
  if (missing.length === 0) return filled;
  return { ...filled, model: { ...model, ...Object.fromEntries(missing) } };
}
