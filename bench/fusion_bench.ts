// Per-head q/k RMSNorm + RoPE, the separate dispatches (rms_norm on q and on k, then rope on q
// and on k: 4 dispatches) against the fused kernel (kernels/qk_norm_rope/: 1 dispatch), forward
// and backward (rope backward twice, then rms_norm backward's dx twice, against one in-place
// dispatch), at Qwen3-0.6B heads (16 query / 8 kv heads of 128) for 1, 8 and 256 tokens; and a
// full fine-tuning's backward with the norm weights' gradients (rope backward twice and
// rms_norm backward with dw twice: 8 dispatches, against norm_rope_backward twice: 6); and a
// decode step of 1 or 8 sequences with its KV-cache append (the 4 dispatches + kv_write, the
// fused kernel + kv_write, and qk_norm_rope_kv alone). Then the decode matvec prologues
// (kernels/matvec/matvec_prologue.wgsl) at Qwen3-0.6B's projections for 1, 2, 4 and 8 rows:
// input_layernorm's rms_norm + q_proj's matvec (2048×1024) against q_proj with the norm folded
// in, post_attention_layernorm + gate_proj (3072×1024) likewise, swiglu + down_proj (1024×3072)
// against down_proj with SwiGLU folded in. Each iteration records REPS launches into one pass
// and waits once; µs per launch (all its dispatches) are printed at the end, with the dispatches
// one decode layer records with and without the prologues. A sample is the GPU's time between the
// pass's beginning and end timestamps when the device has "timestamp-query" (bench/_gpu_timer.ts;
// HALO_BENCH_WALL=1 or no timestamps: the wall time of submit + readback, whose ~11 ms round trip
// in Deno then dwarfs these few-µs launches); the summary says which.
//   deno task bench bench/fusion_bench.ts
import { createGpu } from "../gpu/device.ts";
import { GpuContext } from "../gpu/context.ts";
import { encodeQkNormRope } from "../kernels/qk_norm_rope/qk_norm_rope.ts";
import { encodeQkNormRopeBackward } from "../kernels/qk_norm_rope/qk_norm_rope_backward.ts";
import { encodeNormRopeBackward } from "../kernels/qk_norm_rope/norm_rope_backward.ts";
import { encodeQkNormRopeKv, qkNormRopeKvFits } from "../kernels/qk_norm_rope/qk_norm_rope_kv.ts";
import { encodeKvWrite } from "../kernels/kv_write/kv_write.ts";
import { encodeRmsNorm } from "../kernels/rms_norm/rms_norm.ts";
import { encodeRmsNormBackward } from "../kernels/rms_norm/rms_norm_backward.ts";
import { encodeRope } from "../kernels/rope/rope.ts";
import { encodeRopeBackward } from "../kernels/rope/rope_backward.ts";
import { ropeTable } from "../kernels/rope/rope_ref.ts";
import { encodeMatvec, type MatvecPrologue } from "../kernels/matvec/matvec.ts";
import { encodeSwiglu } from "../kernels/swiglu/swiglu.ts";
import { encodeDecoderLayer } from "../model/decoder_layer_webgpu.ts";
import { WebGpuQwen3 } from "../model/qwen3_webgpu.ts";
import { qwen3_0p6bConfig, randomWeights } from "./random_model.ts";
import { createGpuTimer } from "./_gpu_timer.ts";

const ctx = new GpuContext(await createGpu());
console.log(`adapter: ${ctx.gpu.description}`);
const timer = createGpuTimer(ctx);

const [hq, hkv, d, maxPos, eps] = [16, 8, 128, 4096, 1e-6];
const REPS = 32;
const best = new Map<string, number>();
const table = ctx.upload(ropeTable(maxPos, { d, theta: 1e6 }), "table");
const qNorm = ctx.upload(new Float32Array(d).fill(1), "qNorm");
const kNorm = ctx.upload(new Float32Array(d).fill(1), "kNorm");

type Record = (pass: GPUComputePassEncoder) => void;
const decodeDispatches = [false, true].map((fuse) => decodeLayerDispatches(fuse));

