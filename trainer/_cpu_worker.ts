// Private: a worker of the CPU trainer's pool. It holds its own copy of the model, takes the
// current trainable values with every job, and runs rows (see _cpu_rows.ts) or its part of a
// generation (sampled with the whole batch's random draws) for the main thread.
import type { Lora } from "../adapters/lora.ts";
import type { Qwen3Config } from "../model/config.ts";
import { type GenerateOptions, resolveGenerateOptions } from "../model/generate.ts";
import { generateCpu } from "../model/generate_cpu.ts";
import { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { TrainMode } from "./backend.ts";
import type { Qwen3Weights } from "../model/weights.ts";
import { resultBuffers, rowBackward, rowForward, type RowJob } from "./_cpu_rows.ts";
import { assignParams, loraParams, modelParams } from "./params.ts";
import type { ParamTree } from "./types.ts";

/** Messages the pool sends. */
export type WorkerRequest =
  | {
    type: "init";
    config: Qwen3Config;
    weights: Qwen3Weights;
    lora: Lora | null;
    mode: TrainMode;
  }
  | { type: "backward"; id: number; params: ParamTree; jobs: RowJob[] }
  | {
    type: "forward";
    id: number;
    params: ParamTree;
    rows: number[][];
    temperature: number;
    hiddenLayer?: number;
  }
  | {
    type: "generate";
    id: number;
    params: ParamTree;
    options: GenerateOptions;
    /** The index of `options.prompts[0]` in the whole batch. */
    firstSequence: number;
  };

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage: (message: unknown, transfer?: Transferable[]) => void;
};

let model: CpuQwen3 | null = null;
let mode: TrainMode = "full";
let live: ParamTree = {};

async function handle(request: WorkerRequest): Promise<void> {
  if (request.type === "init") {
    model = new CpuQwen3(request.config, request.weights);
    if (request.lora !== null) model.setAdapters(request.lora);
    mode = request.mode;
    live = request.lora !== null
      ? loraParams(request.lora).tree
      : modelParams(request.weights, request.config).tree;
    return;
  }
  if (model === null) throw new Error("Cannot run a CPU worker job before its init message");
  assignParams(live, request.params);
  if (request.type === "backward") {
    const results = request.jobs.map((job) => rowBackward(model!, mode, job));
    scope.postMessage({ id: request.id, results }, resultBuffers(results));
  } else if (request.type === "forward") {
    const results = request.rows.map((ids) =>
      rowForward(model!, {
        ids,
        temperature: request.temperature,
        hiddenLayer: request.hiddenLayer,
      })
    );
    scope.postMessage({ id: request.id, results }, resultBuffers(results));
  } else {
    const options = resolveGenerateOptions(model.config, request.options);
    const result = await generateCpu(model, options, { firstSequence: request.firstSequence });
    scope.postMessage({ id: request.id, result });
  }
}

scope.onmessage = (e: MessageEvent<WorkerRequest>) => {
  const id = "id" in e.data ? e.data.id : -1;
  handle(e.data).catch((error: unknown) => {
    scope.postMessage({
      id,
      error: {
        name: error instanceof Error ? error.name : "Error",
        message: error instanceof Error ? error.message : String(error),
      },
    });
  });
};
