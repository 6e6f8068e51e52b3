// RL runs of the bundled arithmetic model on a JSONL prompt file that repeats its prompts (as
// DAPO-Math-17k does): the repeats are dropped, the held-out split comes from the unique prompts,
// the checkpoints record the prompts and a resume on other prompts is refused (as is a resume of a
// checkpoint from before the record over a file whose repeats, or training prompts asking a
// held-out question, training now drops); a held-out file sharing questions with the training one
// is warned about.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../trainer/checkpoint.ts";
import { arithmeticPrompts, promptsSha256, type RlPrompt } from "../trainer/rl/prompt_data.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";

const jsonl = (prompts: readonly RlPrompt[]): string =>
  prompts.map((p) => JSON.stringify({ question: p.question, answer: p.gold })).join("\n") + "\n";

function fileOverrides(path: string, evalPath = ""): string[] {
  return [
    "--rl.losses=[{name: clipped_pg}]",
    "--rl.data.source=jsonl",
    `--rl.data.path=${path}`,
    `--rl.data.evalPath=${evalPath}`,
    "--rl.data.promptField=question",
    "--rl.data.answerField=answer",
    "--rl.data.evalSize=2",
    "--rl.eval.prompts=2",
    "--trainer.steps=2",
    "--rl.genBatchPrompts=2",
    "--rl.maxGenBatches=1",
  ];
}

Deno.test({
  name: "runRl() on a file that repeats its prompts: unique prompts, a unique held-out split, " +
    "the data recorded in checkpoints, a resume on changed data refused",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const unique = arithmeticPrompts("train", { size: 8, seed: 3, digits: 1, maxTerms: 2 });
      const path = join(dir, "repeated.jsonl");
      // Each prompt three times, interleaved: 24 rows.
      await Deno.writeTextFile(path, jsonl([...unique, ...unique, ...unique]));
      const config = await rlConfig(dir, fileOverrides(path));
      const lines: string[] = [];
      const options = { progress: null, log: (l: string) => lines.push(l), evalAtStart: false };
      const halted = await runRl(config, { ...options, haltAfterStep: 1 });
      strictEqual(halted.halted, true);
      ok(lines.includes(`prompts "${path}": 24 rows, 8 unique prompts`), lines.join("\n"));
      ok(lines.some((l) => l.startsWith("RL: 6 training prompts, 2 held-out")), lines.join("\n"));

      // The checkpoint records the unique prompts: the first 6 train, the last 2 are held out.
      const step1 = join(halted.runDir, "step_000001");
      const meta = (await loadCheckpoint(step1)).meta;
      deepStrictEqual(meta.data, {
        source: path,
        trainPrompts: 6,
        trainSha256: promptsSha256(unique.slice(0, 6)),
        evalPrompts: 2,
        evalSha256: promptsSha256(unique.slice(6)),
      });

      // The group kinds, the unusable-gold ones among them, and the uncapped mixed-group rate.
      const metrics = JSON.parse(
        (await Deno.readTextFile(join(halted.runDir, "metrics.jsonl")))
          .trim().split("\n")[0],
      );
      const generated = metrics["sampling/groups_generated"];
      strictEqual(
        metrics["sampling/mixed_groups"] + metrics["sampling/all_correct_groups"] +
          metrics["sampling/all_wrong_groups"] + metrics["sampling/skip_groups"],
        generated,
      );
      strictEqual(metrics["sampling/skip_groups"], 0);
      strictEqual(metrics["sampling/mixed_rate"], metrics["sampling/mixed_groups"] / generated);

      // A checkpoint from before the record (meta.json without "data") on a file with repeats:
      // its data position counts into the rows with repeats, so the resume is refused.
      const metaPath = join(step1, "meta.json");
      const metaText = await Deno.readTextFile(metaPath);
      const { data: _, ...old } = JSON.parse(metaText);
      await Deno.writeTextFile(metaPath, JSON.stringify(old));
      await rejects(runRl(config, { ...options, resume: true }), {
        name: "RangeError",
        message: new RegExp(
          `saved before halo removed repeated prompts, and "${path.replaceAll(".", "\\.")}"`,
        ),
      });
      await Deno.writeTextFile(metaPath, metaText);

      // The file changed at the same path (one gold): refused, naming the file.
      const changed = unique.map((p, i) => (i === 2 ? { ...p, gold: `${p.gold}0` } : p));
      await Deno.writeTextFile(path, jsonl([...changed, ...changed]));
      await rejects(runRl(config, { ...options, resume: true }), {
        name: "RangeError",
        message:
          /the prompts of ".*repeated\.jsonl" differ from those the checkpoint was saved with/,
      });

      // The same prompts (repeated another number of times): the resume goes on.
      await Deno.writeTextFile(path, jsonl([...unique, ...unique]));
      const resumed = await runRl(config, { ...options, resume: true });
      strictEqual(resumed.step, 2);
      strictEqual(resumed.resumedFrom, step1);
    }),
});

