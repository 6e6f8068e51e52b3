/**
 * The adapters a run config asks for, freshly initialised: LoRA (`adapters.kind: lora`), HILO
 * (`adapters.kind: hilo`), or none (full fine-tuning). One place for the mapping from the
 * `adapters` section to `createLora` / `createHilo`, used by the run set-up and the experiments.
 *
 * @module
 */
import { createHilo, type HiloConfig, hiloConfig, type HiloOptionKeys } from "../adapters/hilo.ts";
import { createLora, type Lora } from "../adapters/lora.ts";
import { type LoraConfig, loraConfig } from "../adapters/lora_config.ts";
import type { Qwen3Config } from "../model/config.ts";
import { DEFAULT_CONFIG, type TrainConfig } from "./config.ts";

/** The run-config keys of `hiloConfig`'s options, named in its errors. */
const HILO_KEYS: HiloOptionKeys = {
  experts: "adapters.hilo.experts",
  rank: "adapters.hilo.rank",
  alpha: "adapters.hilo.alpha",
  topK: "adapters.hilo.topK",
  activation: "adapters.hilo.activation",
  topP: "adapters.hilo.topP",
  balanceCoef: "adapters.hilo.balanceCoef",
  loraDropout: "adapters.dropout",
};

/**
 * The run's adapter settings, parsed against the model without creating any weights: what
 * {@linkcode runAdapters} initialises. It throws what `loraConfig` / `hiloConfig` throw (an
 * unparsable HILO schedule, a schedule of another length than the model's layers), so a grid of
 * runs can check every run's adapters before the first one trains.
 *
 * @param config The run's config (its `adapters` and `model.path`).
 * @param modelConfig The model the adapters wrap (its layer count).
 * @returns The kind and its config, or `null` for `adapters.kind: none`.
 * @throws {RangeError} When the adapter settings do not fit the model.
 *
 * @example A HILO schedule of one value per layer
 * ```ts
 * import { runAdapterConfig } from "./run_adapters.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const hilo = { ...DEFAULT_CONFIG.adapters.hilo, experts: [1, 4], rank: [2, 8] };
 * const adapters = { ...DEFAULT_CONFIG.adapters, kind: "hilo" as const, hilo };
 * const parsed = runAdapterConfig({ ...DEFAULT_CONFIG, adapters }, { numHiddenLayers: 2 });
 * strictEqual(parsed?.kind, "hilo");
 * ```
 */
export function runAdapterConfig(
  config: TrainConfig,
  modelConfig: { numHiddenLayers: number },
): { kind: "lora"; config: LoraConfig } | { kind: "hilo"; config: HiloConfig } | null {
  const a = config.adapters;
  if (a.kind === "lora") {
    return {
      kind: "lora",
      config: loraConfig({
        r: a.r,
        loraAlpha: a.alpha,
        targetModules: [...a.targets],
        rankPattern: { ...a.rankPattern },
        alphaPattern: { ...a.alphaPattern },
        loraDropout: a.dropout,
        useRslora: a.rslora,
        baseModelNameOrPath: config.model.path,
      }),
    };
  }
  if (a.kind === "hilo") {
    const h = a.hilo;
    return {
      kind: "hilo",
      config: hiloConfig(modelConfig, {
        experts: h.experts,
        rank: h.rank,
        alpha: h.alphaPerRank ? { perRank: h.alpha } : h.alpha,
        topK: h.topK ?? undefined,
        activation: h.activation,
        topP: h.topP,
        balanceCoef: h.balanceCoef,
        targetModules: [...a.targets],
        loraDropout: a.dropout,
        baseModelNameOrPath: config.model.path,
        keys: HILO_KEYS,
      }),
    };
  }
  return null;
}

