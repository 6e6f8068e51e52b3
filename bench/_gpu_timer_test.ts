import assert from "node:assert/strict";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import type { GpuContext } from "../gpu/context.ts";
import { createGpuTimer, timestampMs } from "./_gpu_timer.ts";

Deno.test("timestampMs() takes an increasing pair within the wall time, else undefined", () => {
  assert.equal(timestampMs(1_000n, 2_501_000n, 12), 2.5);
  assert.equal(timestampMs(0n, 12_000_000n, 12), 12); // exactly the wall time: still usable
  assert.equal(timestampMs(0n, 12_000_001n, 12), undefined); // longer than its round trip
  assert.equal(timestampMs(7n, 7n, 12), undefined); // not increasing (e.g. never written: 0, 0)
  assert.equal(timestampMs(9_000n, 7_000n, 12), undefined); // decreasing
  // Beyond 2^53 ns the difference is still exact (bigint before the conversion).
  const big = 2n ** 60n;
  assert.equal(timestampMs(big, big + 3_000_000n, 12), 3);
});

/** A kernel that loops `n` times per invocation, so the pass takes a measurable time. */
const SPIN = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var x = f32(g.x);
  for (var i = 0u; i < 20000u; i++) { x = x * 0.999 + 1.0; }
  o[g.x] = x;
}`;

/** Records one spinning dispatch into a pass begun with `descriptor`. */
function spinPass(ctx: GpuContext, descriptor: GPUComputePassDescriptor): GPUCommandEncoder {
  const out = ctx.createBuffer(64 * 64 * 4, "spin out");
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass(descriptor);
  ctx.dispatch(pass, ctx.pipeline("spin", SPIN), [out], [64, 1, 1]);
  pass.end();
  return enc;
}

Deno.test({
  name: "createGpuTimer() times a pass by its GPU timestamps, within the round trip's wall time",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    if (!ctx.gpu.features.has("timestamp-query")) return; // nothing to time by timestamps here
    const timer = createGpuTimer(ctx, { wallClock: false });
    try {
      assert.equal(timer.timing, "GPU timestamps");
      const descriptor = timer.passDescriptor({ label: "spin" });
      assert.equal(descriptor.label, "spin");
      assert.ok(descriptor.timestampWrites, "the pass gets the timestamp writes");
      const sample = await timer.time(spinPass(ctx, descriptor));
      assert.equal(sample.timing, "GPU timestamps");
      assert.ok(sample.ms > 0 && sample.ms <= sample.wallMs, JSON.stringify(sample));
      assert.notEqual(sample.ms, sample.wallMs);
      assert.equal(timer.fallbacks, 0);
      assert.equal(timer.describe(), "GPU timestamps");
    } finally {
      timer.dispose();
    }
  },
});

Deno.test({
  name: "createGpuTimer() falls back to the wall time when the pass wrote no timestamps",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    if (!ctx.gpu.features.has("timestamp-query")) return;
    const timer = createGpuTimer(ctx, { wallClock: false });
    try {
      // The descriptor is taken but the pass is begun without it: the resolved queries read 0, 0.
      timer.passDescriptor();
      const sample = await timer.time(spinPass(ctx, {}));
      assert.deepEqual(sample, { ms: sample.wallMs, wallMs: sample.wallMs, timing: "wall clock" });
      assert.ok(sample.wallMs > 0);
      assert.equal(timer.fallbacks, 1);
      assert.equal(timer.describe(), "GPU timestamps, 1 samples by wall clock (bad timestamps)");
    } finally {
      timer.dispose();
    }
  },
});

Deno.test({
  name: "createGpuTimer() with wallClock times the round trip and adds no timestamp writes",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const timer = createGpuTimer(ctx, { wallClock: true });
    try {
      assert.equal(timer.timing, "wall clock");
      const descriptor = timer.passDescriptor({ label: "spin" });
      assert.deepEqual(descriptor, { label: "spin" });
      const sample = await timer.time(spinPass(ctx, descriptor));
      assert.deepEqual(sample, { ms: sample.wallMs, wallMs: sample.wallMs, timing: "wall clock" });
      assert.ok(sample.wallMs > 0);
      assert.equal(timer.fallbacks, 0);
      assert.equal(timer.describe(), "wall clock incl. one ~11 ms round trip per sample");
    } finally {
      timer.dispose();
    }
  },
});

Deno.test({
  name: "createGpuTimer().time() refuses a sample whose pass was not begun with passDescriptor()",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const timer = createGpuTimer(ctx, { wallClock: false });
    try {
      const message = /no pass was begun with timer\.passDescriptor\(\) since the last sample/;
      await assert.rejects(timer.time(spinPass(ctx, {})), { message });
      // One descriptor times one sample, not the next.
      await timer.time(spinPass(ctx, timer.passDescriptor()));
      await assert.rejects(timer.time(spinPass(ctx, {})), { message });
    } finally {
      timer.dispose();
    }
  },
});
