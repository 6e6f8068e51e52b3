/**
 * LoRA adapters on the GPU: the `A [r, in]` and `B [out, r]` matrices of every expert of every
 * adapted projection in their own storage buffers (updated in place by a GPU optimizer), their
 * gradient buffers, and the launchers of the LoRA branch `y += Σ_e scale_e·(x·A_eᵀ)·B_eᵀ` and of
 * its backward. {@linkcode GpuLora.read} turns the trained values back into a {@linkcode Lora} for
 * `savePeftAdapter`.
 *
 * @module
 */
import type { GpuContext } from "../gpu/context.ts";
import { readback, type ReadbackRange } from "../gpu/readback.ts";
import { encodeMatmul } from "../kernels/matmul/matmul.ts";
import { encodeMatmulBackward } from "../kernels/matmul/matmul_backward.ts";
import { encodeMatvec } from "../kernels/matvec/matvec.ts";
import { encodeHiloGateRows } from "../kernels/hilo_gate_rows/hilo_gate_rows.ts";
import { encodeMoeRoute, MOE_ROUTE_MAX_EXPERTS } from "../kernels/moe_route/moe_route.ts";
import { encodeMoeRouteBackward } from "../kernels/moe_route/moe_route_backward.ts";
import { encodeMoeBalanceBackward } from "../kernels/moe_route/moe_balance.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { encodeHiloGateBackward } from "../kernels/hilo_gate_backward/hilo_gate_backward.ts";
import {
  encodeHiloGroupedIndex,
  hiloGroupedIndexSize,
} from "../kernels/hilo_grouped/hilo_grouped_index.ts";
import {
  encodeHiloGroupedExpert,
  HILO_GROUPED_MAX_RANK,
} from "../kernels/hilo_grouped/hilo_grouped_expert.ts";
import { encodeHiloGroupedBackward } from "../kernels/hilo_grouped/hilo_grouped_backward.ts";
// Types only: model/ does not import adapters/ (the folder above it).
import {
  type HiloActivation,
  type HiloSettings,
  type Lora,
  type LoraConfig,
  type LoraModule,
  loraTensorName,
  routerTensorName,
} from "./adapter_types.ts";
import type { ProjectionName } from "./tensor_table.ts";

/**
 * PEFT's name of one LoRA matrix: `<module>.lora_A.weight`, or `<module>.experts.<e>.lora_A.weight`
 * when the module has several experts. The same rule as `loraTensorName` of `adapters/lora.ts`,
 * which model/ cannot import; one of the two goes once that name rule moves below model/.
 */
function tensorName(module: GpuLoraModule | LoraModule, matrix: "A" | "B", expert: number): string {
  return loraTensorName(module, { matrix, expert });
}

/** One expert of a {@linkcode GpuLoraModule}. */
export interface GpuLoraExpert {
  /** `A` `[r, in]` row-major (PEFT's `lora_A.weight`). */
  readonly a: GPUBuffer;
  /** `B` `[out, r]` row-major (PEFT's `lora_B.weight`). */
  readonly b: GPUBuffer;
  /** Rank. */
  readonly r: number;
  /** Factor of the expert's output. */
  readonly scale: number;
  /** Gradient of `A`, once {@linkcode GpuLora.ensureGrads} has run; else null. */
  gradA: GPUBuffer | null;
  /** Gradient of `B`, once {@linkcode GpuLora.ensureGrads} has run; else null. */
  gradB: GPUBuffer | null;
}

/** The router of a {@linkcode GpuLoraModule} (HILO). */
export interface GpuLoraRouter {
  /** `W_r` `[E, in]`. */
  readonly weight: GPUBuffer;
  /** `"top-k"` or `"top-p"`. */
  readonly activation: HiloActivation;
  /** k of top-k. */
  readonly topK: number;
  /** Threshold of top-p. */
  readonly topP: number;
  /** Gradient of `W_r`, once {@linkcode GpuLora.ensureGrads} has run; else null. */
  grad: GPUBuffer | null;
}

/** The adapter of one projection on the GPU. */
export interface GpuLoraModule {
  /** HF/PEFT module name, e.g. `"model.layers.0.self_attn.q_proj"`. */
  readonly name: string;
  /** Decoder layer index. */
  readonly layer: number;
  /** Which projection. */
  readonly target: ProjectionName;
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  /** The experts whose outputs are summed. */
  readonly experts: readonly GpuLoraExpert[];
  /** The router that gates the experts per token (HILO), or null (every gate 1). */
  readonly router: GpuLoraRouter | null;
  /**
   * Whether the forward and backward run each routed expert on its own tokens only (grouped
   * dispatch) rather than on every token with zero gates (dense); set from
   * {@linkcode GpuLora.dispatch}.
   */
  grouped: boolean;
}

/**
 * How the forward and backward evaluate a router's experts: `"dense"` runs every expert on every
 * token and the gates zero the unchosen ones (cost ∝ E); `"grouped"` builds per-expert token
 * lists on the GPU (`hilo_grouped_index`, no readback) and runs each expert on its tokens only
 * (`hilo_grouped_expert`, `hilo_grouped_backward`; cost ∝ k, plus the router's ∝ E matmul and one
 * early-exiting launch per expert); `"auto"` takes grouped from
 * {@linkcode HILO_GROUPED_MIN_EXPERTS} experts on.
 */
