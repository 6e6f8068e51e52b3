/**
 * Throughput of the fused AdamW kernel (and the grad-norm reduction) for 1M and 10M parameters.
 *
 * Napkin math: one AdamW update reads param, grad, m, v and writes param, m, v, i.e. 28 bytes
 * per parameter (32 with `zeroGrad`); grad_norm reads 4 bytes per parameter. Both are purely
 * memory-bound, so achieved GB/s against the card's bandwidth is the figure of merit (H100 SXM:
 * ~3.35 TB/s; llvmpipe: the host's DRAM bandwidth at best). The baseline is a buffer copy moving
 * the same bytes (14 bytes per parameter copied = 28 read + written).
 *
 * `deno bench --allow-read --allow-env bench/optim_bench.ts` runs Deno.bench (time per batch of
 * `BATCH` updates); `deno run --allow-read --allow-env bench/optim_bench.ts` prints
 * GB/s directly. Both print the adapter first; record it with every number.
 *
 * @module
 */
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { createAdamwHyper, encodeAdamw } from "../kernels/adamw/adamw.ts";
import {
  encodeGradNorm,
  GRAD_NORM_OUT_FLOATS,
  gradNormPartialCount,
} from "../kernels/grad_norm/grad_norm.ts";

const SIZES = [1_000_000, 10_000_000];
const ADAMW_BYTES_PER_PARAM = 28;

const ctx = new GpuContext(await createGpu());
const software = ctx.gpu.isFallbackAdapter ||
  /llvmpipe|lavapipe|swiftshader/i.test(ctx.gpu.description);
console.log(`adapter: ${ctx.gpu.description}${software ? " (software)" : ""}`);

/**
 * Updates recorded into one submit per Deno.bench iteration, so that the ≥10 ms GPU→CPU sync
 * stays small against the work (10M params on an H100: ~0.1 ms per update). `deno run` mode
 * calibrates its own batch instead.
 */
const BATCH: number = software ? 2 : 200;

interface Setup {
  n: number;
  adamw: (batch: number) => Promise<void>;
  gradNorm: (batch: number) => Promise<void>;
  copy: (batch: number) => Promise<void>;
}

function setup(n: number): Setup {
  const buf = (label: string) => ctx.createBuffer(4 * n, label);
  const [param, grad, m, v] = [buf("param"), buf("grad"), buf("m"), buf("v")];
  const hyper = createAdamwHyper(ctx);
  const partials = ctx.createBuffer(4 * gradNormPartialCount([n]), "partials");
  const out = ctx.createBuffer(4 * GRAD_NORM_OUT_FLOATS, "out");
  const copyBytes = Math.ceil((ADAMW_BYTES_PER_PARAM / 2) * n / 4) * 4;
  const src = ctx.createBuffer(copyBytes, "copy src");
  const dst = ctx.createBuffer(copyBytes, "copy dst");
  const run = async (record: (enc: GPUCommandEncoder) => void): Promise<void> => {
    const enc = ctx.device.createCommandEncoder();
    record(enc);
    ctx.device.queue.submit([enc.finish()]);
    await ctx.device.queue.onSubmittedWorkDone();
  };
  const inPass = (body: (pass: GPUComputePassEncoder) => void) => (enc: GPUCommandEncoder) => {
    const pass = enc.beginComputePass();
    body(pass);
    pass.end();
  };
  return {
    n,
    adamw: (batch) =>
      run(inPass((pass) => {
        for (let i = 0; i < batch; i++) {
          encodeAdamw(ctx, pass, {
            param,
            grad,
            m,
            v,
            n,
            hyper,
            lr: 1e-4,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            weightDecay: 0.01,
            step: 1,
          });
        }
      })),
    gradNorm: (batch) =>
      run(inPass((pass) => {
        for (let i = 0; i < batch; i++) {
          encodeGradNorm(ctx, pass, { grads: [{ grad, n }], partials, out, maxNorm: 1 });
        }
      })),
    copy: (batch) =>
      run((enc) => {
        for (let i = 0; i < batch; i++) enc.copyBufferToBuffer(src, 0, dst, 0, copyBytes);
      }),
  };
}

const setups = SIZES.map(setup);

function label(n: number): string {
  return `${n / 1e6}M params`;
}

/** Milliseconds per update: the batch doubles until one submit takes ≥ 200 ms, best of 3. */
async function measure(fn: (batch: number) => Promise<void>): Promise<number> {
  await fn(1); // warm-up: pipelines, bind groups
  let batch = 1;
  let ms = 0;
  for (;;) {
    const t0 = performance.now();
    await fn(batch);
    ms = performance.now() - t0;
    if (ms >= 200 || batch >= 4096) break;
    batch *= 2;
  }
  let best = ms / batch;
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    await fn(batch);
    best = Math.min(best, (performance.now() - t0) / batch);
  }
  return best;
}

if (import.meta.main) {
  for (const s of setups) {
    for (
      const [name, fn, bytesPerParam] of [
        ["adamw", s.adamw, ADAMW_BYTES_PER_PARAM],
        ["grad_norm", s.gradNorm, 4],
        ["copy baseline", s.copy, ADAMW_BYTES_PER_PARAM],
      ] as const
    ) {
      const ms = await measure(fn);
      const gbps = (bytesPerParam * s.n) / (ms * 1e-3) / 1e9;
      console.log(
        `${name.padEnd(14)} ${label(s.n).padEnd(12)} ${ms.toFixed(3)} ms/update  ` +
          `${gbps.toFixed(1)} GB/s (${bytesPerParam} B/param)`,
      );
    }
  }
} else {
  for (const s of setups) {
    const group = `optim ${label(s.n)}`;
    const opts = { group, n: 5, warmup: 1 };
    const copy = () => s.copy(BATCH);
    Deno.bench(
      `copy ${ADAMW_BYTES_PER_PARAM} B/param x${BATCH}`,
      { ...opts, baseline: true },
      copy,
    );
    Deno.bench(`adamw ${ADAMW_BYTES_PER_PARAM} B/param x${BATCH}`, opts, () => s.adamw(BATCH));
    Deno.bench(`grad_norm 4 B/param x${BATCH}`, opts, () => s.gradNorm(BATCH));
  }
}
