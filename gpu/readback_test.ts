import assert from "node:assert/strict";
import { noGpu, testContext } from "./test_utils.ts";
import { createGpu, type Gpu } from "./device.ts";
import { GpuContext } from "./context.ts";
import { GpuDeviceLostError } from "./errors.ts";
import { DEFAULT_MAX_STAGING_BYTES, readback, type ReadbackRange } from "./readback.ts";

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
      assert.match(
        e.message,
        /last one is intact: rerun `deno task train` with --resume; `deno task eval` continues/,
      );
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

/** The context's device behind a proxy that records the sizes of the staging buffers made. */
function watchedContext(
  gpu: Gpu,
  staging: number[],
  invalidStaging = false,
): GpuContext {
  const device = new Proxy(gpu.device, {
    get(target, prop) {
      if (prop === "createBuffer") {
        return (d: GPUBufferDescriptor) => {
          if (!d.label?.startsWith("readback")) return target.createBuffer(d);
          staging.push(d.size);
          const size = invalidStaging ? target.limits.maxBufferSize + 4 : d.size;
          return target.createBuffer({ ...d, size });
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return new GpuContext({ ...gpu, device });
}

Deno.test({
  name: "readback splits the ranges over staging buffers of at most maxStagingBytes, bytes intact",
  ignore: noGpu,
  async fn() {
    const shared = (await testContext())!;
    const data = [40, 100, 8, 0, 28].map((n, k) =>
      Int32Array.from({ length: n / 4 }, (_, i) => (k + 1) * 1000003 + i * 7919)
    );
    const buffers = data.map((d, k) => shared.upload(d, `r${k}`));
    // Part of a buffer too: bytes 12..76 of r1.
    const ranges: ReadbackRange[] = [
      ...buffers.map((buffer, k) => ({ buffer, offset: 0, size: data[k].byteLength })),
      { buffer: buffers[1], offset: 12, size: 64 },
    ];
    const expected = [...data.map((d) => [...d]), [...data[1].subarray(3, 19)]];
    const total = ranges.reduce((sum, r) => sum + r.size, 0);
    try {
      for (const cap of [undefined, 4, 12, 16, 44, 64, 1 << 20]) {
        const staging: number[] = [];
        const ctx = watchedContext(shared.gpu, staging);
        const out = await readback(ctx, ranges, undefined, { maxStagingBytes: cap });
        assert.deepEqual(out.map((b) => [...new Int32Array(b)]), expected, `cap ${cap}`);
        assert.equal(ctx.readbacks, 1, "one submit and one wait");
        const limit = cap ?? DEFAULT_MAX_STAGING_BYTES;
        assert.ok(staging.every((n) => n <= limit), `cap ${cap}: staging ${staging}`);
        assert.equal(staging.reduce((a, b) => a + b, 0), total, `cap ${cap}: staging ${staging}`);
        assert.equal(staging.length, Math.ceil(total / Math.min(limit, total)), `cap ${cap}`);
      }
      // The device's maxBufferSize caps them too.
      const small: number[] = [];
      const out = await readback(
        watchedContext({ ...shared.gpu, maxBufferSize: 32 }, small),
        ranges,
      );
      assert.deepEqual(out.map((b) => [...new Int32Array(b)]), expected);
      assert.deepEqual(small, [32, 32, 32, 32, 32, 32, 32, 16]);
      // 16 bytes a buffer: r1 (100 bytes, after r0's 40) lies across seven staging buffers.
      const staging: number[] = [];
      await readback(watchedContext(shared.gpu, staging), ranges, undefined, {
        maxStagingBytes: 18,
      });
      assert.deepEqual(staging.slice(0, 3), [16, 16, 16]);
      await assert.rejects(
        () => readback(shared, ranges, undefined, { maxStagingBytes: 2 }),
        /"maxStagingBytes" must be an integer ≥ 4/,
      );
      await assert.rejects(
        () => readback(shared, [{ buffer: buffers[2], offset: 4, size: 8 }]),
        /"r2": bytes 4\.\.12 exceed its size 8/,
      );
    } finally {
      for (const b of buffers) b.destroy();
    }
  },
});

Deno.test({
  name: "a readback whose map fails says so with the device's errors, not a bare OperationError",
  ignore: noGpu,
  async fn() {
    const gpu = await createGpu(); // its own device: its errors must not reach other tests
    try {
      const staging: number[] = [];
      const ctx = watchedContext(gpu, staging, true); // staging buffers over maxBufferSize
      const x = ctx.upload(new Float32Array([1, 2]), "x");
      await assert.rejects(
        () => readback(ctx, [{ buffer: x, offset: 0, size: 8 }], undefined, { what: "step 3" }),
        (e: Error) => {
          assert.match(e.message, /^Cannot finish reading back "x" \(step 3\): OperationError: /);
          assert.match(e.message, /WebGPU reported: .*greater than the maximum buffer size/);
          assert.ok(!(e instanceof GpuDeviceLostError));
          return true;
        },
      );
      assert.deepEqual(gpu.errors, [], "the errors were reported, not left for the next readback");
    } finally {
      gpu.device.destroy();
    }
  },
});
