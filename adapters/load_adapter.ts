/**
 * Loading any adapter directory halo can read: PEFT LoRA (`"peft_type": "LORA"`) or HILO
 * (`"peft_type": "HILO"`), chosen by the config's `peft_type`.
 *
 * @module
 */
import type { Lora } from "../model/adapter_types.ts";
import { loadHiloAdapter } from "./hilo_io.ts";
import type { LoraModelShape } from "./lora_config.ts";
import { loadPeftAdapter } from "./peft_io.ts";
import { readJsonFile } from "../internal/read_json.ts";

/**
 * Loads a PEFT LoRA or a HILO adapter directory, by its `adapter_config.json`'s `peft_type`.
 *
 * @param dir The adapter directory.
 * @param modelConfig The model it is for.
 * @returns The adapters.
 * @throws {Deno.errors.NotFound} If `adapter_config.json` is missing.
 * @throws {TypeError} If `peft_type` is neither `"LORA"` nor `"HILO"`.
 * @throws {Error} What {@linkcode loadPeftAdapter} or `loadHiloAdapter` throws.
 *
 * @example Load the fixture's PEFT adapter
 * ```ts
 * import { readQwen3Config } from "../model/config.ts";
 * import { loadAdapter } from "./load_adapter.ts";
 * const dir = "tests/fixtures/qwen3-tiny";
 * const lora = await loadAdapter(`${dir}/adapter`, await readQwen3Config(dir));
 * console.log(lora.hilo === undefined, lora.modules.length); // true 14
 * ```
 */
export async function loadAdapter(dir: string, modelConfig: LoraModelShape): Promise<Lora> {
  const path = dir === "" || dir.endsWith("/")
    ? `${dir}adapter_config.json`
    : `${dir}/adapter_config.json`;
  const json = await readJsonFile(path, { context: "Cannot load adapter" });
  const type = (json as { peft_type?: unknown } | null)?.peft_type;
  if (type === "HILO") return await loadHiloAdapter(dir, modelConfig);
  if (type === "LORA" || type === undefined) return await loadPeftAdapter(dir, modelConfig);
  throw new TypeError(
    `Cannot load adapter "${path}": key "peft_type" must be "LORA" or "HILO": current value is ` +
      `${JSON.stringify(type)}`,
  );
}
