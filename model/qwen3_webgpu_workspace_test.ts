// WebGpuQwen3's forward workspace under concurrent calls and out of memory: forward and
// tokenLogprobs wait (on the allocation check) only when they allocate a new workspace, and then
// record on the workspace current after the wait.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { GpuOutOfMemoryError } from "../gpu/errors.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, outOfMemoryGpu } from "../gpu/test_utils.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import { SPLIT_K_SCRATCH } from "../kernels/matmul/matmul.ts";
import type { Qwen3Config } from "./config.ts";
import { initQwen3Weights } from "./init.ts";
import { loadModel } from "./load_model.ts";
import { WebGpuQwen3 } from "./qwen3_webgpu.ts";

const SHORT = { inputIds: [[5, 6, 7]] };
const LONG = {
  inputIds: [[5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6, 7, 8]],
  outputHiddenStates: true,
};

/**
 * Runs `fn` on the fixture model on a real device whose buffers labelled in `oom` run out of
 * memory (outOfMemoryGpu); the device is destroyed after.
 */
async function withFixtureModel(
  oom: ReadonlySet<string>,
  fn: (model: WebGpuQwen3, ctx: GpuContext) => Promise<void>,
): Promise<void> {
  const gpu = await outOfMemoryGpu(oom);
  const ctx = new GpuContext(gpu);
  try {
    const model = await loadModel(fixtureDir(), { backend: "webgpu", gpu: ctx, warn: false });
    await fn(model as WebGpuQwen3, ctx);
  } finally {
    gpu.device.destroy();
  }
}

Deno.test({
  name:
    "WebGpuQwen3 forward/tokenLogprobs running concurrently while workspaces grow or are released equal sequential calls bit for bit",
  ignore: noGpu,
  fn: () =>
    withFixtureModel(new Set(), async (model, ctx) => {
      const short = (await model.forward(SHORT)).logits;
      const long = await model.forward(LONG);
      const logprobs = await model.tokenLogprobs({ inputIds: LONG.inputIds });
      // The short call allocates (and waits); the long one grows the workspace, freeing the
      // short call's, during that wait.
      model.releaseWorkspaces();
      const [a, b] = await Promise.all([model.forward(SHORT), model.forward(LONG)]);
      deepStrictEqual(a.logits, short);
      deepStrictEqual(b.logits, long.logits);
      deepStrictEqual(b.hiddenStates, long.hiddenStates);
      // The workspace released during the short call's wait.
      model.releaseWorkspaces();
      const pending = model.forward(SHORT);
      model.releaseWorkspaces();
      deepStrictEqual((await pending).logits, short);
      // tokenLogprobs and forward together, both allocating.
      model.releaseWorkspaces();
      const [t, f] = await Promise.all([
        model.tokenLogprobs({ inputIds: LONG.inputIds }),
        model.forward(SHORT),
      ]);
      deepStrictEqual(t, logprobs);
      deepStrictEqual(f.logits, short);
      deepStrictEqual(ctx.gpu.errors, []);
      // A reused workspace: the call records and submits before it returns its promise.
      const submit = ctx.device.queue.submit.bind(ctx.device.queue);
      let submits = 0;
      ctx.device.queue.submit = (buffers) => {
        submits++;
        submit(buffers);
      };
      const reused = model.forward(SHORT);
      ok(submits > 0, "a reused workspace recorded without yielding");
      deepStrictEqual((await reused).logits, short);
      model.dispose();
    }),
});

