import assert from "node:assert/strict";
import { join } from "node:path";
import { KEPT_MARKER, main, readExperiment, runHiloExperiment } from "./hilo_experiment.ts";
import { loadConfig } from "./load_config.ts";
import { checkRunConfig } from "../trainer/check_run_config.ts";
import { logOf } from "../internal/test_utils.ts";

const SMALL = [
  "--trainer.steps=2",
  "--trainer.batchSize=2",
  "--trainer.warmupSteps=0",
  "--data.trainSize=8",
  "--data.evalSize=2",
  "--eval.samples=2",
  "--eval.maxNewTokens=3",
  "--checkpoint.every=1",
  "--adapters.targets=q_proj,down_proj",
];

/** Every file under `dir` with its text (path relative to `dir`), sorted; {} when `dir` is absent. */
async function tree(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(join(dir, prefix)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return out;
    throw error;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = join(prefix, e.name);
    if (e.isDirectory) {
      out[`${rel}/`] = "";
      Object.assign(out, await tree(dir, rel));
    } else out[rel] = await Deno.readTextFile(join(dir, rel));
  }
  return out;
}

async function writeExperiment(dir: string, variants: string): Promise<string> {
  const path = join(dir, "exp.yaml");
  await Deno.writeTextFile(
    path,
    `config: experiments/hilo_sft.yaml\noutDir: ${join(dir, "runs")}\n` +
      `report: ${join(dir, "results", "hilo.md")}\nseeds: [0, 1]\nvariants:\n${variants}`,
  );
  return path;
}

