import { ok, rejects, strictEqual } from "node:assert/strict";
import { createGpu } from "./device.ts";
import { noGpu } from "./test_utils.ts";

Deno.test("createGpu() without an adapter says what to install", async () => {
  const fakeGpu = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
  await rejects(
    () => createGpu({ gpu: fakeGpu }),
    (e: Error) => /no adapter was found/.test(e.message) && /llvmpipe/.test(e.message),
  );
});

Deno.test({
  name: "createGpu() names a required limit the adapter cannot give",
  ignore: noGpu,
  async fn() {
    await rejects(
      () => createGpu({ requiredLimits: { maxStorageBufferBindingSize: 2 ** 52 } }),
      (e: Error) =>
        e instanceof RangeError && /"maxStorageBufferBindingSize" must be at least/.test(e.message),
    );
  },
});

Deno.test("createGpu() asks for at most Number.MAX_SAFE_INTEGER of a limit the adapter reports as u64::MAX", async () => {
  const fake = fakeGpu({ maxStorageBufferBindingSize: 2 ** 31 - 1, maxBufferSize: 2 ** 64 }, true);
  const gpu = await createGpu({ gpu: fake.gpu });
  const asked = fake.asked();
  strictEqual(asked.maxBufferSize, Number.MAX_SAFE_INTEGER);
  strictEqual(asked.maxStorageBufferBindingSize, 2 ** 31 - 1);
  strictEqual(gpu.maxBufferSize, Number.MAX_SAFE_INTEGER);
  for (const [name, value] of Object.entries(asked)) {
    ok(Number.isSafeInteger(value) && value >= 0, `${name} = ${value}`);
  }
});

Deno.test("createGpu() asks for and records at most 2^32 - 4 bytes of storage binding (kernels index with u32)", async () => {
  // Metal under wgpu 30 advertises maxBufferSize as the binding limit (gfx-rs/wgpu#10305); a
  // device may report better limits than were asked for: the record is capped anyway.
  const big = 14_302_248_960;
  const fake = fakeGpu({ maxStorageBufferBindingSize: big, maxBufferSize: big }, false);
  const fakeGpuApi = fake.gpu;
  const gpu = await createGpu({ gpu: fakeGpuApi });
  const asked = fake.asked();
  strictEqual(asked.maxStorageBufferBindingSize, 2 ** 32 - 4);
  strictEqual(gpu.maxBindingSize, 2 ** 32 - 4);
  strictEqual(asked.maxBufferSize, big);
  strictEqual(gpu.maxBufferSize, big);
  // Asking for a binding past what u32 indices reach is an error naming the limit.
  await rejects(
    () => createGpu({ gpu: fakeGpuApi, requiredLimits: { maxStorageBufferBindingSize: 2 ** 32 } }),
    (e: Error) =>
      e instanceof RangeError &&
      /"maxStorageBufferBindingSize" must be at least 4294967296/.test(e.message) &&
      /u32/.test(e.message),
  );
  // Exactly the cap is fine.
  const capped = await createGpu({
    gpu: fakeGpuApi,
    requiredLimits: { maxStorageBufferBindingSize: 2 ** 32 - 4 },
  });
  strictEqual(capped.maxBindingSize, 2 ** 32 - 4);
});

/**
 * A stand-in `navigator.gpu` whose one adapter reports these storage limits (and fixed others);
 * its device reports the adapter's limits, overridden by what was asked for when `withAsked`.
 * `asked()` gives the limits the last `requestDevice` asked for.
 */
function fakeGpu(
  storage: { maxStorageBufferBindingSize: number; maxBufferSize: number },
  withAsked: boolean,
): { gpu: GPU; asked: () => Record<string, number> } {
  const limits: Record<string, number> = {
    ...storage,
    maxStorageBuffersPerShaderStage: 10,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupSizeX: 1024,
    maxComputeWorkgroupsPerDimension: 65535,
  };
  let asked: Record<string, number> = {};
  const adapter = {
    limits,
    info: { description: "fake", vendor: "", architecture: "", isFallbackAdapter: false },
    features: new Set<string>(),
    requestDevice: (d: { requiredLimits: Record<string, number> }) => {
      asked = d.requiredLimits;
      return Promise.resolve({ limits: withAsked ? { ...limits, ...asked } : { ...limits } });
    },
  };
  const gpu = { requestAdapter: () => Promise.resolve(adapter) } as unknown as GPU;
  return { gpu, asked: () => asked };
}
