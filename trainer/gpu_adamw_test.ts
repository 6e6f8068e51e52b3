// GpuAdamw against the host chain `adamw()`: 5 updates of the fixture model (LoRA adapters, and
// every weight with the embedding split into row blocks), clipping active, weight decay on the
// matrices only, a warmup schedule. Each update's gradients are the GPU step's own (read back
// here for the host optimizer only); the parameters after each update, the metrics and the
// moments must agree within 1e-6 relative (float32 arithmetic in both, a few roundings apart),
// and an update costs exactly one readback. (Their 64-row block limit stores q|k|v and gate|up
// apart.) Over base weights stored fused (q|k|v and gate|up one buffer each, the projections
// views into them: the default), the forward, the gradients and 3 updates equal the separate
// layout's bit for bit, and the trainer backend's setParams/syncParams write and read the views.
import assert from "node:assert/strict";
import { loadPeftAdapter } from "../adapters/peft_io.ts";
import { GpuContext } from "../gpu/context.ts";
import { readback } from "../gpu/readback.ts";
import { noGpu, testContext } from "../gpu/test_utils.ts";
import { fixtureDir } from "../internal/test_utils.ts";
import { encodeAdd } from "../kernels/add/add.ts";
import { readQwen3Config } from "../model/config.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { loadQwen3Weights } from "../model/weights.ts";
import { GpuAdamw } from "./gpu_adamw.ts";
import { adamw, applyUpdates, warmupConstantSchedule } from "./optim/mod.ts";
import type { ScaleByAdamState } from "./optim/scale_by_adam.ts";
import type { ParamTree } from "./types.ts";
import { modelParams } from "./params.ts";
import { WebGpuTrainBackend } from "./_webgpu_backend.ts";
import { generateWebGpu, releaseGenerateWorkspace } from "../model/generate_webgpu.ts";
import { resolveGenerateOptions } from "../model/generate.ts";

const TOL = 1e-6;
const dir = fixtureDir();
const config = await readQwen3Config(dir);
const input = { inputIds: [[3, 17, 250, 99, 4, 311, 8, 42], [12, 7, 300, 64, 5, 6, 7, 8]] };
const n = 16;

async function params(model: WebGpuQwen3, mode: "adapters" | "full"): Promise<ParamTree> {
  const list = model.gradients(mode);
  const bytes = await readback(
    model.ctx,
    list.map((p) => ({ buffer: p.param, offset: p.paramOffset, size: 4 * p.n })),
  );
  const out: ParamTree = {};
  const size = new Map<string, number>();
  for (const p of list) size.set(p.name, Math.max(size.get(p.name) ?? 0, p.offset + p.n));
  list.forEach((p, i) => {
    out[p.name] ??= new Float32Array(size.get(p.name)!);
    out[p.name].set(new Float32Array(bytes[i]), p.offset);
  });
  return out;
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}

for (const mode of ["adapters", "full"] as const) {
  Deno.test({
    name: `GpuAdamw: 5 updates (${mode}) equal the host adamw() chain; one readback per update`,
    ignore: noGpu,
    async fn() {
      const ctx = new GpuContext((await testContext())!.gpu);
      // "full": the embedding table in row blocks of 64 rows (4 buffers for one tensor).
      const model = new WebGpuQwen3(ctx, config, await loadQwen3Weights(dir, config), {
        maxChunkBytes: 64 * config.hiddenSize * 4,
      });
      if (mode === "adapters") model.setAdapters(await loadPeftAdapter(`${dir}/adapter`, config));
      const options = {
        lr: warmupConstantSchedule({ peakValue: 3e-3, warmupSteps: 2 }),
        b1: 0.8,
        b2: 0.95,
        eps: 1e-6,
        weightDecay: 0.1,
        maxGradNorm: 0.05,
        decayMask: (name: string) => !name.endsWith("norm.weight"),
      };
      const opt = new GpuAdamw(model, mode, options);
      const host = adamw(options);
      let hostParams = await params(model, mode);
      let state = host.init(hostParams);
      const ones = ctx.upload(new Float32Array(n).fill(1), "ones");
      let clipped = false;
      try {
        for (let step = 0; step < 5; step++) {
          await model.runTrainStep(input, {
            mode,
            cotangents: { logprobs: true, lastHidden: false },
            lossHook: (pass, _acts, cot) =>
              encodeAdd(ctx, pass, { x: ones, y: cot.dLogprobs, n, alpha: -1 / n }),
          });
          const grads = Object.fromEntries(
            [...await model.readGradients()].filter(([k]) => k in hostParams),
          );
          const r = host.update(grads, state, hostParams);
          state = r.state;
          hostParams = applyUpdates(hostParams, r.updates);
          const before = ctx.readbacks;
          const metrics = await opt.update();
          assert.equal(ctx.readbacks - before, 1, "readbacks per update");
          for (const key of ["optim/grad_norm", "optim/clip_scale", "optim/lr"]) {
            const [a, b] = [metrics[key], r.metrics[key]];
            assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b), `step ${step} ${key}: ${a} vs ${b}`);
          }
          clipped ||= metrics["optim/clip_scale"] < 1;
          const got = await params(model, mode);
          for (const [name, want] of Object.entries(hostParams)) {
            const err = relErr(got[name], want);
            assert.ok(err <= TOL, `step ${step} ${name}: relative error ${err} > ${TOL}`);
          }
        }
        assert.ok(clipped, "the clip never acted: the test does not cover it");
        // The moments, as the host's scaleByAdam keeps them (state[1] of the chain with clipping).
        const adam = (state as unknown[])[1] as ScaleByAdamState;
        const moments = await opt.readState();
        assert.equal(moments.count, 5);
        for (const name of Object.keys(adam.mu)) {
          assert.ok(relErr(moments.mu[name], adam.mu[name]) <= TOL, `mu ${name}`);
          assert.ok(relErr(moments.nu[name], adam.nu[name]) <= TOL, `nu ${name}`);
        }
        // The host chain's state with the device's moments: same counts and moments.
        const chain = await opt.chainState(host.init(hostParams)) as unknown[];
        assert.deepEqual(
          chain.map((p) => (p as { count?: number }).count),
          (state as unknown[]).map((p) => (p as { count?: number }).count),
        );
        // A non-finite gradient skips the update: parameters and count unchanged.
        const g = model.gradients(mode)[0];
        ctx.device.queue.writeBuffer(g.grad, 0, new Float32Array([NaN]));
        const kept = await params(model, mode);
        const skipped = await opt.update();
        assert.equal(skipped["optim/skipped"], 1);
        assert.equal(opt.count, 5);
        assert.deepEqual(await params(model, mode), kept);
        // writeState → readState round trip (and loadChainState from the host chain).
        opt.loadChainState(state);
        assert.equal(opt.count, 5);
        opt.writeState(adam);
        const again = await opt.readState();
        for (const name of Object.keys(adam.mu)) {
          assert.deepEqual(again.mu[name], adam.mu[name]);
        }
      } finally {
        opt.dispose();
        model.dispose();
      }
    },
  });
}

