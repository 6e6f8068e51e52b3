import assert from "node:assert/strict";
import { noGpu } from "./test_utils.ts";
import { createGpu } from "./device.ts";
import { GpuContext } from "./context.ts";
import { GpuDeviceLostError } from "./errors.ts";
import { readback } from "./readback.ts";

Deno.test({
  name:
    "readback on a destroyed device throws GpuDeviceLostError, and the context then fails at once",
  ignore: noGpu,
  async fn() {
    const ctx = new GpuContext(await createGpu()); // its own device: this test destroys it
    const x = ctx.upload(new Float32Array([1, 2, 3, 4]), "x");
    assert.deepEqual(
      new Float32Array((await readback(ctx, [{ buffer: x, offset: 0, size: 16 }]))[0]),
      new Float32Array([1, 2, 3, 4]),
    );
    const lost = () => ctx.gpu.lost; // read again after each await
    assert.equal(lost(), null);
    ctx.device.destroy();
    // Deno rejects the map with a bare "validation error occurred" before `lost` resolves.
    const isLost = (e: unknown) => {
      assert.ok(e instanceof GpuDeviceLostError, String(e));
      assert.match(e.message, /^The GPU device was lost \(destroyed: /);
      assert.match(e.message, /while reading back "x"/);
      assert.match(e.message, /last one is intact: rerun the same command with --resume$/);
      assert.equal(e.reason, "destroyed");
      return true;
    };
    await assert.rejects(
      () => readback(ctx, [{ buffer: x, offset: 0, size: 16 }]),
      // Found by the failed map (its rejection is the cause), not by a check before it.
      (e: Error) => isLost(e) && /validation error occurred/.test(String(e.cause)),
    );
    assert.equal(lost()?.reason, "destroyed");
    const readbacks = ctx.readbacks;
    await assert.rejects(() => readback(ctx, [{ buffer: x, offset: 0, size: 16 }]), isLost);
    assert.equal(ctx.readbacks, readbacks, "no submit once the device is known lost");
    assert.throws(() => ctx.createBuffer(16, "y"), /lost \(destroyed.*while allocating "y"/);
    assert.throws(() => ctx.upload(new Float32Array(4), "z"), GpuDeviceLostError);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const code = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(1) fn main() { o[0] = 1.0; }`;
    assert.throws(
      () => ctx.dispatch(pass, ctx.pipeline("one", code), [x], [1, 1, 1]),
      /while recording "one"/,
    );
  },
});
