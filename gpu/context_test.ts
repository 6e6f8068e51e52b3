import assert from "node:assert/strict";
import { noGpu, outOfMemoryGpu, recordPass, testContext } from "./test_utils.ts";
import { recordingGpu } from "./recording_gpu.ts";
import { destroyMatrix, uploadMatrix } from "./matrix.ts";
import { DEFAULT_FILL_WORKGROUPS, f32Bits, GpuContext } from "./context.ts";
import { createGpu, type Gpu } from "./device.ts";
import { GpuOutOfMemoryError, GpuPipelineError } from "./errors.ts";
import { readback } from "./readback.ts";

Deno.test({
  name: "GpuContext counts allocated and peak bytes, whoever frees the buffer",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const base = ctx.allocatedBytes;
    ctx.resetPeak();
    const a = ctx.createBuffer(1000, "a");
    const b = ctx.upload(new Float32Array(6), "b"); // 24 bytes
    const m = uploadMatrix(ctx, { name: "m", data: new Float32Array(64), rows: 8, cols: 8 }, {
      maxChunkBytes: 64,
    });
    assert.equal(ctx.allocatedBytes - base, 1000 + 24 + 256);
    ctx.release(a);
    ctx.release(a); // twice is harmless
    b.destroy(); // a plain destroy() is counted too
    destroyMatrix(m);
    assert.equal(ctx.allocatedBytes, base);
    assert.equal(ctx.peakBytes - base, 1280);
    ctx.resetPeak();
    assert.equal(ctx.peakBytes, base);
  },
});

Deno.test({
  name: "GpuContext bounds its uniform and bind-group caches (a per-step value does not grow them)",
  ignore: noGpu,
  async fn() {
    const shared = (await testContext())!;
    const ctx = new GpuContext(shared.gpu, { maxUniforms: 4, maxBindGroups: 6 });
    const code = `struct Params { x: f32 }
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(1) fn main() { o[0] += p.x; }`;
    const out = ctx.createBuffer(4, "out");
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const pipeline = ctx.pipeline("add_param", code);
    let most = 0;
    // 1 + 2 + … + 10: ten distinct uniform blocks, each a new bind group.
    for (let step = 1; step <= 10; step++) {
      ctx.dispatch(pass, pipeline, [out], [1, 1, 1], [f32Bits(step)]);
      const sizes = ctx.cacheSizes;
      most = Math.max(most, sizes.uniforms);
      assert.ok(sizes.bindGroups <= 6, `bind groups ${sizes.bindGroups} > 6`);
    }
    pass.end();
    // Dropped blocks are still valid in the recorded pass: the sum is exact.
    const [bytes] = await readback(ctx, [{ buffer: out, offset: 0, size: 4 }], enc);
    assert.equal(new Float32Array(bytes)[0], 55);
    assert.equal(most, 4);
    assert.equal(ctx.cacheSizes.pipelines, 1);
    assert.throws(() => new GpuContext(shared.gpu, { maxUniforms: 0 }), /"maxUniforms"/);
    ctx.release(out);
  },
});

Deno.test("GpuContext fills 8 workgroups on a software adapter, 256 on a hardware one", () => {
  // No device is touched: the context only reads the adapter's kind here.
  const gpu = (isFallbackAdapter: boolean) => ({ isFallbackAdapter }) as unknown as Gpu;
  assert.equal(new GpuContext(gpu(true)).fillWorkgroups, DEFAULT_FILL_WORKGROUPS.software);
  assert.equal(new GpuContext(gpu(false)).fillWorkgroups, DEFAULT_FILL_WORKGROUPS.hardware);
  assert.deepEqual(DEFAULT_FILL_WORKGROUPS, { software: 8, hardware: 256 });
  assert.equal(new GpuContext(gpu(true), { fillWorkgroups: 64 }).fillWorkgroups, 64);
  assert.throws(() => new GpuContext(gpu(false), { fillWorkgroups: 0.5 }), /"fillWorkgroups"/);
});

Deno.test("GpuContext submits the queue after every uploadFlushBytes written, and settleUploads waits once", async () => {
  const { gpu, calls } = recordingGpu();
  const N = 1000;
  const ctx = new GpuContext(gpu, { uploadFlushBytes: N });
  const sizes = [12, 400, 4, 800, 1200, 0, 64, 8, 996, 4, 300];
  for (const [i, n] of sizes.entries()) ctx.upload(new Float32Array(n / 4), `b${i}`);
  ctx.uniform([1, 2, 3]); // a uniform block counts too (16 bytes)
  const total = sizes.reduce((a, b) => a + b, 0) + 16;
  let since = 0;
  let largest = 0;
  for (const c of calls) {
    if (c.op === "write") {
      since += c.bytes.length;
      largest = Math.max(largest, since);
    } else if (c.op === "submit") {
      assert.equal(c.buffers, 0, "an empty submit");
      assert.ok(since >= N, `a submit after only ${since} bytes`);
      since = 0;
    }
  }
  assert.ok(largest < N + 1200, `${largest} bytes written without a submit`);
  const submits = calls.filter((c) => c.op === "submit").length;
  assert.ok(submits >= Math.floor(total / (N + 1200)) && submits >= 3, `${submits} submits`);
  assert.equal(calls.filter((c) => c.op === "write").length, sizes.length, "0 bytes: no write");
  assert.ok(!calls.some((c) => c.op === "wait"), "no wait before settleUploads");
  await ctx.settleUploads();
  assert.deepEqual(calls.slice(-2), [{ op: "submit", buffers: 0 }, { op: "wait" }]);
  const n = calls.length;
  await ctx.settleUploads(); // nothing new written: no submit, no wait
  assert.equal(calls.length, n);
  assert.throws(() => new GpuContext(gpu, { uploadFlushBytes: 0 }), /"uploadFlushBytes"/);
});

