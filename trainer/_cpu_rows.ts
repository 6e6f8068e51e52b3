// Private: the CPU trainer's unit of work, one sequence at a time (no padding). A batch's
// gradient is the sum of its rows' gradients taken in row order, so the result is the same
// whether the rows run in this thread or are spread over any number of workers. HILO's balance
// loss is a function of the whole batch's routing statistics: a forward returns each row's
// (`balanceStats`), the caller sums them, and every row's backward takes the sum.
import { logprobRef } from "../kernels/logprob/logprob_ref.ts";
import type { CpuQwen3 } from "../model/qwen3_cpu.ts";
import { cpuBackward, temperedLogits } from "../model/qwen3_cpu_backward.ts";
import { type CpuBalanceStats, cpuBalanceStats } from "../model/qwen3_cpu_layer.ts";
import type { TrainMode } from "./backend.ts";

/** The backward of one sequence: its tokens and the cotangents of its outputs. */
export interface RowJob {
  /** The sequence's tokens (no padding). */
  ids: number[];
  /** `dLoss/dlogprobs`, `[ids.length − 1]`. */
  dLogprobs?: Float64Array;
  /** `dLoss/dlastHidden`, `[ids.length, hidden]`. */
  dLastHidden?: Float64Array;
  /** Training-mode LoRA dropout seed (the masks also hash the row's tokens). */
  dropoutSeed?: number;
  /** Decoder layer whose output is `lastHidden` (and receives `dLastHidden`); default final norm. */
  hiddenLayer?: number;
  /** Log-probs of `softmax(logits / temperature)` (see `cpuBackward`); default 1. */
  temperature?: number;
  /** HILO balance statistics of the whole batch, per layer (the sum of its rows'). */
  balanceStats?: CpuBalanceStats[];
  /** Coefficient of the balance loss (with `balanceStats`); default 0. */
  balanceCoef?: number;
}

/** What one sequence's pass computed. */
export interface RowResult {
  /** Token log-probs `[ids.length − 1]`. */
  logprobs: Float64Array;
  /** Hidden states `[ids.length, hidden]`: the final-norm output, or layer `hiddenLayer`'s. */
  lastHidden: Float64Array;
  /** Entropy of the next-token distribution at each scored position `[ids.length − 1]`. */
  entropy: Float64Array;
  /** Gradients by name (absent for a forward, or a row without any cotangent). */
  grads?: Record<string, Float64Array>;
  /**
   * A forward's HILO balance statistics per layer, when the adapters have a balance coefficient
   * > 0 (see `cpuBalanceStats`).
   */
  balanceStats?: CpuBalanceStats[];
}

function allZero(a: Float64Array | undefined): boolean {
  if (a === undefined) return true;
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/** Forward of one sequence (with the job's dropout and hidden layer; no cotangents needed). */
export function rowForward(
  model: CpuQwen3,
  job: Pick<RowJob, "ids" | "dropoutSeed" | "hiddenLayer" | "temperature">,
): RowResult {
  const { ids, hiddenLayer } = job;
  const t = model.trace({ inputIds: [ids] }, { dropoutSeed: job.dropoutSeed });
  const { logprobs, entropy } = logprobRef(
    temperedLogits(t.logits, job.temperature ?? 1),
    t.batch.targets,
    model.config.vocabSize,
  );
  const lastHidden = hiddenLayer === undefined
    ? t.hidden[t.hidden.length - 1]
    : t.layers[hiddenLayer].hOut;
  const scored = ids.length - 1;
  const out: RowResult = {
    logprobs: logprobs.slice(0, scored),
    lastHidden,
    entropy: entropy.slice(0, scored),
  };
  if ((model.adapters?.hilo?.balanceCoef ?? 0) > 0) {
    out.balanceStats = t.layers.map((layer) => cpuBalanceStats(layer));
  }
  return out;
}

/**
 * Forward and backward of one sequence (forward only when its cotangents are all zero and it has
 * no balance term: a row's balance gradient does not depend on the other losses).
 */
export function rowBackward(model: CpuQwen3, mode: TrainMode, job: RowJob): RowResult {
  const balance = job.balanceStats !== undefined && (job.balanceCoef ?? 0) !== 0;
  if (!balance && allZero(job.dLogprobs) && allZero(job.dLastHidden)) {
    return rowForward(model, job);
  }
  const r = cpuBackward(model, { inputIds: [job.ids] }, {
    mode,
    dLogprobs: job.dLogprobs,
    dLastHidden: job.dLastHidden,
    dropoutSeed: job.dropoutSeed,
    hiddenLayer: job.hiddenLayer,
    temperature: job.temperature,
    balanceCoef: balance ? job.balanceCoef : 0,
    balanceStats: balance ? job.balanceStats : undefined,
  });
  return {
    logprobs: r.logprobs,
    lastHidden: r.lastHidden,
    entropy: r.entropy,
    grads: Object.fromEntries(r.grads),
  };
}

/** The buffers of row results, to transfer instead of copy. */
export function resultBuffers(results: readonly RowResult[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const r of results) {
    out.push(
      r.logprobs.buffer as ArrayBuffer,
      r.lastHidden.buffer as ArrayBuffer,
      r.entropy.buffer as ArrayBuffer,
    );
    for (const g of Object.values(r.grads ?? {})) out.push(g.buffer as ArrayBuffer);
  }
  return [...new Set(out)];
}
