import assert from "node:assert/strict";
import { perfMarkdown, perfRows, samplingLine } from "./perf_table.ts";

// PyTorch's lines in the formats ../shared/gpu/torch_{matmul,baselines}.py print (plus noise).
const TORCH = [
  "### python3 .gpu/torch/torch_matmul.py",
  "torch_matmul float32 tf32=False n=4096 ms=2.9 TFLOP/s=47.0",
  "torch_matmul float32 tf32=False n=8192 ms=21.3 TFLOP/s=51.6",
  "hf_generate dtype=float32 tf32=False batch=1 new=256 tok/s=35 s=7.31",
  "hf_generate dtype=float32 tf32=False batch=64 new=256 tok/s=1987 s=8.25",
  "hf_generate dtype=bfloat16 tf32=False batch=64 new=256 tok/s=678 s=24.1",
  "hf_peft_lora_step dtype=float32 tf32=False batch=8x512 tok/s=11123 step_s=0.368 peak_GiB=27.9",
].join("\n");

/**
 * Real `deno bench` output of a tiny bench that prints halo's lines from inside its function, as
 * bench/generate_bench.ts and friends do: Deno colours them and prefixes `<bench name>: `, even
 * when piped, and calls the function 3 times (the first one cold: here the slowest numbers).
 */
async function benchOutput(): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    const table = new URL("./perf_table.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/lines_bench.ts`,
      `import { samplingLine } from ${JSON.stringify(table)};
let call = 0;
Deno.bench({ name: "qwen3-0.6b-shape b1 generate 256", n: 1, warmup: 0, async fn(b) {
  b.start(); await new Promise((r) => setTimeout(r, 1)); b.end();
  const c = Math.min(++call, 3); // Deno calls it 3 times or more
  console.log(samplingLine("qwen3-0.6b-shape", 1, { promptLen: 64, newTokens: 256, seconds: 4 / c }));
  console.log(\`matmul 8192x8192x8192: \${(1000 * c).toFixed(2)} GFLOP/s (kernel tile128 vec4)\`);
} });
addEventListener("unload", () => console.log(
  "train step qwen3-0.6B shape LoRA r=16 8×512 tokens: 2400.5 tokens/s, ~1.0 GFLOP/s (best of 5)",
));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["bench", "--no-check", "--no-lock", "--no-config", "lines_bench.ts"],
      cwd: dir,
      env: { NO_COLOR: "" }, // colours stay on, as on the GPU machine
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    return text;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("perfRows() reads halo's lines from real deno bench output and PyTorch's", async () => {
  const halo = await benchOutput();
  // What broke the first version (anchored at a line start): the prefix and the colours.
  assert.doesNotMatch(halo, /^qwen3-0\.6b-shape b1: generate/m);
  assert.ok(halo.includes("\x1b["), "deno bench colours its output");
  const rows = perfRows(`${TORCH}\n${halo}`);
  assert.deepEqual(rows.map((r) => [r.halo, r.torch]), [
    [3, 51.6], // the best of the three calls, 3000 GFLOP/s
    [192, 35], // 256 tokens in 4/3 s, the warm third call
    [null, 1987], // halo's batch-64 line is missing
    [2400.5, 11123],
  ]);
  const table = perfMarkdown(rows);
  assert.match(
    table,
    /\| f32 matmul, n = 8192 \| 3\.00 \| 52 \| TFLOP\/s \| 0\.06 \| ≥ 0\.5 \| no \|/,
  );
  assert.match(table, /batch 1 \| 192 \| 35 \| tokens\/s \| 5\.49 \| ≥ 5 \| yes \|/);
  assert.match(table, /batch 64 \| missing \| 1987 \| tokens\/s \| — \| ≥ 2 \| — \|/);
});

Deno.test("perfRows() with anySize reads a dry run's small shapes", () => {
  const log = [
    "matmul 256x256x256: 1.50 GFLOP/s (kernel tile64 vec4)",
    "matmul 512x512x512: 2.50 GFLOP/s (kernel tile128 vec4)",
    samplingLine("qwen3-0.6b-shape-1layer-v4096", 1, { promptLen: 2, newTokens: 3, seconds: 0.5 }),
    "train step qwen3-0.6B shape (2 layers, vocab 4096) LoRA r=16 1×64 tokens: 12.5 tokens/s, x",
  ].join("\n");
  assert.deepEqual(perfRows(log, { anySize: true }).map((r) => [r.what, r.halo]), [
    ["f32 matmul, n = 512", 0.0025],
    ["sampling, Qwen3-0.6B shape, batch 1", 6],
    ["sampling, Qwen3-0.6B shape, batch 64", null],
    ["LoRA r=16 train step + AdamW, Qwen3-0.6B shape", 12.5],
  ]);
  assert.equal(perfRows(log)[0].halo, null); // full mode wants n = 8192
});
