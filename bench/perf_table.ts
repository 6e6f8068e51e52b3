/**
 * The table of `bench/gpu.sh`: halo's full-size benchmark lines and the PyTorch baselines of the
 * same run, read from its log, as a Markdown table of ratios against the targets of issue #12
 * (`../shared/gpu/README.md`): f32 matmul ≥ 50% of PyTorch f32 (TF32 off) at n = 8192, sampling
 * ≥ 2× HF `generate` fp32 at batch 64 and ≥ 5× at batch 1, LoRA step ≥ 0.5× HF + PEFT fp32.
 * A row whose numbers are missing from the log says so instead of a ratio.
 *
 *   deno run --allow-read bench/perf_table.ts OUT/perf.log
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

function first(log: string, re: RegExp): number | null {
  const m = log.match(re);
  return m ? Number(m[1]) : null;
}

/**
 * The rows of the ratio table from a `bench/gpu.sh` log.
 *
 * @param log The log's text.
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
export function perfRows(log: string): PerfRow[] {
  const gflops = first(log, /^matmul 8192x8192x8192: ([\d.]+) GFLOP\/s/m);
  const decode = (b: number) =>
    first(log, new RegExp(`^qwen3-0\\.6b-shape b${b}: decode ([\\d.]+) tokens/s`, "m"));
  const hfGen = (b: number) =>
    first(
      log,
      new RegExp(`^hf_generate dtype=float32 tf32=False batch=${b} new=\\d+ tok/s=([\\d.]+)`, "m"),
    );
  return [
    {
      what: "f32 matmul, n = 8192",
      halo: gflops === null ? null : gflops / 1000,
      torch: first(log, /^torch_matmul float32 tf32=False n=8192 ms=[\d.]+ TFLOP\/s=([\d.]+)/m),
      unit: "TFLOP/s",
      target: 0.5,
    },
    {
      what: "sampling, Qwen3-0.6B shape, batch 1",
      halo: decode(1),
      torch: hfGen(1),
      unit: "tokens/s",
      target: 5,
    },
    {
      what: "sampling, Qwen3-0.6B shape, batch 64",
      halo: decode(64),
      torch: hfGen(64),
      unit: "tokens/s",
      target: 2,
    },
    {
      what: "LoRA r=16 train step, Qwen3-0.6B shape",
      halo: first(log, /^train step qwen3-0\.6B shape LoRA r=16 [^:]*: ([\d.]+) tokens\/s/m),
      torch: first(log, /^hf_peft_lora_step dtype=float32 tf32=False batch=\S+ tok\/s=([\d.]+)/m),
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
  const path = Deno.args[0];
  if (path === undefined) {
    console.error("usage: deno run --allow-read bench/perf_table.ts PERF_LOG");
    Deno.exit(2);
  }
  console.log(perfMarkdown(perfRows(await Deno.readTextFile(path))));
}
