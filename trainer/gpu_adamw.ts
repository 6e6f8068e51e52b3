/**
 * AdamW that lives on the GPU with the model: the same update as the host chain `adamw()`
 * (optional global-norm clipping, Adam moments, decoupled weight decay on the tensors the mask
 * names, a learning-rate schedule over updates), run by the `grad_norm` and `adamw` kernels
 * over the model's own parameter and gradient buffers, with its moments in GPU buffers. One
 * update is one submit and one readback of two scalars (the gradient norm and the clip scale);
 * the gradients are zeroed by the same kernels, ready for the next accumulation. The moments come
 * back to the host only when asked ({@linkcode GpuAdamw.readState}, for a checkpoint).
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { createAdamwHyper, encodeAdamw } from "../kernels/adamw/adamw.ts";
import {
  encodeGradNorm,
  GRAD_NORM_OUT_FLOATS,
  gradNormPartialCount,
} from "../kernels/grad_norm/grad_norm.ts";
import type { GpuParameter } from "../model/qwen3_webgpu_backward.ts";
import type { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import type { TrainMode } from "./backend.ts";
import type { AdamwOptions } from "./optim/adamw.ts";
import type { ScaleByAdamState } from "./optim/scale_by_adam.ts";
import type { ParamTree } from "./types.ts";

const WHERE = "Cannot run the GPU AdamW";

/** Maps the piece states of a chain state (an array), checking there is one Adam piece. */
function mapChain<S>(state: S, f: (piece: Record<string, unknown>) => unknown): S {
  if (!Array.isArray(state)) {
    throw new TypeError(`${WHERE}: the optimizer state must be an adamw() chain's array of states`);
  }
  const adam = state.filter((p) => p !== null && typeof p === "object" && "mu" in p).length;
  if (adam !== 1) {
    throw new TypeError(
      `${WHERE}: the optimizer state must hold one Adam piece ({ count, mu, nu }): found ${adam}`,
    );
  }
  return state.map((p) => (p !== null && typeof p === "object" ? f(p) : p)) as S;
}

/** One trainable buffer with its moments. */
interface Slot extends GpuParameter {
  m: GPUBuffer;
  v: GPUBuffer;
  decayed: boolean;
}

/**
 * AdamW over a WebGPU model's trainable tensors of one mode (see the module doc).
 *
 * @example Five updates of LoRA adapters
 * ```ts ignore
 * import { GpuAdamw } from "./gpu_adamw.ts";
 * declare const model: import("../model/qwen3_webgpu.ts").WebGpuQwen3;
 * const opt = new GpuAdamw(model, "adapters", { lr: 1e-4, maxGradNorm: 1 });
 * for (let i = 0; i < 5; i++) {
 *   // ... accumulate gradients with model.runTrainStep(..., { accumulate: true }) ...
 *   console.log(await opt.update()); // { "optim/grad_norm": …, "optim/clip_scale": …, "optim/lr": … }
 * }
 * ```
 */
export class GpuAdamw {
  /** The model whose buffers are updated. */
  readonly model: WebGpuQwen3;
  /** Which tensors train. */
  readonly mode: TrainMode;
  #ctx: GpuContext;
  #slots: Slot[];
  #lr: (step: number) => number;
  #b1: number;
  #b2: number;
  #eps: number;
  #wd: number;
  #maxNorm: number | undefined;
  #partials: GPUBuffer;
  #out: GPUBuffer;
  #hyperDecay: GPUBuffer;
  #hyperPlain: GPUBuffer;
  #count = 0;