Deno.test({
  name: "WebGpuQwen3 forward and training steps name a workspace or upload buffer that runs out " +
    "of memory when they allocate it, before submitting or writing anything, and run again once " +
    "it is freed",
  ignore: noGpu,
  async fn() {
    const oom = new Set<string>();
    await withFixtureModel(oom, async (model, ctx) => {
      model.setAdapters(await loadPeftAdapter(`${fixtureDir()}/adapter`, model.config));
      const step = (inputIds: number[][]) =>
        model.backward({ inputIds }, {
          mode: "adapters",
          dLogprobs: inputIds.flatMap((row) => row.slice(1).map((_, t) => 1 / (t + 1))),
        });
      const short = (await model.forward(SHORT)).logits;
      const small = await step(SHORT.inputIds);
      model.releaseWorkspaces();
      const queue = ctx.device.queue;
      const submits = countSubmits(queue);
      let readbacks = ctx.readbacks;
      const nothingRan = () => {
        strictEqual(submits.count, 0, "found before any work was submitted");
        strictEqual(ctx.readbacks, readbacks, "found before any readback");
      };
      oom.add("logits");
      await expectError(() => model.forward(SHORT), {
        type: GpuOutOfMemoryError,
        includes: ['allocating "logits"', "found while allocating the forward workspace for 3"],
      });
      nothingRan();
      // The failed workspace was freed: with the memory back, the model runs again.
      oom.delete("logits");
      deepStrictEqual((await model.forward(SHORT)).logits, short);
      // A LONG training step whose buffer `label` does not fit fails before any work, naming it
      // (`size`: its size as the error writes it); then a SHORT step equals the undisturbed one
      // with no device errors.
      const failsThenRecovers = async (label: string, size: string) => {
        submits.reset();
        readbacks = ctx.readbacks;
        oom.add(label);
        await expectError(() => step(LONG.inputIds), {
          type: GpuOutOfMemoryError,
          includes: [
            `allocating "${label}" (${size}`,
            `found while allocating the training step's workspace for 16 tokens (mode "adapters")`,
          ],
        });
        nothingRan();
        oom.delete(label);
        await queue.onSubmittedWorkDone();
        const after = await step(SHORT.inputIds);
        deepStrictEqual(after.grads, small.grads);
        deepStrictEqual(after.logprobs, small.logprobs);
        await queue.onSubmittedWorkDone();
        deepStrictEqual(ctx.gpu.errors, []);
      };
      // The gate activations ([16 tokens, 128] floats).
      await failsThenRecovers("train.gate", "8.00 KiB (8192 bytes))");
      // The cotangent upload (backward()'s own buffer, 16 floats): nothing may have been written
      // into it, or the write's validation error would surface at the next, healthy step.
      await failsThenRecovers("dLogprobs (upload)", "64 bytes");
      // encodeTrainStep checks its workspace before it records into the caller's encoder too,
      // and frees it: the same SHORT step recorded afterwards gives the same log-probs.
      const encodeStep = (enc: GPUCommandEncoder, inputIds: number[][]) =>
        model.encodeTrainStep(enc, { inputIds }, { mode: "adapters", lossHook: () => {} });
      oom.add("train.gate");
      await expectError(() => encodeStep(ctx.device.createCommandEncoder(), LONG.inputIds), {
        type: GpuOutOfMemoryError,
        includes: [
          'allocating "train.gate"',
          `found while allocating the training step's workspace for 16 tokens (mode "adapters")`,
        ],
      });
      oom.delete("train.gate");
      const enc = ctx.device.createCommandEncoder();
      const { acts } = await encodeStep(enc, SHORT.inputIds);
      const [lp] = await readback(ctx, [{ buffer: acts.logprobs, offset: 0, size: 8 }], enc);
      deepStrictEqual(new Float32Array(lp), small.logprobs);
      await queue.onSubmittedWorkDone();
      deepStrictEqual(ctx.gpu.errors, []);
      submits.restore();
    });
  },
});

/**
 * Counts `queue`'s submits of recorded work (an upload flush submits nothing) until `restore()`.
 */
function countSubmits(queue: GPUQueue): { readonly count: number; reset(): void; restore(): void } {
  let count = 0;
  const submit = queue.submit.bind(queue);
  queue.submit = (buffers) => {
    if ([...buffers].length > 0) count++;
    submit(buffers);
  };
  return {
    get count() {
      return count;
    },
    reset() {
      count = 0;
    },
    restore() {
      queue.submit = submit;
    },
  };
}

/** A one-layer model over a 1,024-token vocabulary, of `maxPositionEmbeddings` positions. */
function vocab1024Config(maxPositionEmbeddings: number): Qwen3Config {
  return {
    vocabSize: 1024,
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 16,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    maxPositionEmbeddings,
    tieWordEmbeddings: true,
    eosTokenIds: [1023],
    bosTokenId: null,
    padTokenId: null,
  };
}