export type HiloDispatch = "dense" | "grouped" | "auto";

/**
 * Fewest routed experts for which `"auto"` dispatch takes the grouped path. Measured by
 * `bench/hilo_bench.ts` on llvmpipe (docs/results/hilo.md, "Dispatch"): one 1024→1024 projection,
 * 128 tokens, rank 8, top-2, the grouped forward took 0.90× the dense one's speed at E = 2 and
 * 1.17× at E = 4 (7.9× at E = 32); the grouped backward was faster from E = 2 on. A real GPU was
 * not available, so this is the software rasteriser's crossover.
 *
 * @example Which path 16 experts take under "auto"
 * ```ts
 * import { HILO_GROUPED_MIN_EXPERTS } from "./lora_webgpu.ts";
 * console.log(16 >= HILO_GROUPED_MIN_EXPERTS); // true
 * ```
 */
export const HILO_GROUPED_MIN_EXPERTS = 4;

/** Options of the {@linkcode GpuLora} constructor. */
export interface GpuLoraOptions {
  /** How routed experts are evaluated in the forward and backward; default `"auto"`. */
  dispatch?: HiloDispatch;
  /**
   * The operation that holds the adapters' owner now (a generation, a training step, a GPU
   * optimizer's update: `WebGpuQwen3.busyWith`), or null when it is idle; {@linkcode GpuLora.write}
   * refuses while it names one. `WebGpuQwen3.setAdapters` passes its model's; default never busy.
   */
  busy?: () => string | null;
}

/** Floats of the gap before a router's gates in the scratch: 256 bytes, WebGPU's largest offset alignment. */
const GATE_ALIGN = 64;

/** One trainable tensor with its gradient, as a GPU optimizer walks them. */
export interface GpuLoraTensor {
  /** PEFT name without the `base_model.model.` prefix (see `loraTensorName`). */
  name: string;
  /** The values, updated in place by the optimizer. */
  param: GPUBuffer;
  /** The gradient (accumulated by the backward). */
  grad: GPUBuffer;
  /** Number of floats. */
  n: number;
}

/**
 * Adapters uploaded to the GPU. Shapes and scales are fixed at upload; the values change on the
 * GPU (optimizer) or by {@linkcode GpuLora.write}.
 *
 * @example Upload, train on the GPU, save
 * ```ts ignore
 * import { GpuLora } from "./lora_webgpu.ts";
 * import { savePeftAdapter } from "../adapters/peft_io.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const lora: import("../adapters/lora.ts").Lora;
 * const gpu = new GpuLora(ctx, lora);
 * // ... backward and optimizer steps on gpu.tensors() ...
 * await savePeftAdapter("out/adapter", await gpu.read());
 * gpu.dispose();
 * ```
 */
export class GpuLora {
  /** The GPU context holding the buffers. */
  readonly ctx: GpuContext;
  /** The hyperparameters the adapters were made with (carried into {@linkcode GpuLora.read}). */
  readonly config: LoraConfig;
  /** The adapted projections, in the order of the uploaded {@linkcode Lora}. */
  readonly modules: readonly GpuLoraModule[];
  /**
   * Floats per token of the scratch the branch needs: the largest rank of any expert, plus, for a
   * module with a router, four areas of E values each after a 64-float alignment gap (the gates,
   * the balance loss's logit gradient and the grouped dispatch's index of 2 + E values per token
   * at most, at 256-byte-aligned offsets after the rows `x·A_eᵀ`).
   */
  readonly maxRank: number;
  /** The HILO settings carried into {@linkcode GpuLora.read}; absent for PEFT LoRA. */
  readonly hilo?: HiloSettings;
  #byKey = new Map<string, GpuLoraModule>();
  #dispatch: HiloDispatch = "auto";
  #disposed = false;
  #balanceStats = new Map<string, GPUBuffer>();
  #busy: () => string | null;