  /**
   * Allocates the moments (zeros) next to the model's parameters.
   *
   * @param model The model (its gradient buffers are made if needed).
   * @param mode `"adapters"` (LoRA matrices) or `"full"` (every weight).
   * @param options As the host `adamw()`: lr (or schedule over updates), b1, b2, eps,
   * weightDecay, decayMask (by tensor name), maxGradNorm.
   * @throws {RangeError} On an option out of range (as `adamw()`).
   */
  constructor(model: WebGpuQwen3, mode: TrainMode, options: AdamwOptions) {
    this.model = model;
    this.mode = mode;
    this.#ctx = model.ctx;
    const { lr, b1 = 0.9, b2 = 0.999, eps = 1e-8, weightDecay = 0.01, maxGradNorm } = options;
    const rule = (ok: boolean, name: string, what: string, value: unknown) => {
      if (!ok) {
        throw new RangeError(
          `${WHERE}: option "${name}" must be ${what}: current value is ${value}`,
        );
      }
    };
    rule(b1 >= 0 && b1 < 1, "b1", "in [0, 1)", b1);
    rule(b2 >= 0 && b2 < 1, "b2", "in [0, 1)", b2);
    rule(Number.isFinite(eps) && eps >= 0, "eps", "a finite number ≥ 0", eps);
    rule(Number.isFinite(weightDecay) && weightDecay >= 0, "weightDecay", "≥ 0", weightDecay);
    if (maxGradNorm !== undefined) {
      rule(Number.isFinite(maxGradNorm) && maxGradNorm > 0, "maxGradNorm", "> 0", maxGradNorm);
    }
    if (typeof lr === "number") rule(Number.isFinite(lr) && lr >= 0, "lr", "≥ 0", lr);
    this.#lr = typeof lr === "number" ? () => lr : lr;
    [this.#b1, this.#b2, this.#eps, this.#wd, this.#maxNorm] = [
      b1,
      b2,
      eps,
      weightDecay,
      maxGradNorm,
    ];
    const mask = options.decayMask ?? (() => true);
    const ctx = this.#ctx;
    this.#slots = model.gradients(mode).map((p, i) => ({
      ...p,
      m: ctx.createBuffer(4 * p.n, `adamw.m${i}`),
      v: ctx.createBuffer(4 * p.n, `adamw.v${i}`),
      decayed: mask(p.name),
    }));
    const enc = ctx.device.createCommandEncoder({ label: "adamw init" });
    for (const s of this.#slots) {
      enc.clearBuffer(s.m);
      enc.clearBuffer(s.v);
    }
    ctx.device.queue.submit([enc.finish()]);
    this.#partials = ctx.createBuffer(
      4 * Math.max(1, gradNormPartialCount(this.#slots.map((s) => s.n))),
      "adamw.norm_partials",
    );
    this.#out = ctx.createBuffer(4 * GRAD_NORM_OUT_FLOATS, "adamw.norm_out");
    this.#hyperDecay = createAdamwHyper(ctx, "adamw.hyper_decay");
    this.#hyperPlain = createAdamwHyper(ctx, "adamw.hyper_plain");
  }

  /** Updates done so far (the bias corrections and the schedule use it). */
  get count(): number {
    return this.#count;
  }

  /**
   * One update from the gradients accumulated in the model's gradient buffers (times
   * `gradScale`): global norm and clip scale (one readback), then AdamW on every tensor with the
   * gradients zeroed (submitted, not awaited). A non-finite norm skips the AdamW part: the
   * parameters, moments, gradients and count stay as they were, and `optim/skipped` is 1.
   *
   * @param options `gradScale`: a known factor of the accumulated gradients (e.g. 1 / k); default 1.
   * @returns `optim/grad_norm` (of the scaled gradients, before clipping), `optim/clip_scale`,
   * `optim/lr` — the host chain's metric keys.
   * @throws {RangeError} If the schedule gives a non-finite or negative learning rate.
   */
  async update(options: { gradScale?: number } = {}): Promise<Record<string, number>> {
    const gradScale = options.gradScale ?? 1;
    const lr = this.#lr(this.#count);
    if (!(Number.isFinite(lr) && lr >= 0)) {
      throw new RangeError(
        `${WHERE}: the learning-rate schedule must give a finite number ≥ 0 at update ` +
          `${this.#count}: current value is ${lr}`,
      );
    }
    const done = this.model.acquire("update the parameters");
    try {
      const ctx = this.#ctx;
      // The norm first (its readback is the update's one): a non-finite gradient leaves the
      // parameters and moments as they are.
      let enc = ctx.device.createCommandEncoder({ label: "grad norm" });
      let pass = enc.beginComputePass({ label: "grad norm" });
      encodeGradNorm(ctx, pass, {
        grads: this.#slots.map((s) => ({ grad: s.grad, n: s.n })),
        partials: this.#partials,
        out: this.#out,
        maxNorm: this.#maxNorm,
        gradScale,
      });
      pass.end();
      const [bytes] = await readback(ctx, [{ buffer: this.#out, offset: 0, size: 8 }], enc, {
        what: `GPU AdamW update ${this.#count + 1}: the gradient norm`,
      });
      const [scale, norm] = new Float32Array(bytes);
      const metrics = {
        "optim/grad_norm": norm,
        "optim/clip_scale": this.#maxNorm === undefined ? 1 : scale,
        "optim/lr": lr,
      };
      if (!Number.isFinite(norm)) return { ...metrics, "optim/skipped": 1 };
      const step = this.#count + 1;
      enc = ctx.device.createCommandEncoder({ label: "adamw" });
      pass = enc.beginComputePass({ label: "adamw" });
      for (const s of this.#slots) {
        encodeAdamw(ctx, pass, {
          param: { buffer: s.param, offset: s.paramOffset, size: 4 * s.n },
          grad: s.grad,
          m: s.m,
          v: s.v,
          n: s.n,
          hyper: s.decayed ? this.#hyperDecay : this.#hyperPlain,
          lr,
          b1: this.#b1,
          b2: this.#b2,
          eps: this.#eps,
          weightDecay: s.decayed ? this.#wd : 0,
          step,
          gradScale,
          clipScale: this.#maxNorm === undefined ? undefined : this.#out,
          zeroGrad: true,
        });
      }
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
      this.#count = step;
      return metrics;
    } finally {
      done();
    }
  }

  /**
   * The host `adamw()` chain's state with this optimizer's moments and update count in place of
   * `template`'s (its `{ count, mu, nu }` piece and every `{ count }` piece, e.g. the learning
   * rate's), for a checkpoint that the host optimizer can resume from too: one readback.
   *
   * @param template A state of the same `adamw()` chain (e.g. its `init`).
   * @returns A new state; `template` is not changed.
   * @throws {TypeError} If `template` is not an array of piece states with one Adam piece.
   */
  async chainState<S>(template: S): Promise<S> {
    const moments = await this.readState();
    return mapChain(
      template,
      (piece) =>
        "mu" in piece ? moments : "count" in piece ? { ...piece, count: this.#count } : piece,
    );
  }

  /**
   * Takes the moments and update count from a host `adamw()` chain state (e.g. restored from a
   * checkpoint).
   *
   * @param state The chain's state.
   * @throws {TypeError} If it has no Adam piece; {@linkcode GpuAdamw.writeState}'s errors.
   */
  loadChainState(state: unknown): void {
    let adam: ScaleByAdamState | undefined;
    mapChain(state, (piece) => {
      if ("mu" in piece) adam = piece as unknown as ScaleByAdamState;
      return piece;
    });
    this.writeState(adam!);
  }

  /**
   * The moments as the host `scaleByAdam` keeps them (by tensor name, whole tensors), e.g. for a
   * checkpoint: one readback.
   *
   * @returns `{ count, mu, nu }`.
   */
  async readState(): Promise<ScaleByAdamState> {
    const ranges = this.#slots.flatMap((s) => [
      { buffer: s.m, offset: 0, size: 4 * s.n },
      { buffer: s.v, offset: 0, size: 4 * s.n },
    ]);
    const bytes = await readback(this.#ctx, ranges, undefined, {
      what: "GPU AdamW moments, for a checkpoint",
    });
    const mu: ParamTree = {};
    const nu: ParamTree = {};
    const size = new Map<string, number>();
    for (const s of this.#slots) size.set(s.name, Math.max(size.get(s.name) ?? 0, s.offset + s.n));
    this.#slots.forEach((s, i) => {
      mu[s.name] ??= new Float32Array(size.get(s.name)!);
      nu[s.name] ??= new Float32Array(size.get(s.name)!);
      mu[s.name].set(new Float32Array(bytes[2 * i]), s.offset);
      nu[s.name].set(new Float32Array(bytes[2 * i + 1]), s.offset);
    });
    return { count: this.#count, mu, nu };
  }

  /**
   * Sets the moments and the update count (e.g. from a checkpoint's host state).
   *
   * @param state `{ count, mu, nu }` with every trained tensor, whole.
   * @throws {RangeError} If a tensor is missing or has the wrong length.
   */
  writeState(state: ScaleByAdamState): void {
    const q = this.#ctx.device.queue;
    for (const s of this.#slots) {
      for (const [key, buf] of [["mu", s.m], ["nu", s.v]] as const) {
        const t = state[key][s.name];
        if (t === undefined || t.length < s.offset + s.n) {
          throw new RangeError(
            `${WHERE}: state.${key} must hold "${s.name}" with ≥ ${s.offset + s.n} values: ` +
              `current length is ${t?.length}`,
          );
        }
        q.writeBuffer(buf, 0, t as Float32Array<ArrayBuffer>, s.offset, s.n);
      }
    }
    this.#count = state.count;
  }

  /** Frees the moments and scratch (the model's buffers stay). */
  dispose(): void {
    for (const s of this.#slots) {
      this.#ctx.release(s.m);
      this.#ctx.release(s.v);
    }
    this.#ctx.release(this.#partials);
    this.#ctx.release(this.#out);
    this.#hyperDecay.destroy();
    this.#hyperPlain.destroy();
  }
}
