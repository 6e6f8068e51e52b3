import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readback } from "../../gpu/readback.ts";
import type { GpuContext } from "../../gpu/context.ts";
import {
  assertClose,
  noGpu,
  poisoned,
  randomArray,
  readFloats,
  recordPass,
  testContext,
} from "../../gpu/test_utils.ts";
import { encodeSample, sampleInfo } from "./sample.ts";
import sampleCode from "./sample.wgsl" with { type: "text" };
import { sampleRef, samplingDistributionRef, type SamplingParams } from "./sample_ref.ts";

// Log-probs are f32 sums of at most a few thousand exponentials, one log and one divide by the
// temperature: 1e-5 relative to the f64 reference is ample.
const LP_TOL = 1e-5;

// Upper 1e-4 quantiles of the chi-square distribution with 1..10 degrees of freedom (checked
// against the regularized incomplete gamma function): each goodness-of-fit test below has a
// false-alarm rate of 1e-4 for a correct sampler and a random seed (the seed is fixed here, so
// the outcome is deterministic).
const CHI2_CRIT_1E4 = [
  15.137,
  18.421,
  21.108,
  23.513,
  25.745,
  27.856,
  29.877,
  31.828,
  33.72,
  35.564,
];

interface RunOptions extends SamplingParams {
  seed: number;
  /** Per-row sequence ids; default 0..rows-1. */
  rowSequence?: number[];
  sequences?: number;
  maxNewTokens?: number;
  step?: number;
  eos?: number[];
  stop?: number[];
  state?: Uint32Array;
  ids?: Uint32Array;
  /** The EOS ids are banned while `step` is below this. */
  minNewTokens?: number;
  /** Offset of the rows' RNG streams. */
  firstSequence?: number;
}

interface RunResult {
  tokens: Uint32Array;
  logprobs: Float32Array;
  modelLogprobs: Float32Array;
  state: Uint32Array;
  ids: Uint32Array;
}

/** Samples every row of `logits` ([rows, v]) once at step `options.step`. */
async function run(
  ctx: GpuContext,
  logits: Float32Array,
  rows: number,
  options: RunOptions,
): Promise<RunResult> {
  const v = logits.length / rows;
  const rowSequence = options.rowSequence ?? Array.from({ length: rows }, (_, r) => r);
  const sequences = options.sequences ?? rows;
  const maxNew = options.maxNewTokens ?? 1;
  const step = options.step ?? 0;
  const eos = options.eos ?? [];
  const stop = options.stop ?? [];
  const info = sampleInfo({
    seed: options.seed,
    rowSequence,
    eosTokenIds: eos,
    stopTokenIds: stop,
  });
  const out = ctx.upload(new Uint32Array(maxNew * sequences * 3).fill(0xdeadbeef), "out");
  const state = ctx.upload(options.state ?? new Uint32Array(sequences * 2), "state");
  const ids = ctx.upload(options.ids ?? new Uint32Array(rows).fill(0xdeadbeef), "ids");
  const enc = recordPass(ctx, (pass) =>
    encodeSample(ctx, pass, {
      logits: ctx.upload(logits, "logits"),
      info: ctx.upload(info, "info"),
      ctrl: ctx.upload(Uint32Array.of(0, step), "ctrl"),
      ids,
      out,
      state,
      rows,
      v,
      sequences,
      maxNewTokens: maxNew,
      temperature: options.temperature,
      topK: options.topK,
      topP: options.topP,
      minP: options.minP,
      numEos: eos.length,
      numStop: stop.length,
      minNewTokens: options.minNewTokens,
      firstSequence: options.firstSequence,
    }));
  const [o, s, i] = await readback(ctx, [
    { buffer: out, offset: Math.min(step, maxNew - 1) * sequences * 12, size: sequences * 12 },
    { buffer: state, offset: 0, size: sequences * 8 },
    { buffer: ids, offset: 0, size: rows * 4 },
  ], enc);
  const words = new Uint32Array(o);
  const floats = new Float32Array(o);
  return {
    tokens: Uint32Array.from({ length: sequences }, (_, q) => words[q * 3]),
    logprobs: Float32Array.from({ length: sequences }, (_, q) => floats[q * 3 + 1]),
    modelLogprobs: Float32Array.from({ length: sequences }, (_, q) => floats[q * 3 + 2]),
    state: new Uint32Array(s),
    ids: new Uint32Array(i),
  };
}

