import { rejects } from "node:assert/strict";
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