  /**
   * Uploads every `A` and `B` matrix (the caller checks the adapters fit the model with
   * `checkLoraFits`).
   *
   * @param ctx The GPU context.
   * @param lora The adapters (copied; later changes to its arrays are not seen).
   * @param options How the forward and backward evaluate routed experts; the owner's busy probe.
   * @throws {RangeError} If a router has more than 64 experts, or `"grouped"` is asked for with a
   * routed expert's rank above 64.
   */
  constructor(ctx: GpuContext, lora: Lora, options: GpuLoraOptions = {}) {
    this.ctx = ctx;
    this.config = lora.config;
    if (lora.hilo) this.hilo = lora.hilo;
    for (const m of lora.modules) {
      if (m.router && m.experts.length > MOE_ROUTE_MAX_EXPERTS) {
        throw new RangeError(
          `Cannot upload HILO adapters: module "${m.name}" has ${m.experts.length} routed ` +
            `experts, more than the ${MOE_ROUTE_MAX_EXPERTS} the WebGPU router kernel handles`,
        );
      }
    }
    this.modules = lora.modules.map((m) => {
      const experts = m.experts.map((e, i): GpuLoraExpert => ({
        a: ctx.upload(e.a, tensorName(m, "A", i)),
        b: ctx.upload(e.b, tensorName(m, "B", i)),
        r: e.r,
        scale: e.scale,
        gradA: null,
        gradB: null,
      }));
      const g: GpuLoraModule = {
        name: m.name,
        layer: m.layer,
        target: m.target,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        experts,
        router: m.router
          ? {
            weight: ctx.upload(m.router.weight, routerTensorName(m)),
            activation: m.router.activation,
            topK: m.router.topK,
            topP: m.router.topP,
            grad: null,
          }
          : null,
        grouped: false,
      };
      this.#byKey.set(`${m.layer}/${m.target}`, g);
      return g;
    });
    this.maxRank = Math.max(
      1,
      ...this.modules.map((m) =>
        Math.max(...m.experts.map((e) => e.r)) +
        (m.router ? 4 * (m.experts.length + GATE_ALIGN) : 0)
      ),
    );
    this.dispatch = options.dispatch ?? "auto";
    this.#busy = options.busy ?? (() => null);
  }

  /**
   * How the forward and backward evaluate routed experts (see {@linkcode HiloDispatch});
   * settable, e.g. to compare the two paths on one upload.
   *
   * @example Force the grouped dispatch on a model's adapters
   * ```ts ignore
   * declare const model: import("./qwen3_webgpu.ts").WebGpuQwen3;
   * model.adapters!.dispatch = "grouped";
   * ```
   */
  get dispatch(): HiloDispatch {
    return this.#dispatch;
  }

  /** @throws {RangeError} If `"grouped"` meets a routed expert of rank above 64, or the value is unknown. */
  set dispatch(value: HiloDispatch) {
    if (value !== "dense" && value !== "grouped" && value !== "auto") {
      throw new RangeError(
        `Cannot set the HILO dispatch: "dispatch" must be "dense", "grouped" or "auto": current ` +
          `value is "${value}"`,
      );
    }
    for (const m of this.modules) {
      if (!m.router) continue;
      const rank = Math.max(...m.experts.map((e) => e.r));
      if (value === "grouped" && rank > HILO_GROUPED_MAX_RANK) {
        throw new RangeError(
          `Cannot set the HILO dispatch of "${m.name}" to "grouped": its experts' rank must be at ` +
            `most ${HILO_GROUPED_MAX_RANK}: current value is ${rank}`,
        );
      }
    }
    this.#dispatch = value;
    for (const m of this.modules) {
      const rank = Math.max(...m.experts.map((e) => e.r));
      m.grouped = m.router !== null && (value === "grouped" ||
        (value === "auto" && m.experts.length >= HILO_GROUPED_MIN_EXPERTS &&
          rank <= HILO_GROUPED_MAX_RANK));
    }
  }

  /**
   * The adapter of one projection.
   *
   * @param layer Decoder layer index.
   * @param target The projection.
   * @returns The module, or undefined when that projection has no adapter.
   *
   * @example Does layer 0's q_proj carry an adapter?
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * console.log(gpu.module(0, "q_proj") !== undefined);
   * ```
   */
  module(layer: number, target: ProjectionName): GpuLoraModule | undefined {
    return this.#byKey.get(`${layer}/${target}`);
  }

  /** Coefficient of HILO's load-balancing loss (0 without HILO settings). */
  get balanceCoef(): number {
    return this.hilo?.balanceCoef ?? 0;
  }

  /**
   * The statistics buffer `[2E + 1]` of a routed projection's load-balancing loss (counts,
   * probability sums, real tokens; see `kernels/moe_route/moe_balance.ts`), made on first use.
   *
   * @param layer Decoder layer index.
   * @param target The projection.
   * @returns The buffer, or null when the projection has no router.
   *
   * @example The statistics of layer 1's q projection
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * console.log(gpu.balanceStats(1, "q_proj")?.size);
   * ```
   */
  balanceStats(layer: number, target: ProjectionName): GPUBuffer | null {
    const mod = this.module(layer, target);
    if (!mod?.router) return null;
    const key = `${layer}/${target}`;
    let b = this.#balanceStats.get(key);
    if (!b) {
      b = this.ctx.createBuffer(4 * (2 * mod.experts.length + 1), `balance.${key}`);
      this.#balanceStats.set(key, b);
    }
    return b;
  }

  /**
   * One float: the balance loss of the last training step (summed over its routed projections
   * by `encodeMoeBalanceStats`), made on first use.
   *
   * @returns The buffer.
   *
   * @example Read with a step's other scalars
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * console.log(gpu.balanceTotal.size); // 4
   * ```
   */
  get balanceTotal(): GPUBuffer {
    let b = this.#balanceStats.get("total");
    if (!b) {
      b = this.ctx.createBuffer(4, "balance.total");
      this.#balanceStats.set("total", b);
    }
    return b;
  }