Deno.test({
  name: "GpuAdamw over fused q|k|v and gate|up base weights (views): forward logits, full " +
    "fine-tuning gradients, 3 updates and setParams/syncParams equal the separate layout's",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const weights = await loadQwen3Weights(dir, config);
    const ones = ctx.upload(new Float32Array(n).fill(1), "ones");
    const fused = new WebGpuQwen3(ctx, config, weights);
    const plain = new WebGpuQwen3(ctx, config, weights, { fuseProjections: false });
    assert.ok(fused.layers.every((l) => l.qkvProj && l.gateUpProj), "fused");
    assert.ok(plain.layers.every((l) => !l.qkvProj && !l.gateUpProj), "separate");
    const opts = {
      lr: 3e-3,
      b1: 0.8,
      b2: 0.95,
      eps: 1e-6,
      weightDecay: 0.1,
      maxGradNorm: 0.05,
    };
    const opt = [new GpuAdamw(fused, "full", opts), new GpuAdamw(plain, "full", opts)];
    try {
      const [la, lb] = [await fused.forward(input), await plain.forward(input)];
      assert.deepEqual(la.logits, lb.logits, "forward logits");
      for (let step = 0; step < 3; step++) {
        const grads: Map<string, Float32Array>[] = [];
        for (const m of [fused, plain]) {
          await m.runTrainStep(input, {
            mode: "full",
            cotangents: { logprobs: true, lastHidden: false },
            lossHook: (pass, _acts, cot) =>
              encodeAdd(ctx, pass, { x: ones, y: cot.dLogprobs, n, alpha: -1 / n }),
          });
          grads.push(await m.readGradients());
        }
        for (const [name, g] of grads[1]) assert.deepEqual(grads[0].get(name), g, `grad ${name}`);
        for (const o of opt) await o.update();
        const [pa, pb] = [await params(fused, "full"), await params(plain, "full")];
        for (const [name, p] of Object.entries(pb)) assert.deepEqual(pa[name], p, `param ${name}`);
      }
      const after = { prompts: [[11, 200, 37], [42]], maxNewTokens: 8, temperature: 0 };
      const [ga, gb] = [
        await generateWebGpu(fused, resolveGenerateOptions(config, after)),
        await generateWebGpu(plain, resolveGenerateOptions(config, after)),
      ];
      assert.deepEqual(ga.sequences, gb.sequences, "generation after training");
      // The trainer backend writes host values through the views and reads them back.
      // A copy of the weights: the backend's tree shares its arrays, and setParams writes them.
      const named = modelParams(await loadQwen3Weights(dir, config), config);
      const backend = new WebGpuTrainBackend(fused, "full", named);
      const tree: ParamTree = {};
      for (const [name, w] of Object.entries(named.tree)) {
        tree[name] = Float32Array.from(w, (v, i) => v * 0.5 + (i % 7) * 1e-3);
      }
      backend.setParams(tree);
      for (const name of Object.keys(tree)) named.tree[name].fill(0);
      await backend.syncParams();
      for (const [name, w] of Object.entries(tree)) assert.deepEqual(named.tree[name], w, name);
      assert.deepEqual(await params(fused, "full"), tree);
    } finally {
      for (const o of opt) o.dispose();
      releaseGenerateWorkspace(fused);
      releaseGenerateWorkspace(plain);
      fused.dispose();
      plain.dispose();
      ctx.release(ones);
    }
  },
});
