import assert from "node:assert/strict";
import { perfMarkdown, perfRows } from "./perf_table.ts";

// Lines in the formats the benchmarks and ../shared/gpu/*.py print (one of each, plus noise).
const LOG = [
  "### python3 ../shared/gpu/torch_matmul.py",
  "torch_matmul float32 tf32=False n=4096 ms=2.9 TFLOP/s=47.0",
  "torch_matmul float32 tf32=False n=8192 ms=21.3 TFLOP/s=51.6",
  "hf_generate dtype=float32 tf32=False batch=1 new=256 tok/s=35 s=7.31",
  "hf_generate dtype=float32 tf32=False batch=64 new=256 tok/s=1987 s=8.25",
  "hf_generate dtype=bfloat16 tf32=False batch=64 new=256 tok/s=678 s=24.1",
  "hf_peft_lora_step dtype=float32 tf32=False batch=8x512 tok/s=11123 step_s=0.368 peak_GiB=27.9",
  "matmul 4096x4096x4096: 3500.00 GFLOP/s (best of 5, 10 dispatches per submit) on NVIDIA",
  "matmul 8192x8192x8192: 3800.50 GFLOP/s (best of 5, 10 dispatches per submit) on NVIDIA",
  "qwen3-0.6b-shape b1: decode 210.0 tokens/s (128 tokens in 0.610 s), 3 readbacks for 129 steps",
  "train step qwen3-0.6B shape LoRA r=16 8×512 tokens: 2400.5 tokens/s, ~1.0 GFLOP/s (best of 5)",
].join("\n");

Deno.test("perfRows() reads halo's and PyTorch's numbers from a bench/gpu.sh log", () => {
  const rows = perfRows(LOG);
  assert.deepEqual(rows.map((r) => [r.halo, r.torch]), [
    [3.8005, 51.6],
    [210, 35],
    [null, 1987], // halo's batch-64 decode line is missing
    [2400.5, 11123],
  ]);
  const table = perfMarkdown(rows);
  assert.match(
    table,
    /\| f32 matmul, n = 8192 \| 3\.80 \| 52 \| TFLOP\/s \| 0\.07 \| ≥ 0\.5 \| no \|/,
  );
  assert.match(table, /batch 1 \| 210 \| 35 \| tokens\/s \| 6\.00 \| ≥ 5 \| yes \|/);
  assert.match(table, /batch 64 \| missing \| 1987 \| tokens\/s \| — \| ≥ 2 \| — \|/);
});