Deno.test("runHiloExperiment() runs each variant into --out-dir (the real runs untouched), writes the report and chart, then skips done runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  try {
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    label: LoRA r=2\n    overrides: ["--adapters.kind=lora", "--adapters.r=2"]\n` +
        `  - name: hilo\n    overrides: ["--adapters.kind=hilo", "--adapters.hilo.experts=2-3", ` +
        `"--adapters.hilo.rank=1-2"]\n`,
    );
    // The experiment's real runs: lora_s0 in progress (a checkpoint at step 1, fewer than the
    // smoke test's 2 steps: it would be resumed), hilo_s0 finished (it would be refused, "delete").
    const real = join(dir, "runs");
    await Deno.mkdir(join(real, "lora_s0", "step_1"), { recursive: true });
    await Deno.writeTextFile(join(real, "lora_s0", "step_1", "meta.json"), "{}\n");
    await Deno.writeTextFile(join(real, "lora_s0", "metrics.jsonl"), '{"step":0}\n');
    await Deno.mkdir(join(real, "hilo_s0"));
    await Deno.writeTextFile(join(real, "hilo_s0", "result.json"), '{"real":true}\n');
    const realBefore = await tree(real);
    const report = join(dir, "results", "small.md");
    const smoke = join(dir, "smoke");
    const first = await runHiloExperiment(path, {
      overrides: SMALL,
      report,
      outDir: smoke,
      seeds: [0],
      log: () => {},
    });
    // The overridden runs went to their own folder; the real ones are as they were.
    assert.deepEqual(await tree(real), realBefore);
    for (const name of ["lora_s0", "hilo_s0"]) {
      assert.ok((await tree(join(smoke, name)))["result.json"], `${name} ran in --out-dir`);
    }
    assert.equal(first.report, report);
    assert.equal(first.ran, 2);
    assert.equal(first.skipped, 0);
    const text = await Deno.readTextFile(first.report);
    const svg = await Deno.readTextFile(first.chart);
    assert.ok(svg.startsWith("<svg") && svg.includes("LoRA r=2"));
    assert.match(text, /\| LoRA r=2 \(n=1\) +\| 1 \(LoRA\) +\|/);
    // HILO's allocation and counts: layer 0 has 2 experts of rank 1, layer 1 3 of rank 2.
    const [lora, hilo] = first.records;
    assert.deepEqual(hilo.allocation.map((l) => [l.experts, l.rank]), [[2, 1], [3, 2]]);
    assert.ok(hilo.activePerToken < hilo.trainable, "top-2 of 3 experts uses fewer parameters");
    assert.equal(lora.activePerToken, lora.trainable);
    for (const r of first.records) {
      assert.equal(r.steps, 2);
      assert.ok(r.trainTokens > 0 && r.trainSeconds > 0);
      for (const task of ["arithmetic", "sort", "count", "base"]) {
        assert.equal(r.metrics[`eval/samples/${task}`], 2, task);
        const acc = r.metrics[`eval/accuracy/${task}`];
        assert.ok(acc >= 0 && acc <= 1);
      }
      // Overall is the mean of the equal-sized tasks.
      const mean = ["arithmetic", "sort", "count", "base"]
        .reduce((a, t) => a + r.metrics[`eval/accuracy/${t}`], 0) / 4;
      assert.ok(Math.abs(r.metrics["eval/accuracy"] - mean) < 1e-12);
    }
    // The base model's row: the step-0 evaluation of both runs (adapters start as no-ops).
    assert.match(text, /\| base model, before training \(step-0 evaluation of 2 run\(s\)\) +\|/);
    assert.match(text, /## Difference from LoRA r=2 .*\n[^]*\| hilo +\| +1 \| +-?\d+\.\d \|/);
    assert.match(text, /## Exact config/);
    assert.match(text, /95% Student-t interval/);

    // A section after the kept marker (e.g. the bench's "Dispatch") survives a regeneration.
    const kept = `${KEPT_MARKER}\n\n## Dispatch\n\nMeasured elsewhere.\n`;
    await Deno.writeTextFile(first.report, `${text}\n${kept}`);
    // A second call trains nothing and gives the same numbers.
    const again = await runHiloExperiment(path, {
      overrides: SMALL,
      report,
      outDir: smoke,
      seeds: [0],
      log: () => {},
    });
    const regenerated = await Deno.readTextFile(again.report);
    assert.ok(regenerated.endsWith(kept), "the kept section is at the end");
    assert.equal(regenerated.split("## Exact config").length, 2, "one generated report");
    assert.equal(regenerated.split(KEPT_MARKER).length, 2, "one kept section");
    assert.equal(again.ran, 0);
    assert.equal(again.skipped, 2);
    assert.deepEqual(again.records.map((r) => r.metrics), first.records.map((r) => r.metrics));

    // A finished run is not reused under another config: the changed key is named, nothing runs.
    const before = await Deno.readTextFile(first.report);
    await assert.rejects(
      runHiloExperiment(path, {
        overrides: [...SMALL, "--eval.maxNewTokens=4"],
        report,
        outDir: smoke,
        seeds: [0],
        log: () => {},
      }),
      {
        name: "RangeError",
        message: `Cannot reuse run "lora_s0" of experiment "${path}": key eval.maxNewTokens of ` +
          `its "${join(smoke, "lora_s0", "result.json")}" differs from what the experiment ` +
          `gives (3 -> 4): delete "${join(smoke, "lora_s0")}" or change the experiment (or ` +
          `its --set overrides)`,
      },
    );
    // Nor under the experiment's own config (the runs were a --set smoke test): 2 -> 100 steps.
    await assert.rejects(
      runHiloExperiment(path, { report, outDir: smoke, seeds: [0], log: () => {} }),
      /Cannot reuse run "lora_s0" .*key adapters\.targets .*more key\(s\) differ/,
    );
    assert.equal(await Deno.readTextFile(first.report), before, "the report is unchanged");
    assert.deepEqual(await tree(real), realBefore, "the real runs are unchanged");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readExperiment() names the file and key of a bad entry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  try {
    const path = await writeExperiment(dir, `  - name: "a b"\n`);
    await assert.rejects(readExperiment(path), /exp\.yaml".*key "variants\[0\]\.name"/);
    await Deno.writeTextFile(path, "config: x.yaml\nseed: [0]\n");
    await assert.rejects(readExperiment(path), /unknown key "seed"/);
    const e = await readExperiment("experiments/hilo.yaml");
    assert.ok(e.seeds.length >= 3);
    assert.deepEqual(e.variants.map((v) => v.name), ["lora", "mola_uniform", "mola_2468", "hilo"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runHiloExperiment() refuses a run with eval.final false before training it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  try {
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    overrides: ["--adapters.kind=lora", "--eval.final=false"]\n`,
    );
    const options = {
      overrides: SMALL,
      report: join(dir, "small.md"),
      outDir: join(dir, "smoke"),
      seeds: [0],
      log: () => {},
    };
    await assert.rejects(runHiloExperiment(path, options), {
      name: "RangeError",
      message: `Cannot run experiment "${path}": run "lora_s0" has key "eval.final" false: ` +
        `expected true (the report compares the held-out accuracy after the last step)`,
    });
    assert.equal(
      await Deno.stat(join(dir, "runs", "lora_s0")).then(() => true, () => false),
      false,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() reports a run config error by its message and exit code 2, without a stack", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  const errors: string[] = [];
  const log = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    overrides: ["--adapters.kind=lora", "--adapters.r=2"]\n`,
    );
    // Warm-up as long as the run: refused before the run starts.
    const code = await main([
      path,
      "--seeds=0",
      "--workers=1",
      `--report=${join(dir, "small.md")}`,
      `--out-dir=${join(dir, "smoke")}`,
      "--set=trainer.steps=2",
      "--set=trainer.warmupSteps=2",
    ]);
    assert.equal(code, 2);
    const last = errors.at(-1) ?? "";
    assert.match(last, /^error: .*warmupSteps/);
  } finally {
    console.error = log;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runHiloExperiment() refuses overrides without their own report: the experiment's page stays", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  try {
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    overrides: ["--adapters.kind=lora"]\n`,
    );
    await assert.rejects(runHiloExperiment(path, { overrides: SMALL, seeds: [0], log: () => {} }), {
      name: "RangeError",
      message: new RegExp(
        `^Cannot run experiment ".*exp\\.yaml" with overrides \\(--set trainer\\.steps=2 .*\\) ` +
          `into its report ".*hilo\\.md" \\(the experiment's results page\\): give the overridden ` +
          `runs their own report \\(--report=PATH\\)$`,
      ),
    });
    // Nothing ran, nothing was written.
    assert.equal(await Deno.stat(join(dir, "runs")).then(() => true, () => false), false);
    assert.equal(await Deno.stat(join(dir, "results")).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runHiloExperiment() refuses overrides without their own --out-dir: the experiment's run folders stay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  const errors: string[] = [];
  const log = console.error;
  try {
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    overrides: ["--adapters.kind=lora"]\n`,
    );
    // A finished real run (before the fix, a smoke test failed on it with "delete <runDir>").
    const real = join(dir, "runs");
    await Deno.mkdir(join(real, "lora_s0"), { recursive: true });
    await Deno.writeTextFile(join(real, "lora_s0", "result.json"), '{"real":true}\n');
    const realBefore = await tree(real);
    const report = join(dir, "small.md");
    const options = { overrides: SMALL, report, seeds: [0], log: () => {} };
    await assert.rejects(runHiloExperiment(path, options), {
      name: "RangeError",
      message: `Cannot run experiment "${path}" with overrides (--set ${
        SMALL.map((o) => o.slice(2)).join(" ")
      }) in its outDir "${real}" (the experiment's own runs): give the overridden runs their own ` +
        `folder (--out-dir=DIR)`,
    });
    // Nor the experiment's own folder by another spelling.
    await assert.rejects(
      runHiloExperiment(path, { ...options, outDir: join(dir, ".", "runs", "") }),
      /in its outDir .*: give the overridden runs their own folder \(--out-dir=DIR\): current value/,
    );
    // Nor a run folder through --set (the experiment's run.outDir came after it and won).
    await assert.rejects(
      runHiloExperiment(path, {
        ...options,
        overrides: [...SMALL, `--run.outDir=${join(dir, "smoke")}`],
        outDir: join(dir, "smoke"),
      }),
      /with override "run\.outDir=.*": key "run\.outDir" is set by the experiment for each run/,
    );
    // The command: --set without --out-dir, exit code 2.
    console.error = (...a: unknown[]) => errors.push(a.join(" "));
    const code = await main([
      path,
      "--seeds=0",
      "--workers=1",
      `--report=${report}`,
      "--set=trainer.steps=2",
    ]);
    console.error = log;
    assert.equal(code, 2);
    assert.match(errors.at(-1) ?? "", /^error: .*\(--out-dir=DIR\)$/);
    // Nothing ran, nothing was written.
    assert.deepEqual(await tree(real), realBefore);
    assert.deepEqual(Object.keys(await tree(dir)).sort(), [
      "exp.yaml",
      "runs/",
      "runs/lora_s0/",
      "runs/lora_s0/result.json",
    ]);
  } finally {
    console.error = log;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runHiloExperiment() checks every run against the model before the first one trains", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_hilo_exp_" });
  try {
    // The second variant's rank schedule does not parse; the first would train fine.
    const path = await writeExperiment(
      dir,
      `  - name: lora\n    overrides: ["--adapters.kind=lora", "--adapters.r=2"]\n` +
        `  - name: hilo\n    overrides: ["--adapters.kind=hilo", "--adapters.hilo.rank=9-x"]\n`,
    );
    const options = {
      overrides: SMALL,
      report: join(dir, "small.md"),
      outDir: join(dir, "smoke"),
      seeds: [0],
      log: () => {},
    };
    await assert.rejects(runHiloExperiment(path, options), {
      name: "RangeError",
      message: new RegExp(`^Cannot run experiment ".*exp\\.yaml": run "hilo_s0": .*rank.*"9-x"`),
    });
    assert.equal(await Deno.stat(join(dir, "runs")).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main() --help: its --set example passes every variant's start checks on the default experiment", async () => {
  const { result, text: help } = await logOf(() => main(["--help"]));
  assert.equal(result, 0);
  const example = help.slice(help.indexOf("e.g."), help.indexOf("-h, --help"));
  const sets = [...example.matchAll(/--set=(\S+)/g)].map((m) => `--${m[1]}`);
  assert.ok(sets.includes("--trainer.steps=4"), example);
  assert.match(help, /--report=PATH/);
  const experiment = await readExperiment("experiments/hilo.yaml");
  for (const variant of experiment.variants) {
    const config = await loadConfig(experiment.config, {
      overrides: [...variant.overrides, ...sets],
    });
    await checkRunConfig(config); // e.g. the cosine warm-up shorter than the 4 steps
  }
});
