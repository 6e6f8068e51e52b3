/**
 * Writes the train backend's current LoRA parameters as a PEFT adapter directory, for
 * {@linkcode AdapterSync.publish}: the values are copied into a scratch {@linkcode Lora} built
 * with the run's LoRA config, and written in the form inference engines read the same way as halo.
 *
 * vLLM (`PEFTHelper`) and SGLang apply one scale to every module, computed from `r`, `lora_alpha`
 * (and, in vLLM, `use_rslora`), and ignore `rank_pattern` / `alpha_pattern`; halo scales each
 * module by its own `alpha_m / r_m`. So the served adapter folds each module's scale into its B
 * (`B_m · scale_m`), pads every module to rank R (the largest of `r` and every module's rank) with
 * zero rows of A and zero columns of B (`B·A` unchanged; vLLM pads to `--max-lora-rank` anyway),
 * and writes `r = lora_alpha = R`, `use_rslora: false` and empty patterns: every reader's scale is
 * 1, and each module's `scale·B·A` is halo's. Servers need `--max-lora-rank ≥ R`.
 *
 * The backend's host parameters must be current: true on the CPU and with the host optimizer;
 * with AdamW on the GPU (`trainer.optimizer: device`) the host copy is stale between
 * checkpoints, so pass `syncParams` (the backend's `syncParams()`): the writer awaits it before
 * reading the parameters.
 *
 * @module
 */
import type { Lora, LoraModule } from "../adapters/lora.ts";
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
    await savePeftAdapter(dir, servedForm(scratch), {
      baseModelNameOrPath: options.baseModelNameOrPath,
    });
  };
}

/**
 * The adapter as engines with one global LoRA scale read it: every module at the largest rank R
 * (zero-padded), its scale folded into B, and a config whose global scale is 1.
 */
function servedForm(lora: Lora): Lora {
  const rank = Math.max(lora.config.r, ...lora.modules.map((m) => m.experts[0].r));
  const modules = lora.modules.map((m): LoraModule => {
    const e = m.experts[0];
    const a = new Float32Array(rank * m.inFeatures);
    a.set(e.a); // rows r..R-1 stay zero
    const b = new Float32Array(m.outFeatures * rank);
    for (let o = 0; o < m.outFeatures; o++) {
      for (let j = 0; j < e.r; j++) b[o * rank + j] = e.b[o * e.r + j] * e.scale;
    }
    return { ...m, experts: [{ a, b, r: rank, scale: 1 }] };
  });
  const config = {
    ...lora.config,
    r: rank,
    loraAlpha: rank,
    useRslora: false,
    rankPattern: {},
    alphaPattern: {},
  };
  return { config, modules };
}
