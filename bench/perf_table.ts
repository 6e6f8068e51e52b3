/**
 * The table of `bench/gpu.sh`: halo's full-size benchmark lines and the PyTorch baselines of the
 * same run, read from its log, as a Markdown table of ratios against the targets of issue #12
 * (`../shared/gpu/README.md`): f32 matmul ≥ 50% of PyTorch f32 (TF32 off) at n = 8192, sampling
 * ≥ 2× HF `generate` fp32 at batch 64 and ≥ 5× at batch 1, LoRA step ≥ 0.5× HF + PEFT fp32.
 * A row whose numbers are missing from the log says so instead of a ratio. Sampling is compared
 * as HF's is timed: batch · 256 new tokens after 64-token prompts over the whole warm `generate`
 * call, prefill included ({@linkcode samplingLine}); the LoRA step includes the AdamW update.
 *
 *   deno run --allow-read bench/perf_table.ts [--any-size] OUT/perf.log
 *
 * @module
 */

/** One row of the table. */
export interface PerfRow {
  /** What is compared. */
  what: string;
  /** halo's number and unit, or null when the log lacks it. */
  halo: number | null;
  /** PyTorch's number (same unit), or null. */
  torch: number | null;
  /** The unit of both numbers. */
  unit: string;
  /** The target ratio halo / PyTorch. */
  target: number;
}

/** Deno's colour codes (`deno bench` colours console output inside a bench, even when piped). */
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * The largest number that `re`'s first group captures anywhere in the log (colour codes
 * stripped, lines not anchored: inside a bench `deno bench` prefixes each console line with
 * `<bench name>: `, and it calls a bench's function at least 3 times, the first cold).
 */
function best(log: string, re: RegExp): number | null {
  let top: number | null = null;
  for (const m of log.replace(ANSI, "").matchAll(new RegExp(re.source, "g"))) {
    const x = Number(m[1]);
    if (Number.isFinite(x) && (top === null || x > top)) top = x;
  }
  return top;
}

/**
 * The line `bench/generate_bench.ts` prints for a whole `generate` call, the form
 * {@linkcode perfRows} reads: tokens/s = batch · new tokens / seconds of the call (prefill
 * included), as HF's `generate` is timed by `../shared/gpu/torch_baselines.py`.
 *
 * @param model The model's label (`"qwen3-0.6b-shape"` at full size).
 * @param batch Sequences in the call.
 * @param options `promptLen`, `newTokens` (per sequence), `seconds` (the whole call), and a
 * free-text `detail` appended in parentheses.
 * @returns The line.
 *
 * @example
 * ```ts
 * import { samplingLine } from "./perf_table.ts";
 * const line = samplingLine("qwen3-0.6b-shape", 64, { promptLen: 64, newTokens: 256, seconds: 4 });
 * console.log(line); // "qwen3-0.6b-shape b64: generate 4096.0 tokens/s (64×256 new tokens …"
 * ```
 */
export function samplingLine(
  model: string,
  batch: number,
  options: { promptLen: number; newTokens: number; seconds: number; detail?: string },
): string {
  const { promptLen, newTokens, seconds, detail } = options;
  return `${model} b${batch}: generate ${(batch * newTokens / seconds).toFixed(1)} tokens/s ` +
    `(${batch}×${newTokens} new tokens after ${promptLen}-token prompts in ${
      seconds.toFixed(3)
    } s, ` +
    `prefill included${detail ? `; ${detail}` : ""})`;
}

/** Options of {@linkcode perfRows}. */
export interface PerfRowsOptions {
  /**
   * Read the small shapes of a run without `HALO_BENCH_FULL` (`bench/gpu.sh`'s dry run): the
   * largest square matmul instead of n = 8192, and the cut 0.6B-shaped models. Default false.
   */
  anySize?: boolean;
}

/**
 * The rows of the ratio table from a `bench/gpu.sh` log: for each number the best value the log
 * holds (colour codes and `deno bench`'s `<bench name>: ` prefixes ignored).
 *
 * @param log The log's text.
 * @param options See {@linkcode PerfRowsOptions}.
 * @returns One row per target.
 *
 * @example Matmul at n = 8192
 * ```ts
 * import { perfRows } from "./perf_table.ts";
 * const log = "matmul 8192x8192x8192: 30000.00 GFLOP/s (best of 5)\n" +
 *   "torch_matmul float32 tf32=False n=8192 ms=21.3 TFLOP/s=51.6\n";
 * console.log(perfRows(log)[0].halo, perfRows(log)[0].torch); // 30 51.6
 * ```
 */