Deno.test({
  name: "encodeSample() draws from softmax(logits / T) restricted by top-k, top-p and min-p",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    // 10 tokens with distinct, well-separated logits (no probability sits near a top-p edge).
    const base = [1.2, -0.3, 2.1, 0.4, -1.5, 1.7, 0.0, -0.8, 0.9, 2.6];
    const draws = 3000;
    const cases: [string, SamplingParams][] = [
      ["T=1", { temperature: 1 }],
      ["T=0.6", { temperature: 0.6 }],
      ["T=1.5 top-k 4", { temperature: 1.5, topK: 4 }],
      ["T=1 top-p 0.8", { temperature: 1, topP: 0.8 }],
      ["T=0.8 top-k 6 top-p 0.9", { temperature: 0.8, topK: 6, topP: 0.9 }],
      ["T=1.2 min-p 0.15", { temperature: 1.2, minP: 0.15 }],
    ];
    const logits = new Float32Array(draws * base.length);
    for (let r = 0; r < draws; r++) logits.set(base, r * base.length);
    for (const [what, params] of cases) {
      const want = samplingDistributionRef(base, params);
      const got = await run(ctx, logits, draws, { ...params, seed: 1234 });
      const counts = new Array(base.length).fill(0);
      for (const t of got.tokens) counts[t]++;
      let chi2 = 0;
      let df = -1;
      for (let j = 0; j < base.length; j++) {
        if (want[j] === 0) {
          strictEqual(counts[j], 0, `${what}: filtered token ${j} was drawn ${counts[j]} times`);
          continue;
        }
        chi2 += (counts[j] - draws * want[j]) ** 2 / (draws * want[j]);
        df++;
      }
      const crit = CHI2_CRIT_1E4[df - 1];
      console.log(`${what}: chi2 ${chi2.toFixed(2)} on ${df} dof (critical ${crit} at 1e-4)`);
      ok(chi2 < crit, `${what}: chi2 ${chi2} >= ${crit} (counts ${counts})`);
      // Every draw reports log p under the sampling distribution and under the model.
      const lp = Array.from(got.tokens, (t) => Math.log(want[t]));
      assertClose(got.logprobs, lp, LP_TOL, `${what} sampling log-probs`);
      const z = Math.log(base.reduce((s, l) => s + Math.exp(l), 0));
      assertClose(got.modelLogprobs, Array.from(got.tokens, (t) => base[t] - z), LP_TOL, what);
    }
  },
});

