// Private: an objective request (`trainer/losses/objective_request.ts`) recorded on the GPU, inside
// the training step's loss hook: the clipped policy loss reads the step's log-probs and writes
// d loss / d logprobs, the Hidden-Align term reads the step's hidden state and writes
// d loss / d hidden at the anchor rows; their scalars and the per-position entropies come back
// with the gradients in the step's one readback. The per-batch inputs are uploaded once per
// micro-batch into buffers that are kept and grown, never made per call. With a request
// `temperature` the step's log-probs and entropies are already those of softmax(logits / T)
// (the train step scales the LM head; `WebGpuTrainBackend` passes the temperature), so the loss
// kernels here read them as they are.
import type { GpuContext } from "../gpu/context.ts";
import type { ReadbackRange } from "../gpu/readback.ts";
import {
  CLIPPED_PG_OUT_FLOATS,
  CLIPPED_PG_STATS_FLOATS,
  clippedPgMetrics,
  encodeClippedPg,
} from "../kernels/clipped_pg/clipped_pg.ts";
import {
  encodeHiddenAlign,
  HIDDEN_ALIGN_OUT_FLOATS,
  hiddenAlignMetrics,
  hiddenAlignScratchFloats,
} from "../kernels/hidden_align/hidden_align.ts";
import type {
  LossHook,
  TrainActivations,
  TrainCotangentFlags,
} from "../model/qwen3_webgpu_backward.ts";
import { checkFinite, checkLength, checkMask } from "./losses/_validate.ts";
import { entropyMetrics, type ObjectiveRequest } from "./losses/objective_request.ts";
import type { ClippedPgConfig, HiddenAlignConfig, SftConfig } from "./losses/registry.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import type { LossOutput } from "./types.ts";

const WHERE = "Cannot run the objective on the GPU";

const GPU_TERMS = ["clipped_pg", "hidden_align", "sft"];

/** The terms the GPU runs in the step (any other term runs on the host). */
export function runsOnGpu(request: ObjectiveRequest): boolean {
  const names = request.terms.map((t) => t.name);
  return names.length > 0 && new Set(names).size === names.length &&
    names.every((n) => GPU_TERMS.includes(n));
}

/** What one micro-batch's step needs from the objective. */
export interface GpuObjectiveStep {
  /** Which cotangents the hook writes. */
  cotangents: TrainCotangentFlags;
  /** Records the loss kernels. */
  hook: LossHook;
  /** The ranges to read with the gradients. */
  reads(acts: TrainActivations): ReadbackRange[];
  /** The loss value and metrics from those ranges' bytes. */
  finish(bytes: readonly ArrayBuffer[]): LossOutput;
}

/** The shape of a micro-batch. */
export interface GpuObjectiveShape {
  batch: number;
  seqLen: number;
  hiddenSize: number;
}

/** Persistent upload and scratch buffers of the loss kernels, grown when a batch needs more. */
export class GpuObjective {
  readonly ctx: GpuContext;
  #buffers = new Map<string, GPUBuffer>();

  constructor(ctx: GpuContext) {
    this.ctx = ctx;
  }