Deno.test({
  name: "A training step on a hardware adapter names split-K scratch that runs out of memory at " +
    "its readback and frees it, so the same step then gives the undisturbed gradients, each " +
    "step with one readback; found by the next step's check instead, it takes the first " +
    "step's errors, so the retry reads back cleanly",
  ignore: noGpu,
  async fn() {
    // A 1,024-token vocabulary: the LM head's dx [3, 32] over it splits K on a hardware adapter
    // (4 splits of 256), the only product that does here.
    const config = vocab1024Config(16);
    const oom = new Set<string>();
    const gpu = await outOfMemoryGpu(oom);
    const hardware = { ...gpu, isFallbackAdapter: false };
    try {
      const weights = initQwen3Weights(config, { seed: 1 });
      const step = (model: WebGpuQwen3) =>
        model.backward(SHORT, { mode: "full", dLogprobs: [1, -0.5] });
      // The same step undisturbed, on a model whose dispose() frees the context's scratch too.
      const ctx = new GpuContext(hardware);
      const first = new WebGpuQwen3(ctx, config, weights);
      const want = await step(first);
      first.dispose();
      const model = new WebGpuQwen3(ctx, config, weights);
      const readbacks = ctx.readbacks;
      const queue = ctx.device.queue;
      const submits = countSubmits(queue);
      // The scratch is made while recording, after the workspace's check: the step's readback
      // names it.
      oom.add(`scratch ${SPLIT_K_SCRATCH}`);
      await expectError(() => step(model), {
        type: GpuOutOfMemoryError,
        includes: [
          // 4 splits · [3, 32] floats = 1,536 bytes: a 2 KiB buffer.
          `allocating "scratch ${SPLIT_K_SCRATCH}" (2.00 KiB (2048 bytes))`,
          `found while reading back`,
          `train step (full) of 1×3 tokens`,
        ],
      });
      ok(submits.count > 0, "the step was submitted before its readback found it");
      strictEqual(ctx.readbacks, readbacks + 1, "found at the step's one readback");
      oom.delete(`scratch ${SPLIT_K_SCRATCH}`);
      // The check that reported the scratch freed it: the same step makes it again and gives
      // the undisturbed gradients, with one readback.
      const got = await step(model);
      deepStrictEqual(got.grads, want.grads);
      deepStrictEqual(got.logprobs, want.logprobs);
      strictEqual(ctx.readbacks, readbacks + 2, "one readback per step");
      await queue.onSubmittedWorkDone();
      deepStrictEqual(ctx.gpu.errors, []);
      // A caller that accumulates micro-batches records and submits each without a readback:
      // the scratch of the first is found by the next one's check before it records, which
      // takes the validation errors of the first's work, so the documented retry (zeroGrads,
      // then the steps again) reads back cleanly. (A new model: dispose() freed the scratch.)
      model.dispose();
      const accumulating = new WebGpuQwen3(ctx, config, weights);
      const accumulate = {
        mode: "full" as const,
        cotangents: { logprobs: true, lastHidden: false },
        lossHook: () => {},
        accumulate: true,
      };
      oom.add(`scratch ${SPLIT_K_SCRATCH}`);
      const enc1 = ctx.device.createCommandEncoder();
      await accumulating.encodeTrainStep(enc1, SHORT, accumulate);
      queue.submit([enc1.finish()]);
      oom.delete(`scratch ${SPLIT_K_SCRATCH}`);
      await expectError(
        () => accumulating.encodeTrainStep(ctx.device.createCommandEncoder(), SHORT, accumulate),
        { type: GpuOutOfMemoryError, includes: [`allocating "scratch ${SPLIT_K_SCRATCH}"`] },
      );
      accumulating.zeroGrads();
      const enc3 = ctx.device.createCommandEncoder();
      const { acts } = await accumulating.encodeTrainStep(enc3, SHORT, accumulate);
      const [lp] = await readback(ctx, [{ buffer: acts.logprobs, offset: 0, size: 8 }], enc3);
      deepStrictEqual(new Float32Array(lp), want.logprobs);
      deepStrictEqual(ctx.gpu.errors, []);
      submits.restore();
    } finally {
      gpu.device.destroy();
    }
  },
});

Deno.test({
  name: "A training step whose workspace fails its binding-size check part-way frees the buffers " +
    "it made before it",
  ignore: noGpu,
  async fn() {
    // 128 tokens over a 1,024-token vocabulary under a 256 KiB binding: "train.logits" (one
    // head block of 64 rows, 256 KiB) fits, "train.d_logits" (512 KiB), made after it, does not.
    const config = vocab1024Config(128);
    const gpu = await outOfMemoryGpu(new Set());
    try {
      const ctx = new GpuContext({ ...gpu, maxBindingSize: 256 * 1024 });
      const model = new WebGpuQwen3(ctx, config, initQwen3Weights(config, { seed: 1 }));
      await ctx.checkAllocations();
      const before = ctx.allocatedBytes;
      const inputIds = [Array.from({ length: 128 }, (_, t) => t + 1)];
      await expectError(
        () =>
          model.encodeTrainStep(ctx.device.createCommandEncoder(), { inputIds }, {
            mode: "full",
            cotangents: { logprobs: false, lastHidden: false, logits: true },
            lossHook: () => {},
          }),
        {
          type: RangeError,
          includes: ['buffer "train.d_logits" for 128 tokens needs 524288 bytes'],
        },
      );
      strictEqual(ctx.allocatedBytes, before, "the buffers made before it were freed");
    } finally {
      gpu.device.destroy();
    }
  },
});