Deno.test("checkAllocations, settleUploads and readback name the buffer that ran out of memory", async () => {
  const { gpu } = recordingGpu(1 << 20, ["kv cache"]);
  const ctx = new GpuContext(gpu);
  ctx.createBuffer(1000, "weights");
  await ctx.checkAllocations(); // nothing failed yet
  ctx.createBuffer(4096, "kv cache");
  ctx.uniform([1, 2]);
  ctx.upload(new Float32Array(4), "after");
  const isOom = (e: unknown) => {
    assert.ok(e instanceof GpuOutOfMemoryError, String(e));
    assert.match(
      e.message,
      /^Out of GPU memory allocating "kv cache" \(4\.00 KiB \(4096 bytes\)\)/,
    );
    assert.match(e.message, /with 1000 bytes already allocated by halo on recording stand-in/);
    assert.match(e.message, /not enough memory left/);
    for (const hint of ["micro-batch", "f16", "rl.gpuMemoryBudget", "HALO_GPU_MEMORY"]) {
      assert.ok(e.message.includes(hint), `no "${hint}" in: ${e.message}`);
    }
    assert.deepEqual(
      { ...e.failure, message: undefined, stage: undefined },
      {
        label: "kv cache",
        bytes: 4096,
        allocatedBytes: 1000,
        message: undefined,
        adapter: "recording stand-in",
        stage: undefined,
      },
    );
    return true;
  };
  await assert.rejects(() => ctx.checkAllocations("testing"), (e: Error) => {
    return isOom(e) && e.message.includes("(found while testing)");
  });
  await assert.rejects(() => ctx.settleUploads(), isOom);
  // readback checks the allocations after its submit (nothing may wait between a caller's
  // recording and its submit), which this stand-in cannot do: the next test covers readback on a
  // real device.
  // uploadMatrix allocates through the context: the error names the row block.
  const m = new GpuContext(recordingGpu(1 << 20, ["emb[2:]"]).gpu);
  uploadMatrix(m, { name: "emb", data: new Float32Array(24), rows: 6, cols: 4 }, {
    maxChunkBytes: 32,
  });
  await assert.rejects(
    () => m.settleUploads(),
    (e: Error) =>
      e instanceof GpuOutOfMemoryError &&
      /allocating "emb\[2:\]" \(32 bytes\) with 32 bytes/.test(e.message),
  );
});

Deno.test("checkAllocations stops reporting a storage buffer that ran out of memory once it was reported and released", async () => {
  const { gpu } = recordingGpu(1 << 20, ["big", "params"]);
  const ctx = new GpuContext(gpu);
  const oom = (e: Error) => e instanceof GpuOutOfMemoryError && e.message.includes('"big"');
  // Kept: reported by every check.
  const big = ctx.createBuffer(4096, "big");
  await assert.rejects(() => ctx.checkAllocations("first"), oom);
  await assert.rejects(() => ctx.checkAllocations("second"), oom);
  // Released after it was reported: the context is usable again.
  ctx.release(big);
  await ctx.checkAllocations("after the release");
  ctx.release(ctx.createBuffer(4096, "small"));
  await ctx.checkAllocations();
  // Released before any check: still reported once.
  ctx.release(ctx.createBuffer(4096, "big"));
  await assert.rejects(() => ctx.checkAllocations(), oom);
  await ctx.checkAllocations();
  // A uniform block that ran out of memory is never released: every later check throws.
  ctx.uniform([7]);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      () => ctx.checkAllocations(),
      (e: Error) => e instanceof GpuOutOfMemoryError && e.message.includes('"params"'),
    );
  }
});

Deno.test("a scratch buffer that ran out of memory is freed by the check that reports it, outgrown ones too, and made again by the next request", async () => {
  const { gpu } = recordingGpu(1 << 20, ["scratch partials"]);
  const ctx = new GpuContext(gpu);
  const kept = ctx.scratch("kept", 100);
  // 1 KiB, then outgrown by 4 KiB (the 1 KiB one is kept until released): both failed.
  const small = ctx.scratch("partials", 1000);
  const partials = ctx.scratch("partials", 3000);
  assert.notEqual(partials, small);
  assert.equal(ctx.allocatedBytes, 1024 + 1024 + 4096);
  const oom = (e: Error) =>
    e instanceof GpuOutOfMemoryError && e.message.includes('"scratch partials" (1.00 KiB');
  await assert.rejects(() => ctx.checkAllocations(), oom);
  assert.equal(ctx.allocatedBytes, 1024, "the failed scratch buffers were freed, the other kept");
  await ctx.checkAllocations();
  assert.equal(ctx.scratch("kept", 100), kept);
  const again = ctx.scratch("partials", 3000);
  assert.notEqual(again, partials, "the next request makes it again");
  assert.equal(ctx.allocatedBytes, 1024 + 4096);
  await assert.rejects(
    () => ctx.checkAllocations(),
    (e: Error) =>
      e instanceof GpuOutOfMemoryError && e.message.includes('"scratch partials" (4.00 KiB'),
  );
  assert.equal(ctx.allocatedBytes, 1024);
});