for (const tokens of [1, 8, 256]) {
  const buf = (n: number, label: string) =>
    ctx.upload(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), label);
  const [qn, kn] = [tokens * hq * d, tokens * hkv * d];
  const [qRaw, kRaw, q, k] = [buf(qn, "qRaw"), buf(kn, "kRaw"), buf(qn, "q"), buf(kn, "k")];
  const [dq, dk, dqRaw, dkRaw] = [buf(qn, "dq"), buf(kn, "dk"), buf(qn, "dqR"), buf(kn, "dkR")];
  const positions = ctx.upload(Uint32Array.from({ length: tokens }, (_, i) => i), "positions");
  const shape = { tokens, hq, hkv, d, maxPos, eps };
  const rope = { positions, table, d, maxPos };
  const variants: [string, Record][] = [
    ["forward separate", (pass) => {
      encodeRmsNorm(ctx, pass, { x: qRaw, w: qNorm, y: q, rows: tokens * hq, d, eps });
      encodeRmsNorm(ctx, pass, { x: kRaw, w: kNorm, y: k, rows: tokens * hkv, d, eps });
      encodeRope(ctx, pass, { ...rope, x: q, rows: tokens * hq, heads: hq });
      encodeRope(ctx, pass, { ...rope, x: k, rows: tokens * hkv, heads: hkv });
    }],
    ["forward fused", (pass) => {
      encodeQkNormRope(ctx, pass, {
        ...shape,
        ...{ qRaw, kRaw, qNorm, kNorm, positions, table, q, k },
      });
    }],
    ["backward separate", (pass) => {
      encodeRopeBackward(ctx, pass, { ...rope, grad: dq, rows: tokens * hq, heads: hq });
      encodeRopeBackward(ctx, pass, { ...rope, grad: dk, rows: tokens * hkv, heads: hkv });
      const common = { d, eps };
      encodeRmsNormBackward(ctx, pass, {
        ...common,
        ...{ dy: dq, x: qRaw, w: qNorm, dx: dqRaw, rows: tokens * hq },
      });
      encodeRmsNormBackward(ctx, pass, {
        ...common,
        ...{ dy: dk, x: kRaw, w: kNorm, dx: dkRaw, rows: tokens * hkv },
      });
    }],
    ["backward fused", (pass) => {
      encodeQkNormRopeBackward(ctx, pass, {
        ...shape,
        ...{ dq, dk, qRaw, kRaw, qNorm, kNorm, positions, table },
      });
    }],
  ];
  // Full fine-tuning: the norm weights' gradients too (rstd and partials as the trainer sizes them).
  const rstd = ctx.createBuffer(4 * tokens * hq, "rstd");
  const partials = ctx.createBuffer(4 * Math.ceil((tokens * hq) / 256) * d, "partials");
  const [dqNorm, dkNorm] = [buf(d, "dqNorm"), buf(d, "dkNorm")];
  const withDw = { rstd, partials, accumulateDw: true, d, eps };
  variants.push(
    ["backward-dw separate", (pass) => {
      encodeRopeBackward(ctx, pass, { ...rope, grad: dq, rows: tokens * hq, heads: hq });
      encodeRopeBackward(ctx, pass, { ...rope, grad: dk, rows: tokens * hkv, heads: hkv });
      encodeRmsNormBackward(ctx, pass, {
        ...withDw,
        ...{ dy: dq, x: qRaw, w: qNorm, dx: dqRaw, dw: dqNorm, rows: tokens * hq },
      });
      encodeRmsNormBackward(ctx, pass, {
        ...withDw,
        ...{ dy: dk, x: kRaw, w: kNorm, dx: dkRaw, dw: dkNorm, rows: tokens * hkv },
      });
    }],
    ["backward-dw fused", (pass) => {
      const common = { ...withDw, positions, table, tokens, maxPos };
      encodeNormRopeBackward(ctx, pass, {
        ...common,
        ...{ dy: dq, x: qRaw, w: qNorm, dx: dqRaw, dw: dqNorm, heads: hq },
      });
      encodeNormRopeBackward(ctx, pass, {
        ...common,
        ...{ dy: dk, x: kRaw, w: kNorm, dx: dkRaw, dw: dkNorm, heads: hkv },
      });
    }],
  );
  if (tokens <= 8) {
    // Decode: one token per sequence, appended at slot 40 of a 64-slot cache.
    const [slots, width] = [64, hkv * d];
    const v = buf(kn, "v");
    const cache = {
      kCache: buf(tokens * slots * width, "kc"),
      vCache: buf(tokens * slots * width, "vc"),
    };
    const mask = ctx.createBuffer(4 * tokens * slots, "mask");
    const ctrl = ctx.upload(Uint32Array.of(40, 0), "ctrl");
    const kvWrite = (pass: GPUComputePassEncoder) =>
      encodeKvWrite(ctx, pass, {
        ...{ kNew: k, vNew: v, ...cache, mask, ctrl, rows: tokens, tokens: 1, slots, width },
        decode: true,
      });
    variants.push(
      ["decode separate", (pass) => {
        variants[0][1](pass);
        kvWrite(pass);
      }],
      ["decode fused", (pass) => {
        variants[1][1](pass);
        kvWrite(pass);
      }],
    );
    if (qkNormRopeKvFits(ctx)) {
      variants.push(["decode fused-kv", (pass) => {
        encodeQkNormRopeKv(ctx, pass, {
          ...shape,
          ...{ qRaw, kRaw, qNorm, kNorm, positions, table, q, v, ...cache, mask, ctrl },
          ...{ rows: tokens, slots },
        });
      }]);
    }
  }
  for (const [name, record] of variants) register("q/k norm + RoPE", name, tokens, record);
}

