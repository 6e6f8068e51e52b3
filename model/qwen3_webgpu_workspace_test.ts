// WebGpuQwen3's forward workspace under concurrent calls and out of memory: forward and
// tokenLogprobs wait (on the allocation check) only when they allocate a new workspace, and then
// record on the workspace current after the wait.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { GpuOutOfMemoryError } from "../gpu/errors.ts";
import { noGpu, outOfMemoryGpu } from "../gpu/test_utils.ts";
import { expectError, fixtureDir } from "../internal/test_utils.ts";
import { loadModel } from "./load_model.ts";
import type { WebGpuQwen3 } from "./qwen3_webgpu.ts";

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
      // Submits of recorded work (an upload flush submits nothing).
      let submits = 0;
      const queue = ctx.device.queue;
      const submit = queue.submit.bind(queue);
      queue.submit = (buffers) => {
        if ([...buffers].length > 0) submits++;
        submit(buffers);
      };
      let readbacks = ctx.readbacks;
      const nothingRan = () => {
        strictEqual(submits, 0, "found before any work was submitted");
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
        submits = 0;
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
      queue.submit = submit;
    });
  },
});