  /** A kept buffer of at least `floats` 32-bit values (contents undefined). */
  #buffer(label: string, floats: number): GPUBuffer {
    const bytes = 4 * Math.max(1, floats);
    let b = this.#buffers.get(label);
    if (!b || b.size < bytes) {
      if (b) {
        this.ctx.release(b);
        this.ctx.clearBindGroups();
      }
      b = this.ctx.createBuffer(bytes, `objective.${label}`);
      this.#buffers.set(label, b);
    }
    return b;
  }

  #upload(label: string, data: Float32Array | Int32Array | Uint32Array): GPUBuffer {
    const b = this.#buffer(label, data.length);
    if (data.byteLength > 0) {
      this.ctx.device.queue.writeBuffer(b, 0, data as Float32Array<ArrayBuffer>);
    }
    return b;
  }

  /**
   * Checks a request, uploads its inputs for one micro-batch and returns the step's hook.
   * Uploads happen now (`queue.writeBuffer`), so record and submit the step before the next call.
   */
  prepare(request: ObjectiveRequest, shape: GpuObjectiveShape): GpuObjectiveStep {
    if (!runsOnGpu(request)) {
      throw new TypeError(
        `${WHERE}: the terms must be among "clipped_pg", "hidden_align" and "sft", each at ` +
          `most once: ` +
          `current terms are ${JSON.stringify(request.terms.map((t) => t.name))}`,
      );
    }
    const { batch: B, seqLen: T, hiddenSize: H } = shape;
    const n = B * T;
    const inputs = request.inputs;
    const pgSpec = request.terms.find((t) => t.name === "clipped_pg");
    const alignSpec = request.terms.find((t) => t.name === "hidden_align");
    const sftSpec = request.terms.find((t) => t.name === "sft");
    const records: LossHook[] = [];
    const reads: ((acts: TrainActivations) => ReadbackRange)[] = [];
    const finishers: ((bytes: ArrayBuffer) => LossOutput)[] = [];

    if (pgSpec) {
      const options = (pgSpec.options ?? {}) as ClippedPgConfig;
      const weight = pgSpec.weight ?? 1;
      const width = B * (T - 1);
      const shapeText = "[batch, seqLen − 1]";
      checkLength(WHERE, "lossMask", inputs.lossMask, width, shapeText);
      checkLength(WHERE, "oldLogprobs", inputs.oldLogprobs, width, shapeText);
      checkLength(WHERE, "advantages", inputs.advantages, width, shapeText);
      checkMask(WHERE, "lossMask", inputs.lossMask!);
      checkFinite(WHERE, "oldLogprobs", inputs.oldLogprobs!);
      checkFinite(WHERE, "advantages", inputs.advantages!);
      if (inputs.tokenWeights !== undefined) {
        checkLength(WHERE, "tokenWeights", inputs.tokenWeights, width, shapeText);
        checkFinite(WHERE, "tokenWeights", inputs.tokenWeights);
      }
      // [batch, seqLen − 1] → the step's [batch, seqLen] (mask 0 at each last position).
      const widen = (a: ArrayLike<number>): Float32Array => {
        const out = new Float32Array(n);
        for (let b = 0; b < B; b++) {
          for (let t = 0; t + 1 < T; t++) out[b * T + t] = a[b * (T - 1) + t];
        }
        return out;
      };
      const old = this.#upload("old_logprobs", widen(inputs.oldLogprobs!));
      const adv = this.#upload("advantages", widen(inputs.advantages!));
      const mask = this.#upload("loss_mask", widen(inputs.lossMask!));
      // Truncated importance-sampling weights (optional: the kernel's weighted variant).
      const tokenWeights = inputs.tokenWeights === undefined
        ? undefined
        : this.#upload("token_weights", widen(inputs.tokenWeights));
      const stats = this.#buffer("pg_stats", B * CLIPPED_PG_STATS_FLOATS);
      const out = this.#buffer("pg_out", CLIPPED_PG_OUT_FLOATS);
      const normalizer = inputs.normalizers?.clipped_pg ?? options.normalizer;
      records.push((pass, acts, cot) =>
        encodeClippedPg(this.ctx, pass, {
          logprobs: acts.logprobs,
          oldLogprobs: old,
          advantages: adv,
          lossMask: mask,
          tokenWeights,
          dLogprobs: cot.dLogprobs,
          stats,
          out,
          batch: B,
          width: T,
          clipLow: options.clipLow,
          clipHigh: options.clipHigh,
          dualClip: options.dualClip,
          aggregation: options.aggregation,
          normalizer,
          // The CPU default: the [batch, seqLen − 1] layout's width.
          maxResponseLength: options.maxResponseLength ?? T - 1,
          weight,
        })
      );
      reads.push(() => ({ buffer: out, offset: 0, size: 4 * CLIPPED_PG_OUT_FLOATS }));
      finishers.push((bytes) => {
        const metrics = clippedPgMetrics(new Float32Array(bytes));
        return { value: weight * metrics["loss/pg"], grad: {}, metrics };
      });
    }

    if (alignSpec) {
      const options = (alignSpec.options ?? {}) as HiddenAlignConfig;
      const weight = alignSpec.weight ?? 1;
      checkLength(WHERE, "anchors", inputs.anchors, B, "[batch]");
      checkLength(WHERE, "groups", inputs.groups, B, "[batch]");
      checkLength(WHERE, "correct", inputs.correct, B, "[batch]");
      checkMask(WHERE, "correct", inputs.correct!);
      const anchors = Int32Array.from({ length: B }, (_, b) => {
        const a = inputs.anchors![b];
        if (!Number.isInteger(a) || a < -1 || a >= T) {
          throw new RangeError(
            `${WHERE}: "anchors[${b}]" must be −1 or a position in [0, ${T}): current value is ${a}`,
          );
        }
        return a;
      });
      // Group ids → dense indices in order of first appearance.
      const dense = new Map<number, number>();
      const groups = Uint32Array.from({ length: B }, (_, b) => {
        const g = inputs.groups![b];
        if (!Number.isInteger(g)) {
          throw new RangeError(
            `${WHERE}: "groups[${b}]" must be an integer: current value is ${g}`,
          );
        }
        if (!dense.has(g)) dense.set(g, dense.size);
        return dense.get(g)!;
      });
      const correct = Uint32Array.from({ length: B }, (_, b) => Number(inputs.correct![b]));
      const G = Math.max(1, dense.size);
      let centroids: GPUBuffer | undefined;
      let centroidMask: GPUBuffer | undefined;
      if (inputs.centroids !== undefined && options.type !== "cos-pairwise") {
        const values = new Float32Array(G * H);
        const maskValues = new Uint32Array(G);
        for (const [g, i] of dense) {
          const c = inputs.centroids.get(g);
          if (c === undefined) continue;
          checkLength(WHERE, `centroids.get(${g})`, c, H, "hiddenSize");
          checkFinite(WHERE, `centroids.get(${g})`, c);
          values.set(c as ArrayLike<number>, i * H);
          maskValues[i] = 1;
        }
        centroids = this.#upload("centroids", values);
        centroidMask = this.#upload("centroid_mask", maskValues);
      }
      const anchorBuf = this.#upload("anchors", anchors);
      const groupBuf = this.#upload("groups", groups);
      const correctBuf = this.#upload("correct", correct);
      const scratch = this.#buffer(
        "align_scratch",
        hiddenAlignScratchFloats({ batch: B, hiddenSize: H, numGroups: G }),
      );
      const out = this.#buffer("align_out", HIDDEN_ALIGN_OUT_FLOATS);
      const normalizer = inputs.normalizers?.hidden_align ?? options.normalizer;
      records.push((pass, acts, cot) =>
        encodeHiddenAlign(this.ctx, pass, {
          hidden: acts.lastHidden,
          anchors: anchorBuf,
          groups: groupBuf,
          correct: correctBuf,
          centroids,
          centroidMask,
          dLastHidden: cot.dLastHidden,
          scratch,
          out,
          batch: B,
          seqLen: T,
          hiddenSize: H,
          numGroups: G,
          type: options.type,
          normalizer,
          weight,
        })
      );
      reads.push(() => ({ buffer: out, offset: 0, size: 4 * HIDDEN_ALIGN_OUT_FLOATS }));
      finishers.push((bytes) => {
        const metrics = hiddenAlignMetrics(new Float32Array(bytes));
        return { value: weight * metrics["align/loss"], grad: {}, metrics };
      });
    }

    if (sftSpec) {
      // Linear in the log-probs: d loss / d lp = −weight · mask / normalizer, added to the
      // cotangent; the value comes from the step's log-probs, read back with the scalars.
      const options = (sftSpec.options ?? {}) as SftConfig;
      const weight = sftSpec.weight ?? 1;
      const width = B * (T - 1);
      checkLength(WHERE, "lossMask", inputs.lossMask, width, "[batch, seqLen − 1]");
      const tokens = checkMask(WHERE, "lossMask", inputs.lossMask!);
      const normalizer = inputs.normalizers?.sft ?? options.normalizer ?? tokens;
      if (!(Number.isFinite(normalizer) && normalizer >= 0)) {
        throw new RangeError(
          `${WHERE}: the "sft" normalizer must be a finite number > 0: current value is ` +
            `${normalizer}`,
        );
      }
      const wide = new Float32Array(n);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t + 1 < T; t++) wide[b * T + t] = inputs.lossMask![b * (T - 1) + t];
      }
      const mask = this.#upload("sft_mask", wide);
      const scale = normalizer > 0 ? -weight / normalizer : 0;
      records.push((pass, _acts, cot) =>
        encodeAdd(this.ctx, pass, { x: mask, y: cot.dLogprobs, n, alpha: scale, accumulate: true })
      );
      reads.push((acts) => ({ buffer: acts.logprobs, offset: 0, size: 4 * n }));
      finishers.push((bytes) => {
        const lp = new Float32Array(bytes);
        let sum = 0;
        for (let i = 0; i < n; i++) if (wide[i] !== 0) sum += lp[i];
        const nll = normalizer > 0 ? -sum / normalizer : 0;
        return {
          value: weight * nll,
          grad: {},
          metrics: { "loss/nll": nll, "loss/tokens": tokens },
        };
      });
    }

    const lossMask = inputs.lossMask;
    return {
      cotangents: {
        logprobs: pgSpec !== undefined || sftSpec !== undefined,
        lastHidden: alignSpec !== undefined,
      },
      hook: (pass, acts, cot) => {
        for (const record of records) record(pass, acts, cot);
      },
      reads: (acts) => [
        ...reads.map((r) => r(acts)),
        { buffer: acts.entropy, offset: 0, size: 4 * n },
      ],
      finish: (bytes) => {
        let value = 0;
        const metrics: Record<string, number> = {};
        finishers.forEach((f, i) => {
          const out = f(bytes[i]);
          value += out.value;
          Object.assign(metrics, out.metrics);
        });
        if (lossMask !== undefined) {
          const all = new Float32Array(bytes[finishers.length]);
          const entropy = new Float32Array(B * (T - 1));
          for (let b = 0; b < B; b++) {
            entropy.set(all.subarray(b * T, b * T + T - 1), b * (T - 1));
          }
          Object.assign(metrics, entropyMetrics(entropy, lossMask));
        }
        return { value, grad: {}, metrics };
      },
    };
  }

  /** Frees the kept buffers. */
  dispose(): void {
    for (const b of this.#buffers.values()) this.ctx.release(b);
    this.#buffers.clear();
  }
}
