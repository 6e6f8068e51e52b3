// Private: a pool of CPU workers, each with a copy of the model, that runs the rows of a batch
// (or the prompts of a greedy generation) in parallel, in contiguous chunks, and returns the
// results in the original order.
import type { Lora } from "../adapters/lora.ts";
import type { GeneratedSequence, GenerateOptions, GenerateResult } from "../model/generate.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import type { TrainMode } from "./backend.ts";
import type { RowJob, RowResult } from "./_cpu_rows.ts";
import type { WorkerRequest } from "./_cpu_worker.ts";
import type { ParamTree } from "./types.ts";

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

type Reply = { id: number; error?: { name: string; message: string } } & Record<string, unknown>;

function errorOf(error: { name: string; message: string }): Error {
  const kinds: Record<string, ErrorConstructor> = { TypeError, RangeError, SyntaxError };
  const e = new (kinds[error.name] ?? Error)(error.message);
  return e;
}

/** Splits `n` items into `k` contiguous chunks (the first ones one longer). */
function chunks(n: number, k: number): [number, number][] {
  const out: [number, number][] = [];
  const base = Math.floor(n / k);
  let extra = n % k;
  let start = 0;
  for (let i = 0; i < k && start < n; i++) {
    const size = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    if (size === 0) continue;
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

export class CpuWorkerPool {
  readonly size: number;
  #workers: Worker[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 0;
  #fatal: Error | null = null;

  constructor(size: number, model: CpuQwen3, mode: TrainMode) {
    this.size = size;
    const lora: Lora | null = model.adapters;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./_cpu_worker.ts", import.meta.url).href, {
        type: "module",
      });
      worker.onmessage = (e: MessageEvent<Reply>) => this.#reply(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#fail(new Error(`A CPU trainer worker failed: ${e.message}`));
      };
      const init: WorkerRequest = {
        type: "init",
        config: model.config,
        weights: model.weights,
        lora,
        mode,
      };
      worker.postMessage(init);
      this.#workers.push(worker);
    }
  }

  #reply(reply: Reply): void {
    if (reply.id === -1 && reply.error) {
      this.#fail(errorOf(reply.error));
      return;
    }
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.error) pending.reject(errorOf(reply.error));
    else pending.resolve(reply);
  }

  #fail(error: Error): void {
    this.#fatal ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }

  #send<T>(worker: Worker, request: WorkerRequest & { id: number }): Promise<T> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise((resolve, reject) => {
      this.#pending.set(request.id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage(request);
    });
  }

  async backward(jobs: RowJob[], params: ParamTree): Promise<RowResult[]> {
    const parts = await Promise.all(
      chunks(jobs.length, this.size).map(([a, b], i) =>
        this.#send<{ results: RowResult[] }>(this.#workers[i], {
          type: "backward",
          id: this.#nextId++,
          params,
          jobs: jobs.slice(a, b),
        })
      ),
    );
    return parts.flatMap((p) => p.results);
  }

  async forward(
    rows: number[][],
    params: ParamTree,
    temperature = 1,
    hiddenLayer?: number,
  ): Promise<RowResult[]> {
    const parts = await Promise.all(
      chunks(rows.length, this.size).map(([a, b], i) =>
        this.#send<{ results: RowResult[] }>(this.#workers[i], {
          type: "forward",
          id: this.#nextId++,
          params,
          rows: rows.slice(a, b),
          temperature,
          hiddenLayer,
        })
      ),
    );
    return parts.flatMap((p) => p.results);
  }

  /**
   * Generation split by prompts over the workers: a sequence's tokens do not depend on its
   * batch-mates, and each part samples with its prompts' places in the whole batch, so the result
   * is the unsplit batch's, greedy or sampled.
   */
  async generate(options: GenerateOptions, params: ParamTree): Promise<GenerateResult> {
    const prompts = options.prompts;
    const parts = await Promise.all(
      chunks(prompts.length, this.size).map(([a, b], i) =>
        this.#send<{ result: GenerateResult }>(this.#workers[i], {
          type: "generate",
          id: this.#nextId++,
          params,
          options: { ...options, prompts: prompts.slice(a, b) },
          firstSequence: a,
        })
      ),
    );
    const sequences: GeneratedSequence[] = parts.flatMap((p) => p.result.sequences);
    const stats = { ...parts[0].result.stats };
    for (const p of parts.slice(1)) {
      const s = p.result.stats;
      stats.readbacks += s.readbacks;
      stats.submits += s.submits;
      stats.steps = Math.max(stats.steps, s.steps);
      stats.promptTokens += s.promptTokens;
      stats.generatedTokens += s.generatedTokens;
      stats.rowSteps += s.rowSteps;
      stats.seconds = Math.max(stats.seconds, s.seconds);
    }
    return { sequences, stats };
  }

  dispose(): void {
    this.#fail(new Error("The CPU trainer's workers were disposed"));
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}
