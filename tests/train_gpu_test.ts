// The WebGPU train backend (WebGpuQwen3.backward, float32) against the CPU one (float64): the
// same run gives the same metrics up to float32 rounding. Skipped without a WebGPU adapter.
import { ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { noGpu } from "../gpu/test_utils.ts";
import { runSft } from "../trainer/sft.ts";
import { QUIET, tinyConfig, withTempDir } from "./train_utils.ts";

async function metricLines(runDir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(join(runDir, "metrics.jsonl"));
  return text.trim().split("\n").map((line) => JSON.parse(line));
}

function close(a: number, b: number, rel: number): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-12);
}

// optimizer: where the WebGPU run's AdamW runs (GpuAdamw, or the host chain on read-back
// gradients); the CPU run uses the host chain. The HILO case has the load-balancing term over 2
// micro-batches: the device run sums them (balance weight 1/2 each), the CPU's token-weighted
// accumulation weighs them by loss tokens (balance weight Σw / (2·w_i)); both take the mean of
// the micro-batches' balance terms, so the runs agree.
const CASES = [
  { lora: false, optimizer: "device" },
  { lora: true, optimizer: "device" },
  { lora: false, optimizer: "host" },
  { lora: "hilo", optimizer: "device" },
] as const;

for (const { lora, optimizer } of CASES) {
  Deno.test({
    name:
      `runSft() on WebGPU matches the CPU run to float32 rounding (${
        lora === "hilo" ? "HILO with balance loss" : lora ? "LoRA" : "full"
      }, ` +
      `optimizer on the ${optimizer})`,
    ignore: noGpu,
    async fn() {
      await withTempDir(async (dir) => {
        const extra = [
          "--trainer.steps=3",
          "--eval.every=0",
          ...(lora === "hilo"
            ? [
              "--adapters.kind=hilo",
              "--adapters.hilo.experts=3",
              "--adapters.hilo.rank=2",
              "--adapters.hilo.balanceCoef=0.05",
              "--trainer.microBatches=2",
              "--trainer.lr=3e-2",
            ]
            : lora
            ? ["--adapters.kind=lora", "--adapters.r=2", "--trainer.lr=3e-2"]
            : []),
        ];
        const gpu = await runSft(
          await tinyConfig(dir, [
            "--run.name=gpu",
            "--backend=webgpu",
            `--trainer.optimizer=${optimizer}`,
            ...extra,
          ]),
          QUIET,
        );
        ok(gpu.backend.startsWith("webgpu"), gpu.backend);
        const cpu = await runSft(await tinyConfig(dir, ["--run.name=cpu", ...extra]), QUIET);
        const a = await metricLines(gpu.runDir);
        const b = await metricLines(cpu.runDir);
        strictEqual(a.length, b.length);
        a.forEach((line, i) => {
          if (lora === "hilo" && "loss/nll" in b[i]) {
            ok("loss/balance" in line && "loss/balance" in b[i]);
          }
          for (
            const key of [
              "loss/nll",
              "eval/loss",
              "optim/grad_norm",
              "optim/update_norm",
              "loss/balance",
            ]
          ) {
            if (!(key in b[i])) continue;
            // The device optimizer does not measure the update's norm (it stays on the GPU).
            if (key === "optim/update_norm" && optimizer === "device") {
              ok(!(key in line), "update_norm from a device run");
              continue;
            }
            // float32 math on the GPU vs float64 on the CPU, through 3 AdamW steps.
            ok(
              close(line[key], b[i][key], 1e-4),
              `step ${line.step} ${key}: ${line[key]} vs ${b[i][key]}`,
            );
          }
          strictEqual(line["eval/accuracy"], b[i]["eval/accuracy"]);
        });
      });
    },
  });
}