// Decode projections with and without their input prologue, Qwen3-0.6B shapes.
const [hidden, inter] = [1024, 3072];
const ROWS = [1, 2, 4, 8];
for (const rows of ROWS) {
  const buf = (n: number, label: string) =>
    ctx.upload(Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i)), label);
  const [h, g, x] = [buf(rows * hidden, "h"), buf(hidden, "g"), buf(rows * hidden, "x")];
  const [gate, up, act] = [
    buf(rows * inter, "gate"),
    buf(rows * inter, "up"),
    buf(rows * inter, "act"),
  ];
  const [wq, wGate, wDown] = [
    buf(2048 * hidden, "wq"),
    buf(inter * hidden, "wg"),
    buf(hidden * inter, "wd"),
  ];
  const [q, yGate, yDown] = [
    buf(rows * 2048, "q"),
    buf(rows * inter, "yg"),
    buf(rows * hidden, "yd"),
  ];
  const norm: MatvecPrologue = { kind: "rmsnorm", h, g, eps };
  const swiglu: MatvecPrologue = { kind: "swiglu", gate, up };
  const rmsNorm = (pass: GPUComputePassEncoder) =>
    encodeRmsNorm(ctx, pass, { x: h, w: g, y: x, rows, d: hidden, eps });
  const variants: [string, Record][] = [
    ["norm+q separate", (pass) => {
      rmsNorm(pass);
      encodeMatvec(ctx, pass, { x, w: wq, y: q, m: rows, n: 2048, k: hidden });
    }],
    ["norm+q fused", (pass) => {
      encodeMatvec(ctx, pass, { x, w: wq, y: q, m: rows, n: 2048, k: hidden, prologue: norm });
    }],
    ["norm+gate separate", (pass) => {
      rmsNorm(pass);
      encodeMatvec(ctx, pass, { x, w: wGate, y: yGate, m: rows, n: inter, k: hidden });
    }],
    ["norm+gate fused", (pass) => {
      const prologue = norm;
      encodeMatvec(ctx, pass, { x, w: wGate, y: yGate, m: rows, n: inter, k: hidden, prologue });
    }],
    ["swiglu+down separate", (pass) => {
      encodeSwiglu(ctx, pass, { gate, up, out: act, n: rows * inter });
      encodeMatvec(ctx, pass, { x: act, w: wDown, y: yDown, m: rows, n: hidden, k: inter });
    }],
    ["swiglu+down fused", (pass) => {
      const prologue = swiglu;
      encodeMatvec(ctx, pass, {
        x: act,
        w: wDown,
        y: yDown,
        m: rows,
        n: hidden,
        k: inter,
        prologue,
      });
    }],
  ];
  for (const [name, record] of variants) register("decode prologue", name, rows, record);
}

/** A bench of `REPS` launches of `record` in one pass, its best µs per launch kept in `best`. */
function register(what: string, name: string, tokens: number, record: Record): void {
  const key = `${name} ${tokens}`;
  Deno.bench({
    name: `${what} ${key} ${what.startsWith("decode") ? "rows" : "tokens"} ×${REPS}`,
    group: `${name.split(" ")[0]} ${tokens}`,
    baseline: name.endsWith("separate"),
    n: 10,
    warmup: 2,
    async fn(bench) {
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass(timer.passDescriptor());
      for (let r = 0; r < REPS; r++) record(pass);
      pass.end();
      bench.start();
      const { ms } = await timer.time(enc);
      bench.end();
      const us = (ms * 1e3) / REPS;
      best.set(key, Math.min(best.get(key) ?? Infinity, us));
    },
  });
}