/**
 * The run's adapters, initialised with `run.seed`.
 *
 * @param config The run's config (its `adapters`, `model.path` and `run.seed`).
 * @param modelConfig The model the adapters wrap.
 * @returns The adapters, or `null` for `adapters.kind: none`.
 * @throws {RangeError} When the adapters do not fit the model (as `createLora` / `createHilo`).
 *
 * @example LoRA r=4 on the fixture model
 * ```ts
 * import { runAdapters } from "./run_adapters.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { readQwen3Config } from "../model/config.ts";
 * const model = await readQwen3Config("tests/fixtures/qwen3-tiny");
 * const config = { ...DEFAULT_CONFIG, adapters: { ...DEFAULT_CONFIG.adapters, kind: "lora" as const, r: 4 } };
 * console.log(runAdapters(config, model)?.modules.length); // 14
 * ```
 */
export function runAdapters(config: TrainConfig, modelConfig: Qwen3Config): Lora | null {
  const parsed = runAdapterConfig(config, modelConfig);
  if (parsed === null) return null;
  const options = { seed: config.run.seed };
  return parsed.kind === "lora"
    ? createLora(parsed.config, modelConfig, options)
    : createHilo(parsed.config, modelConfig, options);
}

/** The `adapters` keys that only one kind reads (the others: `kind`, `targets`, `dropout`). */
const LORA_ONLY = ["r", "alpha", "rankPattern", "alphaPattern", "rslora"] as const;

/**
 * Warnings for `adapters` keys set away from their defaults that the run's `adapters.kind` does
 * not read, so that a setting does not go silently unused: the LoRA keys (`r`, `alpha`,
 * `rankPattern`, `alphaPattern`, `rslora`) unless the kind is `"lora"`, the `hilo.*` keys unless it
 * is `"hilo"`, `targets` and `dropout` with `"none"`; and HILO's `alpha` left at its default with
 * `alphaPerRank` (it is then the factor c of `α_l = c·r_l`: 16 gives a scale of 16).
 *
 * They are warnings, not errors: a config that switches `adapters.kind` by an override keeps the
 * other kind's keys of its base config, which is fine.
 *
 * @param config The run's config.
 * @returns One line each, empty when every set key is read.
 *
 * @example A LoRA rank left over in a HILO run
 * ```ts
 * import { adapterKeyWarnings } from "./run_adapters.ts";
 * import { DEFAULT_CONFIG } from "./config.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const adapters = { ...DEFAULT_CONFIG.adapters, kind: "hilo" as const, r: 32 };
 * const warnings = adapterKeyWarnings({ ...DEFAULT_CONFIG, adapters });
 * strictEqual(warnings.length, 1);
 * ```
 */
export function adapterKeyWarnings(config: Pick<TrainConfig, "adapters">): string[] {
  const a = config.adapters;
  const d = DEFAULT_CONFIG.adapters;
  const set = (value: unknown, fallback: unknown) =>
    JSON.stringify(value) !== JSON.stringify(fallback);
  const unread: string[] = [];
  if (a.kind !== "lora") {
    for (const key of LORA_ONLY) if (set(a[key], d[key])) unread.push(`adapters.${key}`);
  }
  if (a.kind !== "hilo") {
    for (const key of Object.keys(d.hilo) as (keyof typeof d.hilo)[]) {
      if (set(a.hilo[key], d.hilo[key])) unread.push(`adapters.hilo.${key}`);
    }
  }
  if (a.kind === "none") {
    for (const key of ["targets", "dropout"] as const) {
      if (set(a[key], d[key])) unread.push(`adapters.${key}`);
    }
  }
  const warnings = unread.map((key) =>
    `key "${key}" is set but not read with "adapters.kind" "${a.kind}"`
  );
  if (a.kind === "hilo" && a.hilo.alphaPerRank && !set(a.hilo.alpha, d.hilo.alpha)) {
    warnings.push(
      `key "adapters.hilo.alphaPerRank" is true and "adapters.hilo.alpha" is its default ` +
        `(${d.hilo.alpha}), which is then the factor c of alpha = c·rank: every expert's scale ` +
        `is ${d.hilo.alpha}; set "adapters.hilo.alpha" (e.g. 2 for alpha = 2·rank)`,
    );
  }
  return warnings;
}
