// WebGpuQwen3's forward workspace under concurrent calls and out of memory: forward and
// tokenLogprobs wait (on the allocation check) only when they allocate a new workspace, and then
// record on the workspace current after the wait.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
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
  name: "WebGpuQwen3 forward names a workspace buffer that runs out of memory when it allocates it",
  ignore: noGpu,
  async fn() {
    const oom = new Set<string>();
    await withFixtureModel(oom, async (model, ctx) => {
      model.releaseWorkspaces();
      oom.add("logits");
      const before = ctx.readbacks;
      await expectError(() => model.forward(SHORT), {
        type: GpuOutOfMemoryError,
        includes: ['allocating "logits"', "found while allocating the forward workspace for 3"],
      });
      strictEqual(ctx.readbacks, before, "found before any work was submitted and read back");
    });
  },
});
