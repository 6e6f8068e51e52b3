/**
 * The adapters a run config asks for, freshly initialised: LoRA (`adapters.kind: lora`), HILO
 * (`adapters.kind: hilo`), or none (full fine-tuning). One place for the mapping from the
 * `adapters` section to `createLora` / `createHilo`, used by the run set-up and the experiments.
 *
 * @module
 */
import { createHilo, hiloConfig } from "../adapters/hilo.ts";
import { createLora, type Lora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import type { Qwen3Config } from "../model/config.ts";
import type { TrainConfig } from "./config.ts";

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
  const a = config.adapters;
  if (a.kind === "lora") {
    return createLora(
      loraConfig({
        r: a.r,
        loraAlpha: a.alpha,
        targetModules: [...a.targets],
        rankPattern: { ...a.rankPattern },
        alphaPattern: { ...a.alphaPattern },
        loraDropout: a.dropout,
        useRslora: a.rslora,
        baseModelNameOrPath: config.model.path,
      }),
      modelConfig,
      { seed: config.run.seed },
    );
  }
  if (a.kind === "hilo") {
    const h = a.hilo;
    return createHilo(
      hiloConfig(modelConfig, {
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
      }),
      modelConfig,
      { seed: config.run.seed },
    );
  }
  return null;
}