export function perfRows(log: string, options: PerfRowsOptions = {}): PerfRow[] {
  const any = options.anySize ?? false;
  let n = 8192;
  if (any) {
    const sizes = [...log.replace(ANSI, "").matchAll(/matmul (\d+)x(\d+)x(\d+): [\d.]+ GFLOP/g)]
      .filter((m) => m[1] === m[2] && m[2] === m[3]).map((m) => Number(m[1]));
    if (sizes.length > 0) n = Math.max(...sizes);
  }
  const gflops = best(log, new RegExp(`(?:^|\\s)matmul ${n}x${n}x${n}: ([\\d.]+) GFLOP/s`));
  const model = any ? "qwen3-0\\.6b-shape[\\w-]*" : "qwen3-0\\.6b-shape";
  const sampling = (b: number) =>
    best(log, new RegExp(`(?:^|\\s)${model} b${b}: generate ([\\d.]+) tokens/s`));
  const hfGen = (b: number) =>
    best(
      log,
      new RegExp(`hf_generate dtype=float32 tf32=False batch=${b} new=256 tok/s=([\\d.]+)`),
    );
  const train = any ? "qwen3-0\\.6B shape(?: \\([^)]*\\))?" : "qwen3-0\\.6B shape";
  return [
    {
      what: `f32 matmul, n = ${n}`,
      halo: gflops === null ? null : gflops / 1000,
      torch: best(
        log,
        new RegExp(`torch_matmul float32 tf32=False n=${n} ms=[\\d.]+ TFLOP/s=([\\d.]+)`),
      ),
      unit: "TFLOP/s",
      target: 0.5,
    },
    {
      what: "sampling, Qwen3-0.6B shape, batch 1",
      halo: sampling(1),
      torch: hfGen(1),
      unit: "tokens/s",
      target: 5,
    },
    {
      what: "sampling, Qwen3-0.6B shape, batch 64",
      halo: sampling(64),
      torch: hfGen(64),
      unit: "tokens/s",
      target: 2,
    },
    {
      what: "LoRA r=16 train step + AdamW, Qwen3-0.6B shape",
      halo: best(log, new RegExp(`train step ${train} LoRA r=16 [^:]*: ([\\d.]+) tokens/s`)),
      torch: best(log, /hf_peft_lora_step dtype=float32 tf32=False batch=\S+ tok\/s=([\d.]+)/),
      unit: "tokens/s",
      target: 0.5,
    },
  ];
}

/**
 * The rows as a Markdown table.
 *
 * @param rows From {@linkcode perfRows}.
 * @returns The table.
 *
 * @example A missing number
 * ```ts
 * import { perfMarkdown } from "./perf_table.ts";
 * console.log(perfMarkdown([{ what: "x", halo: null, torch: 2, unit: "tokens/s", target: 1 }]));
 * ```
 */
export function perfMarkdown(rows: readonly PerfRow[]): string {
  const fmt = (x: number | null) => (x === null ? "missing" : x.toFixed(x < 10 ? 2 : 0));
  const lines = [
    "| what | halo | PyTorch | unit | ratio | target | met |",
    "| --- | ---: | ---: | --- | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    const ratio = r.halo !== null && r.torch !== null && r.torch > 0 ? r.halo / r.torch : null;
    const met = ratio === null ? "—" : ratio >= r.target ? "yes" : "no";
    lines.push(
      `| ${r.what} | ${fmt(r.halo)} | ${fmt(r.torch)} | ${r.unit} | ` +
        `${ratio === null ? "—" : ratio.toFixed(2)} | ≥ ${r.target} | ${met} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const anySize = Deno.args.includes("--any-size");
  const path = Deno.args.find((a) => a !== "--any-size");
  if (path === undefined) {
    console.error("usage: deno run --allow-read bench/perf_table.ts [--any-size] PERF_LOG");
    Deno.exit(2);
  }
  console.log(perfMarkdown(perfRows(await Deno.readTextFile(path), { anySize })));
}
