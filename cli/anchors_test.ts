import { deepStrictEqual, notDeepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { type AnchorReport, main } from "./anchors.ts";
import { logOf, undescribedFlags } from "../internal/test_utils.ts";
import { DEFAULT_CONFIG, type TrainConfig } from "../trainer/config.ts";
import { runAdapters } from "../trainer/run_adapters.ts";
import { loraParams } from "../trainer/params.ts";
import { readQwen3Config } from "../model/config.ts";
import { savePeftAdapter } from "../adapters/peft_io.ts";
import { mulberry32 } from "../internal/random.ts";

Deno.test("deno task anchors --help describes every option of its usage line", async () => {
  const { result, text: help } = await logOf(() => main(["--help"]));
  strictEqual(result, null);
  ok(help.startsWith("usage: deno task anchors "), help);
  deepStrictEqual(undescribedFlags(help), [], help);
  ok(help.split("\n").length > 10, help);
});

Deno.test("deno task anchors: consistent counts, and the same report for the same seed", async () => {
  const args = ["--prompts", "3", "--samples", "4", "--seed", "5", "--resamples", "200", "--json"];
  const log = console.log;
  console.log = () => {};
  try {
    const [report] = (await main(args))!;
    strictEqual(report.rollouts, 12);
    ok(report.correct <= report.rollouts && report.marked <= report.rollouts);
    ok(report.mixedGroups <= 3);
    // Every same-prompt pair of marked rollouts is of exactly one kind.
    const { correctCorrect, incorrectIncorrect, correctIncorrect, all } = report.anchors;
    strictEqual(
      correctCorrect.count + incorrectIncorrect.count + correctIncorrect.count,
      all.count,
    );
    ok(all.count <= 3 * 6);
    strictEqual(report.random.all.count, 3 * 6);
    for (
      const p of [correctCorrect, incorrectIncorrect, correctIncorrect, all, report.random.all]
    ) {
      ok(p.count === 0 ? Number.isNaN(p.mean) : Math.abs(p.mean) <= 1 + 1e-6, `mean ${p.mean}`);
    }
    // Every layer: the last one is the final norm the summary above measures (same pairs, same
    // means up to float32 rounding of the stored states: 1e-6).
    strictEqual(report.layers.length, 3);
    deepStrictEqual(report.layers.map((r) => r.label), [
      "embeddings",
      "layer 0",
      "final norm (layer 1)",
    ]);
    const last = report.layers[2];
    strictEqual(last.correctCorrect.pairs, correctCorrect.count);
    strictEqual(last.random.pairs, report.random.all.count);
    ok(Math.abs(last.random.mean - report.random.all.mean) < 1e-6);
    if (correctCorrect.count > 0) {
      ok(Math.abs(last.correctCorrect.mean - correctCorrect.mean) < 1e-6);
      ok(last.correctCorrect.lower <= last.correctCorrect.mean + 1e-12);
    }
    const [again] = (await main(args))!;
    deepStrictEqual({ ...again, seconds: 0 }, { ...report, seconds: 0 });
  } finally {
    console.log = log;
  }
});

Deno.test("deno task anchors --out: a series of two models writes the tables and charts", async () => {
  const out = await Deno.makeTempDir();
  const log = console.log;
  console.log = () => {};
  try {
    const model = "models/arithmetic-tiny";
    const reports = (await main([
      "--model",
      model,
      "--model",
      model,
      "--prompts",
      "2",
      "--samples",
      "3",
      "--resamples",
      "50",
      "--out",
      out,
    ]))!;
    strictEqual(reports.length, 2);
    // The same model, problems and seed: the same numbers.
    deepStrictEqual(reports[1].layers, reports[0].layers);
    const md = await Deno.readTextFile(join(out, "anchors.md"));
    ok(md.includes("| layer | correct–correct |"), md);
    ok(md.includes("Over the series"), md);
    for (const file of ["anchors_0.svg", "anchors_1.svg", "anchors_series.svg"]) {
      ok((await Deno.readTextFile(join(out, file))).startsWith("<svg"), file);
    }
  } finally {
    console.log = log;
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno task anchors --adapter: an adapter on a --model given apart measures as the adapter directory itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "halo_anchors_" });
  const log = console.log;
  console.log = () => {};
  try {
    // A LoRA (r 2, random non-zero weights) on the bundled model, saved twice: once naming a
    // base path that does not resolve here (a run copied from another machine), once this one.
    const base = "models/arithmetic-tiny";
    const config: TrainConfig = {
      ...DEFAULT_CONFIG,
      model: { ...DEFAULT_CONFIG.model, path: base },
      adapters: { ...DEFAULT_CONFIG.adapters, kind: "lora", r: 2 },
    };
    const lora = runAdapters(config, await readQwen3Config(base))!;
    const random = mulberry32(3);
    for (const values of Object.values(loraParams(lora).tree)) {
      for (let i = 0; i < values.length; i++) values[i] = 0.4 * (random() - 0.5);
    }
    const moved = join(dir, "moved");
    await savePeftAdapter(moved, lora, { baseModelNameOrPath: "/elsewhere/arithmetic-tiny" });
    const here = join(dir, "here");
    await savePeftAdapter(here, lora, { baseModelNameOrPath: base });

    const small = ["--prompts", "2", "--samples", "2", "--resamples", "20", "--json"];
    const reports =
      (await main(["--model", base, "--adapter", "none", "--adapter", moved, ...small]))!;
    deepStrictEqual(reports.map((r) => [r.model, r.adapter]), [[base, undefined], [base, moved]]);
    ok(!Object.hasOwn(reports[0], "adapter"));
    const measured = ({ model: _m, adapter: _a, seconds: _s, ...rest }: AnchorReport) => rest;
    const [alone] = (await main(["--model", here, ...small]))!;
    deepStrictEqual(measured(reports[1]), measured(alone));
    notDeepStrictEqual(reports[1].layers, reports[0].layers); // the adapter acts

    // The moved adapter as --model: its base is not found, and the error says how to pair them.
    await rejects(main(["--model", moved, ...small]), {
      name: "RangeError",
      message: new RegExp(
        `give the base model and the adapter apart, --model <base> --adapter "${moved}"$`,
      ),
    });
    await rejects(main(["--model", base, "--model", base, "--adapter", moved, ...small]), {
      name: "RangeError",
      message: "Cannot measure anchors: give one --adapter per --model, or one --model with any " +
        "number of --adapter: current counts are 2 --model and 1 --adapter",
    });
    await rejects(main(["--adapter", join(dir, "none"), ...small]), {
      name: "NotFound",
      message: `Cannot measure anchors: --adapter directory "${join(dir, "none")}" not found`,
    });
  } finally {
    console.log = log;
    await Deno.remove(dir, { recursive: true });
  }
});