Deno.test({
  name: "runRl() refuses to resume a checkpoint from before the record when training prompts " +
    "that ask a held-out question are dropped (no repeats in the file)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const unique = arithmeticPrompts("train", { size: 8, seed: 3, digits: 1, maxTerms: 2 });
      // 9 rows, no two alike: the 7th asks the question of the 8th (held out with the 9th) with
      // another gold. Training drops it, so the order before the de-duplication (9 rows, the
      // last 2 held out) is not training's (6 prompts).
      const other = { ...unique[6], gold: `${unique[6].gold}0` };
      const rows = [...unique.slice(0, 6), other, unique[6], unique[7]];
      const path = join(dir, "held.jsonl");
      await Deno.writeTextFile(path, jsonl(rows));
      const config = await rlConfig(dir, fileOverrides(path));
      const lines: string[] = [];
      const options = { progress: null, log: (l: string) => lines.push(l), evalAtStart: false };
      const halted = await runRl(config, { ...options, haltAfterStep: 1 });
      strictEqual(halted.halted, true);
      ok(lines.includes(`prompts "${path}": 9 rows, 9 unique prompts`), lines.join("\n"));
      ok(
        lines.includes(
          "1 training prompts dropped: their question is held out (with another gold)",
        ),
        lines.join("\n"),
      );
      // The checkpoint as halo saved it before the record (meta.json without "data"): refused.
      const metaPath = join(halted.runDir, "step_000001", "meta.json");
      const { data, ...old } = JSON.parse(await Deno.readTextFile(metaPath));
      strictEqual(data.trainPrompts, 6);
      await Deno.writeTextFile(metaPath, JSON.stringify(old));
      await rejects(runRl(config, { ...options, resume: true }), {
        name: "RangeError",
        message: new RegExp(
          `saved before halo removed repeated prompts, and "${path.replaceAll(".", "\\.")}" ` +
            `\\(key "rl\\.data\\.path"\\) has rows that are no longer trained on \\(1: `,
        ),
      });
    }),
});

Deno.test({
  name: "runRl() warns when held-out prompts of rl.data.evalPath are also training prompts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const train = arithmeticPrompts("train", { size: 6, seed: 3, digits: 1, maxTerms: 2 });
      const heldOut = arithmeticPrompts("eval", { size: 2, seed: 3, digits: 1, maxTerms: 2 });
      const path = join(dir, "train.jsonl");
      const evalPath = join(dir, "eval.jsonl");
      // A seventh training prompt has an empty gold: warned about, its groups skipped.
      await Deno.writeTextFile(path, jsonl([...train, { question: "What is 0?", gold: "" }]));
      // The held-out file: one new question, one training question, each repeated.
      await Deno.writeTextFile(evalPath, jsonl([heldOut[0], train[4], heldOut[0], train[4]]));
      const config = await rlConfig(dir, [...fileOverrides(path, evalPath), "--trainer.steps=1"]);
      const lines: string[] = [];
      const result = await runRl(config, {
        progress: null,
        log: (l: string) => lines.push(l),
        evalAtStart: false,
      });
      ok(lines.includes(`prompts "${evalPath}": 4 rows, 2 unique prompts`), lines.join("\n"));
      const warnings = result.warnings.filter((w) => w.includes("also training prompts"));
      strictEqual(warnings.length, 1, result.warnings.join("\n"));
      ok(warnings[0].startsWith(`1 of the 2 held-out prompts of "${evalPath}"`), warnings[0]);
      ok(warnings[0].includes(JSON.stringify(train[4].question)), warnings[0]);
      const golds = result.warnings.filter((w) => w.includes("unusable"));
      deepStrictEqual(golds.length, 1, result.warnings.join("\n"));
      ok(golds[0].startsWith(`"${path}": 1 of 7 golds in field "answer"`), golds[0]);
      ok(golds[0].includes("at line 7;"), golds[0]);
      // reward/mean and reward/accuracy leave the skipped rollouts out; their share is logged.
      const metrics = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
        .split("\n").map((l) => JSON.parse(l)).filter((m) => m.step === 1);
      strictEqual(metrics.length, 1);
      ok(typeof metrics[0]["reward/unusable_gold"] === "number", JSON.stringify(metrics[0]));
    }),
});