/**
 * Dispatches one decode step of one layer records (batch 1, KV cache of 64 slots), with or
 * without the matvec prologues.
 */
function decodeLayerDispatches(fusePrologues: boolean): number {
  const c = qwen3_0p6bConfig({ layers: 1, vocab: 256 });
  const model = new WebGpuQwen3(ctx, c, randomWeights(c));
  const f = (n: number, label: string) => ctx.createBuffer(4 * n, label);
  const [qd, kvd, slots] = [c.numAttentionHeads * c.headDim, c.numKeyValueHeads * c.headDim, 64];
  const x1 = f(c.hiddenSize, "x1");
  const acts = {
    ...{ x1, x2: x1, qRaw: f(qd, "qRaw"), kRaw: f(kvd, "kRaw"), q: f(qd, "q"), k: f(kvd, "k") },
    ...{ v: f(kvd, "v"), att: f(qd, "att"), gate: f(c.intermediateSize, "gate") },
    ...{ up: f(c.intermediateSize, "up"), act: f(c.intermediateSize, "act") },
  };
  const kvCache = {
    ...{ k: f(slots * kvd, "kc"), v: f(slots * kvd, "vc"), mask: f(slots, "mask") },
    ...{ ctrl: f(2, "ctrl"), slots, width: kvd, row0: 0, kvLen: 8 },
  };
  const enc = ctx.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  let count = 0;
  const counting = new Proxy(pass, {
    get(target, prop) {
      if (prop === "dispatchWorkgroups") {
        return (x: number, y?: number, z?: number) => {
          count++;
          target.dispatchWorkgroups(x, y, z);
        };
      }
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  encodeDecoderLayer(counting, model, {
    layer: 0,
    hIn: f(c.hiddenSize, "h"),
    acts,
    rows: 1,
    tokens: 1,
    positions: ctx.upload(new Uint32Array([7]), "pos"),
    kvCache,
    matvec: true,
    fusePrologues,
  });
  pass.end();
  enc.finish();
  model.dispose();
  return count;
}

addEventListener("unload", () => {
  if (best.size === 0) return;
  console.log(
    `\nbest µs per launch (${REPS} in one pass) on ${ctx.gpu.description} (${timer.describe()}):`,
  );
  console.log("| tokens | fwd separate (4) | fwd fused (1) | bwd separate (4) | bwd fused (1) |");
  console.log("|---|---|---|---|---|");
  const cell = (name: string, tokens: number) => best.get(`${name} ${tokens}`)?.toFixed(1) ?? "-";
  for (const tokens of [1, 8, 256]) {
    const cells = ["forward separate", "forward fused", "backward separate", "backward fused"];
    console.log(`| ${tokens} | ${cells.map((name) => cell(name, tokens)).join(" | ")} |`);
  }
  console.log("\n| tokens | bwd with dw separate (8) | bwd with dw fused (6) |");
  console.log("|---|---|---|");
  for (const tokens of [1, 8, 256]) {
    const cells = ["backward-dw separate", "backward-dw fused"];
    console.log(`| ${tokens} | ${cells.map((name) => cell(name, tokens)).join(" | ")} |`);
  }
  console.log("\n| decode rows | 4 + kv_write (5) | fused + kv_write (2) | fused-kv (1) |");
  console.log("|---|---|---|---|");
  for (const tokens of [1, 8]) {
    const cells = ["decode separate", "decode fused", "decode fused-kv"];
    console.log(`| ${tokens} | ${cells.map((name) => cell(name, tokens)).join(" | ")} |`);
  }
  console.log(
    "\n| decode rows | norm + q_proj: 2 | fused: 1 | norm + gate_proj: 2 | fused: 1 | swiglu + down_proj: 2 | fused: 1 |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const rows of ROWS) {
    const cells = ["norm+q", "norm+gate", "swiglu+down"].flatMap((op) => [
      `${op} separate`,
      `${op} fused`,
    ]);
    console.log(`| ${rows} | ${cells.map((name) => cell(name, rows)).join(" | ")} |`);
  }
  console.log(
    `dispatches per decode layer (Qwen3-0.6B shape, no LoRA): ${decodeDispatches[0]} without ` +
      `the matvec prologues, ${decodeDispatches[1]} with them`,
  );
});