Deno.test({
  name:
    "readback reports an out-of-memory buffer before the validation errors of the work using it, " +
    "which it takes with it",
  ignore: noGpu,
  async fn() {
    // A real device whose "oom" buffer runs out of memory, as on a GPU.
    const gpu = await outOfMemoryGpu(new Set(["oom"]));
    const ctx = new GpuContext(gpu);
    try {
      const x = ctx.upload(new Float32Array([1, 2, 3, 4]), "x");
      const out = ctx.createBuffer(16, "oom");
      const code = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(4) fn main(@builtin(global_invocation_id) g: vec3u) { o[g.x] = x[g.x]; }`;
      const enc = recordPass(ctx, (pass) => {
        ctx.dispatch(pass, ctx.pipeline("copy_oom", code), [x, out], [1, 1, 1]);
      });
      await assert.rejects(
        () => readback(ctx, [{ buffer: out, offset: 0, size: 16 }], enc),
        (e: Error) =>
          e instanceof GpuOutOfMemoryError && /allocating "oom" \(16 bytes\)/.test(e.message) &&
          e.cause instanceof Error && /'oom' label is invalid/.test(e.cause.message),
      );
      // Those validation errors went with it: once the buffer is freed, the next readback is clean.
      assert.deepEqual(gpu.errors, []);
      ctx.release(out);
      const [got] = await readback(ctx, [{ buffer: x, offset: 0, size: 16 }]);
      assert.deepEqual(new Float32Array(got), new Float32Array([1, 2, 3, 4]));
    } finally {
      gpu.device.destroy();
    }
  },
});

Deno.test({
  name: "readback names a kernel the device rejects (WGSL type error, workgroup over the limit)",
  ignore: noGpu,
  async fn() {
    const copy = (size: string, body: string) =>
      `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(${size}) fn main(@builtin(global_invocation_id) g: vec3u) {
${body}
}`;
    const cases: {
      label: string;
      code: string;
      constants: Record<string, number>;
      expect: RegExp;
    }[] = [
      {
        label: "k_type_error",
        code: copy("4", "  let y: f32 = 1u;\n  o[g.x] = x[g.x] + y;"),
        constants: {},
        expect:
          /^Cannot compile kernel "k_type_error" \(main\) on .*\(WGSL line 4: let y: f32 = 1u;\): .*f32`, but got `u32`/s,
      },
      {
        label: "k_too_wide",
        // 8192 invocations: over every device's maxComputeInvocationsPerWorkgroup. (Given as an
        // override constant instead, wgpu 29 on lavapipe reports nothing: the size is literal.)
        code: copy("8192", "  o[g.x] = x[g.x] * S;").replace(
          "@compute",
          "override S: f32;\n@compute",
        ),
        constants: { S: 2 },
        expect: /^Cannot compile kernel "k_too_wide" \(main S=2\) on .*: .*workgroup size/s,
      },
    ];
    for (const c of cases) {
      // A fresh device each: a failed pipeline makes every later check of its context throw.
      const gpu = await createGpu();
      const ctx = new GpuContext(gpu);
      try {
        const x = ctx.upload(new Float32Array([1, 2, 3, 4]), "x");
        const out = ctx.createBuffer(16, "out");
        // A valid kernel first: nothing is reported for it.
        const ok = recordPass(ctx, (pass) => {
          ctx.dispatch(pass, ctx.pipeline("k_ok", copy("4", "  o[g.x] = x[g.x];")), [x, out], [
            1,
            1,
            1,
          ]);
        });
        const [bytes] = await readback(ctx, [{ buffer: out, offset: 0, size: 16 }], ok);
        assert.deepEqual([...new Float32Array(bytes)], [1, 2, 3, 4]);
        const enc = recordPass(ctx, (pass) => {
          const pipeline = ctx.pipeline(c.label, c.code, { constants: c.constants });
          ctx.dispatch(pass, pipeline, [x, out], [1, 1, 1]);
        });
        await assert.rejects(
          () => readback(ctx, [{ buffer: out, offset: 0, size: 16 }], enc),
          (e: Error) => {
            assert.ok(e instanceof GpuPipelineError, String(e));
            assert.match(e.message, c.expect);
            assert.match(e.message, /found while reading back "out"/);
            assert.doesNotMatch(e.message, /Invalid ComputePipeline/i);
            assert.equal(e.failure.label, c.label);
            return true;
          },
        );
      } finally {
        gpu.device.destroy();
      }
    }
  },
});
