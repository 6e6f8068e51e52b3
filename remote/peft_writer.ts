/**
 * Writes the train backend's current LoRA parameters as a PEFT adapter directory, for
 * {@linkcode AdapterSync.publish}: the values are copied into a scratch {@linkcode Lora} built
 * with the run's LoRA config, which `savePeftAdapter` writes.
 *
 * The backend's host parameters must be current: true on the CPU and with the host optimizer;
 * with AdamW on the GPU (`trainer.optimizer: device`) the host copy is stale between
 * checkpoints, so pass `syncParams` (the backend's `syncParams()`): the writer awaits it before
 * reading the parameters.
 *
 * @module
 */
import type { Lora } from "../adapters/lora.ts";
import { savePeftAdapter } from "../adapters/peft_io.ts";
import { loraTensorName } from "../model/adapter_types.ts";
import type { TrainBackend } from "../trainer/backend.ts";

/**
 * A writer of the backend's adapter.
 *
 * @param scratch Adapters with the run's LoRA config and shapes (e.g. `createLora` with the
 *   run's `adapters.*`); its matrices are overwritten on each call.
 * @param options `baseModelNameOrPath` for `adapter_config.json`; `syncParams`, awaited before
 *   each write to bring the backend's host parameters up to date with the device.
 * @returns `(backend, dir) => Promise<void>`.
 * @throws {RangeError} (from the writer) When the backend lacks a tensor of the scratch adapter
 *   or its length differs, or the adapter is a HILO mixture (engines serve plain LoRA only).
 *
 * @example Publish the backend's adapter (needs a run)
 * ```ts ignore
 * import { peftWriter } from "./peft_writer.ts";
 * import { AdapterSync } from "./adapter_sync.ts";
 * declare const sync: AdapterSync;
 * declare const scratch: import("../adapters/lora.ts").Lora;
 * declare const backend: import("../trainer/backend.ts").TrainBackend;
 * const write = peftWriter(scratch);
 * await sync.publish(1, (dir) => write(backend, dir));
 * ```
 */
export function peftWriter(
  scratch: Lora,
  options: { baseModelNameOrPath?: string; syncParams?: () => Promise<void> } = {},
): (backend: TrainBackend, dir: string) => Promise<void> {
  return async (backend, dir) => {
    if (scratch.hilo || scratch.modules.some((m) => m.experts.length !== 1 || m.router)) {
      throw new RangeError(
        `Cannot write a HILO/mixture adapter for an inference engine: engines serve plain PEFT ` +
          `LoRA only, so HILO runs keep local rollouts`,
      );
    }
    if (options.syncParams) await options.syncParams();
    const tree = backend.params.tree;
    for (const m of scratch.modules) {
      const e = m.experts[0];
      for (const [matrix, target] of [["A", e.a], ["B", e.b]] as const) {
        const name = loraTensorName(m, { matrix });
        const value = tree[name];
        if (value === undefined || value.length !== target.length) {
          throw new RangeError(
            `Cannot write the adapter: the train backend's tensor "${name}" must have ` +
              `${target.length} values: current value is ${value?.length ?? "missing"}`,
          );
        }
        target.set(value);
      }
    }
    await savePeftAdapter(dir, scratch, { baseModelNameOrPath: options.baseModelNameOrPath });
  };
}