Deno.test({
  name:
    "runRl() leaves a held-out prompt with an unusable gold out of the evaluation and counts it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const train = arithmeticPrompts("train", { size: 6, seed: 3, digits: 1, maxTerms: 2 });
      const heldOut = arithmeticPrompts("eval", { size: 3, seed: 3, digits: 1, maxTerms: 2 });
      const path = join(dir, "train.jsonl");
      const evalPath = join(dir, "eval.jsonl");
      await Deno.writeTextFile(path, jsonl(train));
      await Deno.writeTextFile(
        evalPath,
        jsonl([heldOut[0], { ...heldOut[1], gold: "" }, heldOut[2]]),
      );
      const config = await rlConfig(dir, [
        ...fileOverrides(path, evalPath),
        "--trainer.steps=1",
        "--rl.data.evalSize=3",
        "--rl.eval.prompts=3",
      ]);
      const lines: string[] = [];
      const result = await runRl(config, { progress: null, log: (l: string) => lines.push(l) });
      const evals = (await Deno.readTextFile(join(result.runDir, "evals.jsonl"))).trim()
        .split("\n").map((l) => JSON.parse(l));
      deepStrictEqual(evals.map((e) => e.step), [0, 1]);
      for (const { metrics, perPrompt } of evals) {
        strictEqual(perPrompt.length, 3);
        strictEqual(perPrompt[1], null);
        strictEqual(metrics["eval/prompts"], 3);
        strictEqual(metrics["eval/unusable_gold"], 1);
        // The accuracy (avg@k) is the mean over the two usable prompts.
        strictEqual(metrics["eval/accuracy"], (perPrompt[0] + perPrompt[2]) / 2);
      }
      const notes = lines.filter((l) => l.includes("1 with an unusable gold left out"));
      strictEqual(notes.length, 2, lines.join("\n"));
      // The paired gain is over the usable prompts.
      const [first, last] = evals.map((e) => e.perPrompt);
      ok(result.heldOutGain !== null);
      strictEqual(
        result.heldOutGain.mean,
        (last[0] - first[0] + last[2] - first[2]) / 2,
      );
    }),
});

Deno.test({
  name: "runRl() refuses a training or held-out split with no usable gold, naming the key",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const prompts = arithmeticPrompts("train", { size: 8, seed: 3, digits: 1, maxTerms: 2 });
      // The file has usable golds (its last two, held out), the training split none.
      const path = join(dir, "empty_golds.jsonl");
      await Deno.writeTextFile(path, jsonl(prompts.map((p, i) => i < 6 ? { ...p, gold: "" } : p)));
      const options = { progress: null, log: () => {}, evalAtStart: false };
      await rejects(runRl(await rlConfig(dir, fileOverrides(path)), options), {
        name: "TypeError",
        message: new RegExp(
          `none of the 6 training prompts of "${path.replaceAll(".", "\\.")}" \\(key ` +
            `"rl\\.data\\.path"\\) has a gold usable`,
        ),
      });
      // A held-out file whose golds are all unusable.
      const train = join(dir, "train.jsonl");
      const heldOut = join(dir, "held_out.jsonl");
      await Deno.writeTextFile(train, jsonl(prompts.slice(0, 6)));
      await Deno.writeTextFile(heldOut, jsonl(prompts.slice(6).map((p) => ({ ...p, gold: "" }))));
      await rejects(runRl(await rlConfig(dir, fileOverrides(train, heldOut)), options), {
        name: "TypeError",
        message: /none of its 2 golds in field "answer" \(key "rl\.data\.answerField"\) is usable/,
      });
      // A held-out file with a usable gold, but not among the prompts the evaluation uses.
      await Deno.writeTextFile(
        heldOut,
        jsonl([
          ...prompts.slice(6).map((p) => ({ ...p, gold: "" })),
          { question: "What is 40 + 2?", gold: "42" },
        ]),
      );
      const firstTwo = [...fileOverrides(train, heldOut), "--rl.data.evalSize=3"];
      await rejects(runRl(await rlConfig(dir, firstTwo), options), {
        name: "TypeError",
        message:
          /none of the first 2 held-out prompts that the evaluation uses \(key "rl\.eval\.prompts"\) has a gold usable/,
      });
      // A run without the held-out evaluation does not use those prompts: it runs (here every 2
      // is more than its 1 step, which evaluates no more than every 0 does).
      const off = ["--rl.eval.every=2", "--rl.eval.final=false", "--trainer.steps=1"];
      const ran = await runRl(await rlConfig(dir, [...firstTwo, ...off]), options);
      strictEqual(ran.step, 1);
      strictEqual(await Deno.readTextFile(join(ran.runDir, "evals.jsonl")), "");
    }),
});