Deno.test({
  name: "encodeSample() picks the reference's tokens on rows longer than the workgroup",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, v] = [6, 1000];
    const logits = randomArray(rows * v, 77, -4, 4);
    const cases: SamplingParams[] = [
      { temperature: 0 },
      { temperature: 1 },
      { temperature: 0.7, topK: 20 },
      { temperature: 1, topP: 0.5 },
      { temperature: 0.9, topK: 300, topP: 0.95, minP: 0.05 },
    ];
    for (const params of cases) {
      const seed = 2 ** 40 + 5; // exercises the high key word
      const got = await run(ctx, logits, rows, { ...params, seed, step: 3, maxNewTokens: 8 });
      const want = Array.from(
        { length: rows },
        (_, r) =>
          sampleRef(logits.subarray(r * v, (r + 1) * v), { ...params, seed, sequence: r, step: 3 }),
      );
      const what = JSON.stringify(params);
      deepStrictEqual(Array.from(got.tokens), want.map((w) => w.token), what);
      deepStrictEqual(Array.from(got.ids), want.map((w) => w.token), `${what} next ids`);
      assertClose(got.logprobs, want.map((w) => w.logprob), LP_TOL, `${what} logprob`);
      const err = assertClose(
        got.modelLogprobs,
        want.map((w) => w.modelLogprob),
        LP_TOL,
        `${what} model logprob`,
      );
      console.log(`${what}: tokens equal, model log-prob rel err ${err.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "encodeSample() with firstSequence draws the streams of sequences firstSequence + r",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, v] = [5, 700];
    const logits = randomArray(rows * v, 91, -3, 3);
    const params = { temperature: 1, topP: 0.9 };
    const seed = 12345;
    for (const firstSequence of [0, 7, 2 ** 20]) {
      const got = await run(ctx, logits, rows, {
        ...params,
        seed,
        step: 2,
        maxNewTokens: 4,
        firstSequence,
      });
      const want = Array.from(
        { length: rows },
        (_, r) =>
          sampleRef(logits.subarray(r * v, (r + 1) * v), {
            ...params,
            seed,
            sequence: firstSequence + r,
            step: 2,
          }).token,
      );
      // Output columns stay the rows' own (0..rows-1).
      deepStrictEqual(Array.from(got.tokens), want, `firstSequence ${firstSequence}`);
    }
    // The offset changes the draws (else the test above could not fail).
    const a = await run(ctx, logits, rows, { ...params, seed, step: 2, maxNewTokens: 4 });
    const b = await run(ctx, logits, rows, {
      ...params,
      seed,
      step: 2,
      maxNewTokens: 4,
      firstSequence: 7,
    });
    ok(Array.from(a.tokens).some((t, r) => t !== b.tokens[r]));
  },
});

Deno.test({
  name: "encodeSample() is reproducible by seed and differs across seeds and sequences",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, v] = [64, 50];
    const row = randomArray(v, 5, -1, 1);
    const logits = new Float32Array(rows * v);
    for (let r = 0; r < rows; r++) logits.set(row, r * v);
    const a = await run(ctx, logits, rows, { temperature: 1, seed: 9 });
    const b = await run(ctx, logits, rows, { temperature: 1, seed: 9 });
    const c = await run(ctx, logits, rows, { temperature: 1, seed: 10 });
    deepStrictEqual(a.tokens, b.tokens);
    ok(a.tokens.some((t, i) => t !== c.tokens[i]), "seeds 9 and 10 drew the same 64 tokens");
    ok(new Set(a.tokens).size > 10, "64 sequences with identical logits drew too few tokens");
  },
});

Deno.test({
  name: "encodeSample() stops on eos, stop ids and length and skips finished sequences",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const v = 8;
    // Greedy picks: row 0 → 3 (eos), row 1 → 5 (stop), row 2 → 1 (none), row 3 → 2 (finished).
    const logits = new Float32Array(4 * v);
    [3, 5, 1, 2].forEach((tok, r) => (logits[r * v + tok] = 5));
    // Rows hold sequences 4, 2, 0, 1 of 5.
    const state = Uint32Array.of(0, 2, 1, 2, 0, 2, 0, 0, 0, 2);
    const ids = Uint32Array.of(9, 9, 9, 9);
    const common = {
      temperature: 0,
      seed: 0,
      rowSequence: [4, 2, 0, 1],
      sequences: 5,
      maxNewTokens: 4,
      eos: [3],
      stop: [6, 5],
      state,
      ids,
    };
    const mid = await run(ctx, logits, 4, { ...common, step: 2 });
    // seq 4 eos, seq 2 stop, seq 0 running, seq 1 untouched (finished), seq 3 untouched.
    deepStrictEqual(Array.from(mid.state), [0, 3, 1, 2, 2, 3, 0, 0, 1, 3]);
    deepStrictEqual(Array.from(mid.ids), [3, 5, 1, 9]);
    deepStrictEqual([mid.tokens[4], mid.tokens[2], mid.tokens[0]], [3, 5, 1]);
    strictEqual(mid.tokens[1], 0xdeadbeef, "a finished sequence must not write its output");
    strictEqual(mid.tokens[3], 0xdeadbeef, "a sequence with no row must not be written");
    strictEqual(mid.logprobs[0], 0, "greedy reports sampling log-prob 0");
    // The last step ends a running sequence with reason "length".
    const last = await run(ctx, logits, 4, { ...common, step: 3 });
    deepStrictEqual([last.state[0], last.state[1]], [3, 4]);
    // Steps past maxNewTokens write nothing.
    const past = await run(ctx, logits, 4, { ...common, step: 4, maxNewTokens: 4 });
    deepStrictEqual(Array.from(past.state), Array.from(state));
  },
});

Deno.test({
  name:
    "encodeSample() bans the EOS ids below minNewTokens as the reference does (runner-up, EOS after)",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const [rows, v] = [4, 1000];
    const logits = randomArray(rows * v, 31, -4, 4);
    // Row 0's argmax is EOS 17 by far (exp(20) more likely than the rest); row 1's argmax is EOS
    // 900 by a little; EOS 3 is the runner-up of row 2; row 3 holds no large EOS logit.
    logits[17] = 20;
    logits[v + 900] = 4.5;
    logits[2 * v + 3] = 3.99;
    const eos = [17, 900, 3];
    const cases: SamplingParams[] = [
      { temperature: 0 },
      { temperature: 1 },
      { temperature: 0.7, topK: 20 },
      { temperature: 1, topP: 0.5 },
      { temperature: 0.9, topK: 300, topP: 0.95, minP: 0.05 },
    ];
    const seed = 21;
    for (const params of cases) {
      const what = JSON.stringify(params);
      for (const [step, banned] of [[1, true], [2, false]] as const) {
        const got = await run(ctx, logits, rows, {
          ...params,
          seed,
          step,
          maxNewTokens: 8,
          eos,
          minNewTokens: 2,
        });
        const want = Array.from(
          { length: rows },
          (_, r) =>
            sampleRef(logits.subarray(r * v, (r + 1) * v), {
              ...params,
              seed,
              sequence: r,
              step,
              bannedTokenIds: banned ? eos : undefined,
            }),
        );
        const at = `${what} step ${step}`;
        deepStrictEqual(Array.from(got.tokens), want.map((w) => w.token), at);
        assertClose(got.logprobs, want.map((w) => w.logprob), LP_TOL, `${at} logprob`);
        assertClose(got.modelLogprobs, want.map((w) => w.modelLogprob), LP_TOL, `${at} model`);
        if (banned) {
          ok(got.tokens.every((t) => !eos.includes(t)), `${at}: drew a banned EOS`);
          deepStrictEqual(Array.from(got.state).filter((_, i) => i % 2 === 0), [0, 0, 0, 0]);
        }
        if (params.temperature === 0) {
          // Greedy: row 0 takes EOS 17 once allowed, its runner-up while banned.
          const row0 = Array.from(logits.subarray(0, v));
          const runnerUp = row0.indexOf(Math.max(...row0.filter((_, j) => j !== 17)));
          strictEqual(got.tokens[0], banned ? runnerUp : 17, at);
          strictEqual(got.state[0], banned ? 0 : 1, `${at} reason`);
          // The model log-prob is the unmasked log_softmax.
          const z = Math.log(row0.reduce((s, l) => s + Math.exp(l), 0));
          ok(Math.abs(got.modelLogprobs[0] - (row0[got.tokens[0]] - z)) < 1e-4, `${at} model lp`);
        }
      }
    }
  },
});

// The WGSL log only has to be within 2^-21 absolute on [0.5, 2]. sample.wgsl's gumbel() runs here
// with its log replaced by one that adds that much error on purpose (up, down, or rounded to a
// multiple of 2^-21, as coarse hardware log2s do), on top of the device's own log (itself within
// 2^-21): at most 2^-20 off, so e = -log u is within 2^-20 / (1/64) = 2^-14 ≈ 6.1e-5 relative on
// the log branch (the series branch calls no log on u), and the noise -log e within that plus
// 2^-20 plus f32 rounding: 1e-4. The old -log(-log u) fails every mode (NaN or +inf at the top
// draws under modes 1 and 3; even lavapipe's own log, mode 0, left it 1.5e-4 off at d = 2^-11).
Deno.test({
  name: "sample.wgsl's gumbel() stays finite and accurate next to u = 1 under any log WGSL allows",
  ignore: noGpu,
  async fn() {
    const ctx = (await testContext())!;
    const fn = sampleCode.match(/fn gumbel\(bits: u32\) -> f32 \{[^}]*\}/)?.[0];
    ok(fn, "sample.wgsl defines fn gumbel(bits: u32) -> f32 with a brace-free body");
    const code = `override MODE: u32;
fn spec_log(x: f32) -> f32 {
  let l = log(x);
  if (x < 0.5 || x > 2.0) { return l; }
  if (MODE == 1u) { return l + 4.7e-7; }
  if (MODE == 2u) { return l - 4.7e-7; }
  if (MODE == 3u) { return round(l * 2097152.0) / 2097152.0; }
  return l;
}
${fn.replaceAll("log(", "spec_log(")}
@group(0) @binding(0) var<storage, read> bits: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < arrayLength(&bits)) { out[g.x] = gumbel(bits[g.x]); }
}`;
    // The 23-bit draws k: the top 4096 (u = 1 - 2^-24 down), a sweep of the whole range from
    // k = 0, and both sides of the series' threshold d = 1/64 (k = 2^23 - 2^17).
    const ks: number[] = [];
    for (let k = 2 ** 23 - 4096; k < 2 ** 23; k++) ks.push(k);
    for (let k = 0; k < 2 ** 23 - 4096; k += 2039) ks.push(k);
    for (let k = 2 ** 23 - 2 ** 17 - 64; k < 2 ** 23 - 2 ** 17 + 64; k++) ks.push(k);
    // Low 9 bits set from k: the kernel must ignore them.
    const words = Uint32Array.from(ks, (k) => ((k << 9) | (k & 0x1ff)) >>> 0);
    const want = ks.map((k) => -Math.log(-Math.log1p(-(2 ** 23 - k - 0.5) / 2 ** 23)));
    const n = ks.length;
    const input = ctx.upload(words, "bits");
    for (const mode of [0, 1, 2, 3]) {
      const out = poisoned(ctx, n, "out");
      const pipeline = ctx.pipeline("gumbel_spec_log", code, { constants: { MODE: mode } });
      const enc = recordPass(ctx, (pass) => {
        ctx.dispatch(pass, pipeline, [input, out], [Math.ceil(n / 64), 1, 1]);
      });
      const got = await readFloats(ctx, out, n, enc);
      for (let i = 0; i < n; i++) {
        const err = Math.abs(got[i] - want[i]);
        ok(
          err <= 1e-4,
          `log mode ${mode}, k = ${ks[i]} (u = 1 - ${(2 ** 23 - ks[i] - 0.5) / 2 ** 23}): ` +
            `noise ${got[i]}, want ${want[i]} (error ${err} > 1e-4)`,
        );
      }
      ctx.release(out);
    }
    ctx.release(input);
  },
});
