// `deno task train`'s error output (trainCli): the usage line follows the errors of the command
// line and the config only, not a failure of the run (a GPU error, a data file that cannot be
// read); the exit status by error class.
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { rlHeldOutText, trainCli, type TrainRun } from "./train.ts";
import { DEFAULT_CONFIG } from "../trainer/config.ts";
import { NonFiniteLossError } from "../trainer/train_loop.ts";
import { undescribedFlags } from "../internal/test_utils.ts";

const USAGE = /^usage: deno task train /;

/** Runs trainCli with its output collected and the run replaced by `run`. */
async function cli(args: string[], run?: TrainRun) {
  const out: string[] = [];
  const err: string[] = [];
  let ran = 0;
  const code = await trainCli(args, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    run: run && ((config, parsed) => {
      ran++;
      return run(config, parsed);
    }),
  });
  return { code, out, err, ran };
}

Deno.test("trainCli() prints the usage after a bad flag, override or config key", async () => {
  const flag = await cli(["--bogus"], () => Promise.resolve());
  strictEqual(flag.code, 2);
  ok(/^error: Cannot parse the command line: .*bogus/.test(flag.err[0]), flag.err.join("\n"));
  ok(USAGE.test(flag.err[1]), flag.err.join("\n"));
  strictEqual(flag.ran, 0, "the run started after a bad flag");
  const key = await cli(["--trainer.lr=-1"], () => Promise.resolve());
  strictEqual(key.code, 2);
  ok(/key "trainer\.lr"/.test(key.err[0]), key.err.join("\n"));
  ok(USAGE.test(key.err[1]), key.err.join("\n"));
  strictEqual(key.ran, 0);
  // A missing config file (Deno.errors.NotFound: exit status 1) is the command line's too.
  const file = await cli(["--config", "/nonexistent/halo.yaml"], () => Promise.resolve());
  strictEqual(file.code, 1);
  ok(USAGE.test(file.err.at(-1)!), file.err.join("\n"));
  // --help: the usage on standard output, nothing on standard error.
  const help = await cli(["--help"], () => Promise.resolve());
  deepStrictEqual([help.code, help.err, help.ran], [0, [], 0]);
  ok(USAGE.test(help.out[0]));
  // …followed by a line for each of its options.
  const text = help.out.join("\n");
  deepStrictEqual(undescribedFlags(text), [], text);
  ok(text.split("\n").length > 10, text);
});

Deno.test("trainCli() prints a failure of the run without the usage", async () => {
  // Errors as WebGPU raises them in a run: out of memory at a readback, a lost device's mapAsync.
  const failures: [unknown, number][] = [
    [
      new Error(
        "WebGPU reported errors while running the recorded work: not enough memory left; " +
          "Buffer with 'kv' label is invalid",
      ),
      1,
    ],
    [new DOMException("validation error occurred", "OperationError"), 1],
    // The run's own refusals (e.g. the GPU memory plan's RangeError) keep exit status 2.
    [new RangeError("Cannot run RL: the estimated GPU memory peak 9.00 GB exceeds"), 2],
    [new NonFiniteLossError(3, "loss/total", NaN, null), 3],
  ];
  for (const [error, code] of failures) {
    const run = await cli(["--trainer.steps=1"], () => Promise.reject(error));
    const text = run.err.join("\n");
    strictEqual(run.ran, 1);
    strictEqual(run.code, code, text);
    deepStrictEqual(run.err, [`error: ${(error as Error).message}`]);
    ok(!run.err.some((l) => USAGE.test(l)), text);
  }
  // The run is called with the config read from the command line.
  let steps = 0;
  const ok0 = await cli(["--trainer.steps=7"], (config) => {
    steps = config.trainer.steps;
    return Promise.resolve();
  });
  deepStrictEqual([ok0.code, ok0.err, steps], [0, [], 7]);
});

Deno.test("trainCli() prints a real run's failure (a prompt file it cannot read) without the usage", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_train_cli_" });
  try {
    const missing = join(dir, "missing.jsonl");
    // The demo config (RL on the arithmetic model), its prompts from a file that is not there:
    // the config is valid; runRl fails reading the file.
    const run = await cli([
      `--run.outDir=${dir}`,
      "--rl.data.source=jsonl",
      `--rl.data.path=${missing}`,
      "--backend=cpu",
    ]);
    const text = run.err.join("\n");
    ok(run.err.some((l) => l.startsWith("error: ") && l.includes(missing)), text);
    ok(!run.err.some((l) => USAGE.test(l)), text);
    strictEqual(run.code, 1, text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainCli() refuses what the model's config.json rules out before the run starts, with the usage", async () => {
  // The cosine warm-up as long as the run (the run would refuse it after its backend started):
  // refused at config load.
  const warm = await cli(
    ["--config", "configs/tiny_sft.yaml", "--trainer.steps=1", "--trainer.warmupSteps=1"],
    () => Promise.resolve(),
  );
  strictEqual(warm.code, 2);
  strictEqual(warm.ran, 0, "the run started");
  ok(
    /^error: Cannot load config "configs\/tiny_sft\.yaml": key "trainer\.warmupSteps" \(set by "--trainer\.warmupSteps=1"\) must be < "trainer\.steps" \(1\)/
      .test(warm.err[0]),
    warm.err.join("\n"),
  );
  ok(USAGE.test(warm.err[1]), warm.err.join("\n"));
  // An align layer the demo's 2-layer model does not have.
  const layer = await cli(
    ["--rl.losses=[{name: clipped_pg}, {name: hidden_align, layer: 3}]"],
    () => Promise.resolve(),
  );
  strictEqual(layer.code, 2);
  strictEqual(layer.ran, 0);
  ok(/key "rl\.losses\[1\]\.layer" must be "final" or a decoder layer/.test(layer.err[0]));
});

Deno.test("rlHeldOutText() says the evaluation is off or missing rather than printing ?", () => {
  const withEval = (every: number, final: boolean) => ({
    ...DEFAULT_CONFIG,
    rl: { ...DEFAULT_CONFIG.rl, eval: { ...DEFAULT_CONFIG.rl.eval, every, final, samples: 8 } },
  });
  const start = { "eval/avg@8": 0.098, "eval/pass@8": 0.42 };
  const end = { "eval/avg@8": 0.122, "eval/pass@8": 0.428 };
  strictEqual(
    rlHeldOutText(withEval(0, true), { startMetrics: start, metrics: end }),
    "held-out avg@8 9.8% -> 12.2%, pass@8 42.0% -> 42.8%",
  );
  // Off: no evaluation at the start nor after the last step.
  const off = rlHeldOutText(withEval(0, false), { startMetrics: {}, metrics: {} });
  strictEqual(off, `no held-out evaluation ("rl.eval.every" 0, "rl.eval.final" false)`);
  // On a cadence that misses the last step.
  const cadence = rlHeldOutText(withEval(2, false), { startMetrics: start, metrics: {} });
  strictEqual(
    cadence,
    `held-out avg@8 9.8% -> (not evaluated after the last step: "rl.eval.final" false), pass@8 ` +
      `42.0% -> (not evaluated after the last step: "rl.eval.final" false)`,
  );
  // A cadence past the run's steps: no evaluation either.
  const past = rlHeldOutText(withEval(50, false), { startMetrics: {}, metrics: {} });
  strictEqual(
    past,
    `no held-out evaluation ("rl.eval.every" 50 reached no step, "rl.eval.final" false)`,
  );
  ok(![off, cadence, past].some((t) => t.includes("?")));
});
