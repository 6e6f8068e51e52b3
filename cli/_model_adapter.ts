// Private to cli/: the `--model M --adapter DIR` pairing and opening shared by `deno task eval`
// and `deno task anchors`.

import { exists } from "../internal/exists.ts";
import { loadAdapter } from "../adapters/load_adapter.ts";
import type { Lora } from "../adapters/lora.ts";
import { loadModelOrCheckpoint, type OpenedModel } from "../trainer/checkpoint_model.ts";

/**
 * One model, with the adapter directory to set on it or `null` for the model as it is.
 *
 * @example The pairs of two models, each with its own adapter
 * ```ts
 * import { type ModelAdapterPair, pairModelsAndAdapters } from "./_model_adapter.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const pairs: ModelAdapterPair[] = pairModelsAndAdapters(["a", "b"], ["none", "b/final"], "Cannot x");
 * deepStrictEqual(pairs, [{ model: "a", adapter: null }, { model: "b", adapter: "b/final" }]);
 * ```
 */
export interface ModelAdapterPair {
  /** The `--model` value. */
  model: string;
  /** The `--adapter` value, or `null` (none given, or `none`). */
  adapter: string | null;
}

/**
 * Pairs `--model` and `--adapter` values: no adapter, each model as it is; one model, each
 * adapter on it (`none` = the bare model); otherwise the i-th adapter on the i-th model.
 *
 * @param models The `--model` values (at least one).
 * @param adapters The `--adapter` values.
 * @param cannot The start of the error, e.g. `"Cannot evaluate"`.
 * @returns The pairs in order.
 * @throws {RangeError} When the counts cannot be paired (names both flags and their counts).
 *
 * @example One model, as it is and with an adapter
 * ```ts
 * import { pairModelsAndAdapters } from "./_model_adapter.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * deepStrictEqual(pairModelsAndAdapters(["m"], ["none", "out/run/final"], "Cannot x"), [
 *   { model: "m", adapter: null },
 *   { model: "m", adapter: "out/run/final" },
 * ]);
 * ```
 */
export function pairModelsAndAdapters(
  models: readonly string[],
  adapters: readonly string[],
  cannot: string,
): ModelAdapterPair[] {
  const adapter = (a: string) => (a === "none" ? null : a);
  if (adapters.length === 0) return models.map((model) => ({ model, adapter: null }));
  if (models.length === 1) return adapters.map((a) => ({ model: models[0], adapter: adapter(a) }));
  if (models.length === adapters.length) {
    return models.map((model, i) => ({ model, adapter: adapter(adapters[i]) }));
  }
  throw new RangeError(
    `${cannot}: give one --adapter per --model, or one --model with any number of ` +
      `--adapter: current counts are ${models.length} --model and ${adapters.length} --adapter`,
  );
}

/**
 * Options of {@linkcode openModelForAdapter} and {@linkcode openModelWithAdapter}.
 *
 * @example The CPU backend, errors starting "Cannot evaluate"
 * ```ts
 * import type { OpenModelAdapterOptions } from "./_model_adapter.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const options: OpenModelAdapterOptions = { backend: "cpu", cannot: "Cannot evaluate" };
 * strictEqual(options.backend, "cpu");
 * ```
 */
export interface OpenModelAdapterOptions {
  /** `"cpu"`, `"webgpu"` or `"auto"`. */
  backend: "cpu" | "webgpu" | "auto";
  /** The start of every error, e.g. `"Cannot evaluate"`. */
  cannot: string;
}

/**
 * Opens `--model` (a model, adapter or checkpoint directory, by `loadModelOrCheckpoint`) for
 * `adapter` to be set on it: refused when it holds adapters already and `adapter` is not `null`.
 * Leaves setting the adapter to the caller (`runEval` does it).
 *
 * @param model The `--model` value.
 * @param adapter The `--adapter` value that goes on it, or `null`.
 * @param options The backend and the error's start.
 * @returns What `loadModelOrCheckpoint` opened.
 * @throws {Deno.errors.NotFound | RangeError} As `loadModelOrCheckpoint`; a RangeError when
 *   `model` holds adapters and `adapter` is given.
 *
 * @example The bundled model opened for an adapter that the caller sets afterwards
 * ```ts
 * import { openModelForAdapter } from "./_model_adapter.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * // The adapter is not read here: the model comes back as it is.
 * const opened = await openModelForAdapter("models/arithmetic-tiny", "out/run/final", {
 *   backend: "cpu",
 *   cannot: "Cannot evaluate",
 * });
 * strictEqual(opened.adapter, false);
 * opened.model.dispose();
 * ```
 */
export async function openModelForAdapter(
  model: string,
  adapter: string | null,
  options: OpenModelAdapterOptions,
): Promise<OpenedModel> {
  const opened = await loadModelOrCheckpoint(model, {
    backend: options.backend,
    what: `${options.cannot}: --model "${model}"`,
    adapterFlag: "--adapter",
  });
  if (opened.adapter && adapter !== null) {
    opened.model.dispose();
    throw new RangeError(
      `${options.cannot}: --model "${model}" holds adapters already: give its base model ` +
        `with --adapter "${adapter}", or leave out --adapter`,
    );
  }
  return opened;
}

/**
 * {@linkcode openModelForAdapter}, then the adapter directory (PEFT LoRA or HILO, whatever base
 * its `adapter_config.json` names) set on the model.
 *
 * @param model The `--model` value.
 * @param adapter The `--adapter` value, or `null` for the model as it is.
 * @param options The backend and the error's start.
 * @returns The model with the adapter set (`adapter: true` then).
 * @throws {Deno.errors.NotFound} When `model` or `adapter` does not exist (named).
 * @throws {RangeError | TypeError} When the adapter cannot be read or does not fit the model
 *   (the loader's error, its message naming `--adapter`, its directory and `--model`).
 *
 * @example The bundled model as it is
 * ```ts
 * import { openModelWithAdapter } from "./_model_adapter.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const opened = await openModelWithAdapter("models/arithmetic-tiny", null, {
 *   backend: "cpu",
 *   cannot: "Cannot measure anchors",
 * });
 * strictEqual(opened.adapter, false);
 * opened.model.dispose();
 * ```
 */
export async function openModelWithAdapter(
  model: string,
  adapter: string | null,
  options: OpenModelAdapterOptions,
): Promise<OpenedModel> {
  if (adapter !== null && !(await exists(adapter))) {
    throw new Deno.errors.NotFound(
      `${options.cannot}: --adapter directory "${adapter}" not found`,
    );
  }
  const opened = await openModelForAdapter(model, adapter, options);
  if (adapter === null) return opened;
  try {
    const lora = await loadAdapter(adapter, opened.model.config);
    (opened.model as unknown as { setAdapters(lora: Lora | null): void }).setAdapters(lora);
  } catch (error) {
    opened.model.dispose();
    // The loader's kind of error (a missing file stays NotFound), as runEval does for eval.
    const Type = (error as Error).constructor as ErrorConstructor;
    throw new Type(
      `${options.cannot}: --adapter "${adapter}" on --model "${model}": ` +
        (error as Error).message,
      { cause: error },
    );
  }
  return { ...opened, adapter: true };
}