Deno.test({
  name: "runRl() refuses a training split left empty by the held-out questions, naming the keys",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      // Two questions, each twice with different golds: the last two rows are held out, and the
      // training rows asking their questions go with them.
      const path = join(dir, "same_questions.jsonl");
      const p = (question: string, gold: string): RlPrompt => ({ question, gold });
      await Deno.writeTextFile(
        path,
        jsonl([
          p("What is 1 + 1?", "2"),
          p("What is 2 + 2?", "4"),
          p("What is 1 + 1?", "3"),
          p("What is 2 + 2?", "5"),
        ]),
      );
      const options = { progress: null, log: () => {}, evalAtStart: false };
      await rejects(runRl(await rlConfig(dir, fileOverrides(path)), options), {
        name: "RangeError",
        message: new RegExp(
          `^Cannot run RL: no training prompts left in "${path.replaceAll(".", "\\.")}" \\(key ` +
            `"rl\\.data\\.path"\\): all 2 not held out ask a held-out question \\(key ` +
            `"rl\\.data\\.evalSize" is 2\\)`,
        ),
      });
    }),
});

Deno.test({
  name: "runRl() names the keys and values when the arithmetic task cannot fill its prompt counts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      // 1-digit, 2-operand problems of + - *: about 300 in all, a tenth of them held out.
      const options = { progress: null, log: () => {}, evalAtStart: false };
      const cases = [
        [["--rl.data.trainSize=1000"], "rl.data.trainSize", 1000, "train"],
        [["--rl.data.trainSize=0", "--data.trainSize=1000"], "data.trainSize", 1000, "train"],
        [["--rl.data.evalSize=200"], "rl.data.evalSize", 200, "eval"],
      ] as const;
      for (const [overrides, key, size, split] of cases) {
        await rejects(runRl(await rlConfig(dir, overrides), options), {
          name: "RangeError",
          message: new RegExp(
            `key "${key.replaceAll(".", "\\.")}" asks for ${size} distinct "${split}" ` +
              `problems, but only \\d+ turned up in \\d+ draws with key "data\\.digits" 1, key ` +
              `"data\\.maxTerms" 2 and key "data\\.ops" \\[\\+, -, \\*\\]`,
          ),
        });
      }
    }),
});

Deno.test({
  name: "runRl() refuses a training or evaluated held-out prompt that with rl.maxNewTokens " +
    "overflows the context before the model loads, naming the keys, the file and the lengths",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const prompts = arithmeticPrompts("train", { size: 8, seed: 3, digits: 1, maxTerms: 2 });
      // 80 terms: far more than the 128 positions of the arithmetic model.
      const long: RlPrompt = {
        question: `What is ${Array(80).fill("1").join(" + ")}?`,
        gold: "80",
      };
      const train = join(dir, "train.jsonl");
      const heldOut = join(dir, "held_out.jsonl");
      const lines: string[] = [];
      const options = { progress: null, log: (l: string) => lines.push(l), evalAtStart: false };
      const overflow = (split: string, where: string, file: string, key: string) =>
        new RegExp(
          `^Cannot run RL: key "rl\\.maxNewTokens" \\(20\\) plus the longest ${split} prompt ` +
            `\\((\\d+) tokens with key "rl\\.template" "\\w+"; ${split} prompt ${where}, from ` +
            `"${file.replaceAll(".", "\\.")}" \\(key "${key.replaceAll(".", "\\.")}"\\): ` +
            `"What is 1 \\+ 1 \\+ [^"]*…"\\) must fit the model's context ` +
            `\\(max_position_embeddings = 128, "models/arithmetic-tiny"\\): current total is ` +
            `(\\d+) tokens`,
        );
      // One over-long training prompt (the 4th of 7).
      await Deno.writeTextFile(
        train,
        jsonl([...prompts.slice(0, 3), long, ...prompts.slice(3, 6)]),
      );
      await Deno.writeTextFile(heldOut, jsonl(prompts.slice(6)));
      const inTrain = overflow("training", "4 of the 7 unique ones used", train, "rl.data.path");
      await rejects(runRl(await rlConfig(dir, fileOverrides(train, heldOut)), options), (e) => {
        const m = (e as Error).message.match(inTrain);
        ok(m !== null, (e as Error).message);
        strictEqual(Number(m[2]), Number(m[1]) + 20);
        ok(Number(m[1]) > 108, m[1]);
        return true;
      });
      // Before the model loaded: nothing was logged.
      deepStrictEqual(lines, []);
      // One over-long held-out prompt that the evaluation uses (the 2nd of 2).
      await Deno.writeTextFile(train, jsonl(prompts.slice(0, 6)));
      await Deno.writeTextFile(heldOut, jsonl([prompts[6], long]));
      await rejects(runRl(await rlConfig(dir, fileOverrides(train, heldOut)), options), {
        name: "RangeError",
        message: overflow("held-out", "2 of the 2 unique ones used", heldOut, "rl.data.evalPath"),
      });
      deepStrictEqual(lines, []);
      // A run that does not evaluate does not generate from it: it runs.
      const off = ["--rl.eval.every=0", "--rl.eval.final=false", "--trainer.steps=1"];
      const ran = await runRl(await rlConfig(dir, [...fileOverrides(train, heldOut), ...off]), {
        ...options,
        log: () => {},
      });
      strictEqual(ran.step, 1);
    }),
});