  /** Whether gradient buffers exist (see {@linkcode GpuLora.ensureGrads}). */
  get hasGrads(): boolean {
    return this.modules.length > 0 && this.modules[0].experts[0].gradA !== null;
  }

  /**
   * Allocates zeroed gradient buffers for every matrix (and router), once.
   *
   * @example Make the gradient buffers before recording a backward
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * gpu.ensureGrads();
   * console.log(gpu.hasGrads); // true
   * ```
   */
  ensureGrads(): void {
    this.#checkAlive("allocate gradients");
    for (const m of this.modules) {
      m.experts.forEach((e, i) => {
        e.gradA ??= this.ctx.createBuffer(
          e.a.size,
          `grad.${tensorName(m, "A", i)}`,
        );
        e.gradB ??= this.ctx.createBuffer(
          e.b.size,
          `grad.${tensorName(m, "B", i)}`,
        );
      });
      if (m.router) {
        m.router.grad ??= this.ctx.createBuffer(
          m.router.weight.size,
          `grad.${routerTensorName(m)}`,
        );
      }
    }
  }

  /**
   * Records the zeroing of every gradient buffer (nothing when none exist).
   *
   * @param encoder The command encoder (outside any pass).
   *
   * @example Start a new accumulation
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * const enc = gpu.ctx.device.createCommandEncoder();
   * gpu.zeroGrads(enc);
   * gpu.ctx.device.queue.submit([enc.finish()]);
   * ```
   */
  zeroGrads(encoder: GPUCommandEncoder): void {
    for (const t of this.#gradBuffers()) encoder.clearBuffer(t);
  }

  /**
   * Every matrix with its gradient, for a GPU optimizer (allocates the gradients if needed).
   *
   * @returns One entry per `A` and `B` of every expert, in module order, A before B.
   *
   * @example Count the trainable floats
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * console.log(gpu.tensors().reduce((s, t) => s + t.n, 0));
   * ```
   */
  tensors(): GpuLoraTensor[] {
    this.ensureGrads();
    const out: GpuLoraTensor[] = [];
    for (const m of this.modules) {
      m.experts.forEach((e, i) => {
        const name = (matrix: "A" | "B") => tensorName(m, matrix, i);
        out.push({ name: name("A"), param: e.a, grad: e.gradA!, n: e.a.size / 4 });
        out.push({ name: name("B"), param: e.b, grad: e.gradB!, n: e.b.size / 4 });
      });
      if (m.router) {
        const { weight, grad } = m.router;
        out.push({ name: routerTensorName(m), param: weight, grad: grad!, n: weight.size / 4 });
      }
    }
    return out;
  }

  /**
   * Reads the current values back (one readback) into new adapters with the same config, module
   * layout, ranks and scales, ready for `savePeftAdapter`.
   *
   * @returns The adapters.
   *
   * @example Save what the GPU trained
   * ```ts ignore
   * import { savePeftAdapter } from "../adapters/peft_io.ts";
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * await savePeftAdapter("out/adapter", await gpu.read());
   * ```
   */
  async read(): Promise<Lora> {
    this.#checkAlive("read the adapters");
    const ranges: ReadbackRange[] = [];
    for (const m of this.modules) {
      for (const e of m.experts) {
        ranges.push({ buffer: e.a, offset: 0, size: e.a.size });
        ranges.push({ buffer: e.b, offset: 0, size: e.b.size });
      }
      if (m.router) ranges.push({ buffer: m.router.weight, offset: 0, size: m.router.weight.size });
    }
    const bytes = await readback(this.ctx, ranges, undefined, {
      what: "reading the LoRA adapters",
    });
    let i = 0;
    const modules: LoraModule[] = this.modules.map((m) => {
      const out: LoraModule = {
        name: m.name,
        layer: m.layer,
        target: m.target,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        experts: m.experts.map((e) => ({
          a: new Float32Array(bytes[i++]),
          b: new Float32Array(bytes[i++]),
          r: e.r,
          scale: e.scale,
        })),
      };
      if (m.router) {
        const { activation, topK, topP } = m.router;
        out.router = { weight: new Float32Array(bytes[i++]), activation, topK, topP };
      }
      return out;
    });
    const lora: Lora = { config: this.config, modules };
    if (this.hilo) lora.hilo = this.hilo;
    return lora;
  }

  /**
   * Reads every gradient back (one readback), by tensor name.
   *
   * @returns Gradients keyed like `cpuBackward`'s (`…q_proj.lora_A.weight`).
   * @throws {TypeError} If no gradient buffers exist yet.
   *
   * @example Print a gradient's size
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * const grads = await gpu.readGrads();
   * console.log(grads.get("model.layers.0.self_attn.q_proj.lora_A.weight")?.length);
   * ```
   */
  async readGrads(): Promise<Map<string, Float32Array>> {
    if (!this.hasGrads) {
      throw new TypeError("Cannot read LoRA gradients: none exist yet (run a backward first)");
    }
    const tensors = this.tensors();
    const bytes = await readback(
      this.ctx,
      tensors.map((t) => ({ buffer: t.grad, offset: 0, size: t.n * 4 })),
      undefined,
      { what: "reading the LoRA gradients" },
    );
    return new Map(tensors.map((t, i) => [t.name, new Float32Array(bytes[i])]));
  }

  /**
   * Overwrites the values with those of `lora` (same modules, ranks and scales), e.g. after a
   * CPU optimizer step. Refused while the owner is busy ({@linkcode GpuLoraOptions.busy}: a
   * generation, a training step or a GPU optimizer's update of the model these adapters are set
   * on), which would see the values change half-way.
   *
   * @param lora Adapters with this layout.
   * @throws {RangeError} If a module, expert count or matrix size differs.
   * @throws {Error} If the owner is busy with an operation (naming it).
   *
   * @example Reset the adapters to their initial values
   * ```ts ignore
   * declare const gpu: import("./lora_webgpu.ts").GpuLora;
   * declare const initial: import("../adapters/lora.ts").Lora;
   * gpu.write(initial);
   * ```
   */
  write(lora: Lora): void {
    this.#checkAlive("write the adapters");
    const busy = this.#busy();
    if (busy !== null) {
      throw new Error(
        `Cannot write the adapters: a call to ${busy} on this model is still running; await it ` +
          `first`,
      );
    }
    if (lora.modules.length !== this.modules.length) {
      throw new RangeError(
        `Cannot write LoRA adapters: expected ${this.modules.length} modules: current value has ` +
          `${lora.modules.length}`,
      );
    }
    lora.modules.forEach((m, j) => {
      const g = this.modules[j];
      if (m.name !== g.name || m.experts.length !== g.experts.length) {
        throw new RangeError(
          `Cannot write LoRA adapters: module ${j} must be "${g.name}" with ${g.experts.length} ` +
            `experts: current value is "${m.name}" with ${m.experts.length}`,
        );
      }
      m.experts.forEach((e, i) => {
        const ge = g.experts[i];
        if (e.a.byteLength !== ge.a.size || e.b.byteLength !== ge.b.size) {
          throw new RangeError(
            `Cannot write LoRA adapters: module "${m.name}" expert ${i} must have A of ` +
              `${ge.a.size / 4} and B of ${ge.b.size / 4} values: current lengths are ` +
              `${e.a.length} and ${e.b.length}`,
          );
        }
        this.ctx.device.queue.writeBuffer(ge.a, 0, e.a as Float32Array<ArrayBuffer>);
        this.ctx.device.queue.writeBuffer(ge.b, 0, e.b as Float32Array<ArrayBuffer>);
      });
      if ((m.router === undefined) !== (g.router === null)) {
        throw new RangeError(
          `Cannot write LoRA adapters: module "${m.name}" must ${g.router ? "have" : "have no"} ` +
            `router`,
        );
      }
      if (m.router && g.router) {
        if (m.router.weight.byteLength !== g.router.weight.size) {
          throw new RangeError(
            `Cannot write LoRA adapters: module "${m.name}" router must have ` +
              `${g.router.weight.size / 4} values: current length is ${m.router.weight.length}`,
          );
        }
        this.ctx.device.queue.writeBuffer(
          g.router.weight,
          0,
          m.router.weight as Float32Array<ArrayBuffer>,
        );
      }
    });
  }

  /** Frees every matrix and gradient buffer; the adapters cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const m of this.modules) {
      for (const e of m.experts) {
        for (const b of [e.a, e.b, e.gradA, e.gradB]) if (b) this.ctx.release(b);
        e.gradA = null;
        e.gradB = null;
      }
      if (m.router) {
        this.ctx.release(m.router.weight);
        if (m.router.grad) this.ctx.release(m.router.grad);
        m.router.grad = null;
      }
    }
    this.#releaseStats();
    this.ctx.clearBindGroups();
  }

  #gradBuffers(): GPUBuffer[] {
    return this.modules.flatMap((m) =>
      [...m.experts.flatMap((e) => [e.gradA, e.gradB]), m.router?.grad ?? null].filter(
        (b): b is GPUBuffer => b !== null,
      )
    );
  }

  #releaseStats(): void {
    for (const b of this.#balanceStats.values()) this.ctx.release(b);
    this.#balanceStats.clear();
  }

  #checkAlive(what: string): void {
    if (this.#disposed) {
      throw new TypeError(`Cannot ${what}: the GPU adapters were disposed`);
    }
  }
}

/** Arguments of {@linkcode encodeLoraForward}. */
export interface LoraForwardArgs {
  /** The adapter. */
  module: GpuLoraModule;
  /** Input `[m, inFeatures]`. */
  x: GPUBuffer;
  /** Output `[m, outFeatures]`, added to (it holds the base projection). */
  y: GPUBuffer;
  /** Rows. */
  m: number;
  /** Scratch of at least `m · maxRank` floats for `x·A_eᵀ`. */
  scratch: GPUBuffer;
  /**
   * Compute `x·A_eᵀ` with the matvec kernel (skinny shapes: a few rows, as in decoding);
   * default false (the tiled matmul).
   */
  matvec?: boolean;
  /**
   * Row stride of `y` in floats, for a projection whose output is columns `yCol ..` of a wider
   * one (a fused q|k|v or gate|up output); default `outFeatures`. Only for a module without a
   * router.
   */
  ldy?: number;
  /** First column of `y` the projection's output occupies; default 0 (see `ldy`). */
  yCol?: number;
}

/**
 * Records `y += Σ_e scale_e·(x·A_eᵀ)·B_eᵀ`: two matmuls per expert (the first a matvec with
 * `matvec`), the second accumulating with `alpha = scale_e`. With a HILO router, first the
 * router logits `x·W_rᵀ` into the scratch's gate area and the in-place routing (`moe_route`:
 * softmax, top-k / top-p, renormalised gates), then each expert's rows `x·A_eᵀ` are multiplied by
 * its gate (`hilo_gate_rows`) before the up projection: a dense evaluation of every expert.
 * With `module.grouped` (see {@linkcode HiloDispatch}) the routing is followed instead by the
 * per-expert token lists (`hilo_grouped_index`, after the gates in the scratch) and one
 * `hilo_grouped_expert` dispatch per expert over its own tokens: the same sum, cost ∝ k tokens'
 * worth of experts instead of E.
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args The adapter, operands and scratch.
 *
 * @example Add the adapter of a projection to its base output
 * ```ts ignore
 * import { encodeLoraForward } from "./lora_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, y: GPUBuffer, u: GPUBuffer;
 * declare const module: import("./lora_webgpu.ts").GpuLoraModule;
 * encodeLoraForward(ctx, pass, { module, x, y, m: 32, scratch: u });
 * ```
 */
export function encodeLoraForward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LoraForwardArgs,
): void {
  const { module: mod, x, y, m, scratch } = args;
  const down = args.matvec ? encodeMatvec : encodeMatmul;
  const rt = mod.router;
  const E = mod.experts.length;
  if (rt && (args.ldy !== undefined || args.yCol !== undefined)) {
    throw new TypeError(
      `Cannot record the HILO branch of "${mod.name}": options "ldy" and "yCol" (an output ` +
        `inside a wider one) are only for modules without a router`,
    );
  }
  let gateOffset = 0;
  if (rt) {
    gateOffset = gateOffsetOf(ctx, mod, m);
    if (scratch.size < 4 * (gateOffset + m * E)) {
      throw new RangeError(
        `Cannot record the HILO branch of "${mod.name}": "scratch" must hold at least ` +
          `${gateOffset + m * E} floats (rows, aligned gap, gates): current size is ` +
          `${scratch.size / 4} floats`,
      );
    }
    const gates = { buffer: scratch, offset: gateOffset * 4, size: m * E * 4 };
    down(ctx, pass, { x, w: rt.weight, y: gates, m, n: E, k: mod.inFeatures });
    encodeMoeRoute(ctx, pass, {
      buffer: scratch,
      offset: gateOffset,
      m,
      experts: E,
      activation: rt.activation,
      topK: rt.topK,
      topP: rt.topP,
    });
    if (mod.grouped) {
      const indexOffset = alignUp(ctx, gateOffset + m * E);
      const need = indexOffset + hiloGroupedIndexSize(m, E);
      if (scratch.size < 4 * need) {
        throw new RangeError(
          `Cannot record the grouped HILO branch of "${mod.name}": "scratch" must hold at least ` +
            `${need} floats (rows, gates, index): current size is ${scratch.size / 4} floats`,
        );
      }
      encodeHiloGroupedIndex(ctx, pass, {
        buffer: scratch,
        gateOffset,
        indexOffset,
        m,
        experts: E,
      });
      for (const [i, e] of mod.experts.entries()) {
        encodeHiloGroupedExpert(ctx, pass, {
          x,
          a: e.a,
          b: e.b,
          y,
          buffer: scratch,
          gateOffset,
          indexOffset,
          m,
          inFeatures: mod.inFeatures,
          outFeatures: mod.outFeatures,
          r: e.r,
          experts: E,
          expert: i,
          scale: e.scale,
        });
      }
      return;
    }
  }
  for (const [i, e] of mod.experts.entries()) {
    down(ctx, pass, { x, w: e.a, y: scratch, m, n: e.r, k: mod.inFeatures });
    if (rt) {
      encodeHiloGateRows(ctx, pass, {
        buffer: scratch,
        gateOffset,
        m,
        r: e.r,
        experts: E,
        expert: i,
      });
    }
    encodeMatmul(ctx, pass, {
      x: scratch,
      w: e.b,
      y,
      m,
      n: mod.outFeatures,
      k: e.r,
      alpha: e.scale,
      accumulate: true,
      ldy: args.ldy,
      yCol: args.yCol,
    });
  }
}

/** Arguments of {@linkcode encodeLoraBackward}. */
export interface LoraBackwardArgs {
  /** The adapter (its gradient buffers must exist: {@linkcode GpuLora.ensureGrads}). */
  module: GpuLoraModule;
  /** The forward's input `[m, inFeatures]`. */
  x: GPUBuffer;
  /** Gradient of the projection's output `[m, outFeatures]`. */
  dy: GPUBuffer;
  /** Gradient of `x`, added to (it holds the base projection's); omit when nobody needs it. */
  dx?: GPUBuffer;
  /** Rows. */
  m: number;
  /** Scratch of at least `m · maxRank` floats for `u = x·A_eᵀ` (recomputed here) and gates. */
  u: GPUBuffer;
  /** Scratch of at least `m · maxRank` floats for `du` and the gates' gradient. */
  du: GPUBuffer;
  /**
   * HILO's load-balancing loss: its coefficient, this projection's statistics over the step's
   * tokens (written by `encodeMoeBalanceStats` before the backward) and the token mask `[m]`
   * (u32); omit for none.
   */
  balance?: { coef: number; stats: GPUBuffer; mask: GPUBuffer };
}

/**
 * Records the backward of the LoRA branch, adding into the gradients: per expert, with
 * `u = x·A_eᵀ` recomputed, `dB += scale·dyᵀ·u`, `du = scale·dy·B`, `dA += duᵀ·x` and
 * `dx += du·A`. With a HILO router the gates are recomputed into `u`'s gate area (router matmul
 * and `moe_route`); per expert `du = scale·dy·B`, then `hilo_gate_backward` writes
 * `dg_e = Σ du·u` into `du`'s gate area and multiplies `du` and `u` by the gate, so
 * `dB += scale·dyᵀ·(g ⊙ u)` and the down projection's backward take the gated rows; finally
 * `moe_route_backward` turns `dg` into the logits' gradient `dz = g ⊙ (dg − Σ g·dg)` and the
 * router's matmul backward adds `dW_r += dzᵀ·x` and `dx += dz·W_r`. With `balance`, the balance
 * loss's logit gradient (`moe_balance_backward`, from logits recomputed into `u`'s second area)
 * is added to `dz` first. With `module.grouped` the expert loop is replaced by the token lists
 * (`hilo_grouped_index` into `u`'s index area) and one `encodeHiloGroupedBackward` per expert
 * over its own tokens (gated rows and `dg`, then `dB`, `dA` and `dx` gathered through the list);
 * `dg` of unselected experts is left unwritten, which `moe_route_backward` ignores (g = 0).
 *
 * @param ctx The GPU context.
 * @param pass The compute pass being recorded.
 * @param args The adapter, operands, gradients and scratch.
 * @throws {TypeError} If the module's gradient buffers do not exist.
 *
 * @example Backward of an adapted projection after its base matmul backward
 * ```ts ignore
 * import { encodeLoraBackward } from "./lora_webgpu.ts";
 * declare const ctx: import("../gpu/context.ts").GpuContext;
 * declare const pass: GPUComputePassEncoder, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer;
 * declare const u: GPUBuffer, du: GPUBuffer;
 * declare const module: import("./lora_webgpu.ts").GpuLoraModule;
 * encodeLoraBackward(ctx, pass, { module, x, dy, dx, m: 32, u, du });
 * ```
 */
export function encodeLoraBackward(
  ctx: GpuContext,
  pass: GPUComputePassEncoder,
  args: LoraBackwardArgs,
): void {
  const { module: mod, x, dy, dx, m, u, du } = args;
  const [inF, outF] = [mod.inFeatures, mod.outFeatures];
  const rt = mod.router;
  const balance = rt && args.balance && args.balance.coef !== 0 ? args.balance : null;
  let balanceOffset = 0;
  let indexOffset = 0;
  const E = mod.experts.length;
  let gateOffset = 0;
  if (rt) {
    if (!rt.grad) {
      throw new TypeError(
        `Cannot record the LoRA backward of "${mod.name}": its router's gradient buffer does not ` +
          `exist (call ensureGrads first)`,
      );
    }
    gateOffset = gateOffsetOf(ctx, mod, m);
    balanceOffset = alignUp(ctx, gateOffset + m * E);
    const need = balance ? balanceOffset + m * E : gateOffset + m * E;
    for (const [name, b] of [["u", u], ["du", du]] as const) {
      if (b.size < 4 * need) {
        throw new RangeError(
          `Cannot record the HILO backward of "${mod.name}": "${name}" must hold at least ` +
            `${need} floats (rows, aligned gap, gates${balance ? ", balance area" : ""}): ` +
            `current size is ${b.size / 4} floats`,
        );
      }
    }
    // Recompute the gates into u's gate area.
    const logits = { buffer: u, offset: gateOffset * 4, size: m * E * 4 };
    encodeMatmul(ctx, pass, { x, w: rt.weight, y: logits, m, n: E, k: inF });
    encodeMoeRoute(ctx, pass, {
      buffer: u,
      offset: gateOffset,
      m,
      experts: E,
      activation: rt.activation,
      topK: rt.topK,
      topP: rt.topP,
    });
    indexOffset = balance ? alignUp(ctx, balanceOffset + m * E) : balanceOffset;
    if (mod.grouped) {
      const need = indexOffset + hiloGroupedIndexSize(m, E);
      if (u.size < 4 * need) {
        throw new RangeError(
          `Cannot record the grouped HILO backward of "${mod.name}": "u" must hold at least ` +
            `${need} floats (rows, gates${balance ? ", balance area" : ""}, index): current ` +
            `size is ${u.size / 4} floats`,
        );
      }
    }
    if (balance) {
      // The balance loss's logit gradient, from the logits recomputed into u's second area.
      const area = { buffer: u, offset: balanceOffset * 4, size: m * E * 4 };
      encodeMatmul(ctx, pass, { x, w: rt.weight, y: area, m, n: E, k: inF });
      encodeMoeBalanceBackward(ctx, pass, {
        buffer: u,
        offset: balanceOffset,
        mask: balance.mask,
        stats: balance.stats,
        m,
        experts: E,
        coef: balance.coef,
      });
    }
  }
  if (rt && mod.grouped) {
    // Each expert on its own tokens: gated rows, dg, dB, dA and dx over the token lists.
    encodeHiloGroupedIndex(ctx, pass, { buffer: u, gateOffset, indexOffset, m, experts: E });
    for (const [i, e] of mod.experts.entries()) {
      if (!e.gradA || !e.gradB) {
        throw new TypeError(
          `Cannot record the LoRA backward of "${mod.name}": its gradient buffers do not exist ` +
            `(call ensureGrads first)`,
        );
      }
      encodeHiloGroupedBackward(ctx, pass, {
        x,
        a: e.a,
        b: e.b,
        dy,
        dx,
        gradA: e.gradA,
        gradB: e.gradB,
        u,
        du,
        gateOffset,
        indexOffset,
        m,
        inFeatures: inF,
        outFeatures: outF,
        r: e.r,
        experts: E,
        expert: i,
        scale: e.scale,
      });
    }
  }
  for (const [i, e] of (rt && mod.grouped ? [] : mod.experts).entries()) {
    if (!e.gradA || !e.gradB) {
      throw new TypeError(
        `Cannot record the LoRA backward of "${mod.name}": its gradient buffers do not exist ` +
          `(call ensureGrads first)`,
      );
    }
    encodeMatmul(ctx, pass, { x, w: e.a, y: u, m, n: e.r, k: inF });
    if (rt) {
      // du = scale·dy·B; then dg_e = Σ du·u, du *= g_e, u *= g_e; then dB += scale·dyᵀ·(g ⊙ u).
      encodeMatmulBackward(ctx, pass, { dy, m, n: outF, k: e.r, w: e.b, dx: du, alpha: e.scale });
      encodeHiloGateBackward(ctx, pass, {
        u,
        du,
        gateOffset,
        dgOffset: gateOffset,
        m,
        r: e.r,
        experts: E,
        expert: i,
      });
      encodeMatmulBackward(ctx, pass, {
        dy,
        m,
        n: outF,
        k: e.r,
        x: u,
        dw: e.gradB,
        accumulateDw: true,
        alpha: e.scale,
      });
    } else {
      // Up projection y += scale·u·Bᵀ: dB += scale·dyᵀ·u and du = scale·dy·B.
      encodeMatmulBackward(ctx, pass, {
        dy,
        m,
        n: outF,
        k: e.r,
        x: u,
        w: e.b,
        dx: du,
        dw: e.gradB,
        accumulateDw: true,
        alpha: e.scale,
      });
    }
    // Down projection u = x·Aᵀ: dA += duᵀ·x and dx += du·A.
    encodeMatmulBackward(ctx, pass, {
      dy: du,
      m,
      n: e.r,
      k: inF,
      x,
      w: e.a,
      dx,
      accumulateDx: true,
      dw: e.gradA,
      accumulateDw: true,
    });
  }
  if (rt) {
    // dz = g ⊙ (dg − Σ g·dg) over du's gate-gradient area; dW_r += dzᵀ·x, dx += dz·W_r.
    encodeMoeRouteBackward(ctx, pass, {
      gates: u,
      gateOffset,
      d: du,
      offset: gateOffset,
      m,
      experts: E,
    });
    if (balance) {
      encodeAdd(ctx, pass, {
        x: { buffer: u, offset: balanceOffset * 4, size: m * E * 4 },
        y: { buffer: du, offset: gateOffset * 4, size: m * E * 4 },
        n: m * E,
        accumulate: true,
      });
    }
    encodeMatmulBackward(ctx, pass, {
      dy: { buffer: du, offset: gateOffset * 4, size: m * E * 4 },
      m,
      n: E,
      k: inF,
      x,
      w: rt.weight,
      dx,
      accumulateDx: true,
      dw: rt.grad!,
      accumulateDw: true,
    });
  }
}

/** Where a module's gates follow the rows `x·A_eᵀ` in the scratch: an offset the device can bind. */
function gateOffsetOf(ctx: GpuContext, mod: GpuLoraModule, m: number): number {
  return alignUp(ctx, m * Math.max(...mod.experts.map((e) => e.r)));
}

/** The next element offset at or after `n` that the device can bind. */
function alignUp(ctx: GpuContext, n: number): number {
  const align = ctx.device.limits.minStorageBufferOffsetAlignment / 4;
  return Math.ceil(n / align) * align;
}
