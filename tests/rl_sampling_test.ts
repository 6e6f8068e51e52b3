// Dynamic sampling and overlong shaping inside runRl, on scripted rollouts: runRl's
// `sampleGroups` hook returns groups whose correctness the test chooses (the arithmetic model's
// own samples would make the pattern a matter of luck), so the metrics of a step say exactly which
// groups it kept, how many generation batches it drew, which rollouts were penalised and which
// tokens the policy loss trained on. The pieces have unit tests in trainer/rl/
// (dynamic_sampling_test.ts: fillBatch; build_rows_test.ts: scoreRollout's overlong penalty,
// overlong filtering, group advantages) and trainer/losses/ (overlong_penalty, group_advantages);
// this checks the wiring: runRl trains on what fillBatch keeps, stops drawing when the batch is
// full or at rl.maxGenBatches, and follows rl.onShortBatch.
//
// Set-up (tests/rl_utils.ts): G = 4, 3 prompts per generation batch, 2 groups per step,
// rl.maxNewTokens 20 with an overlong buffer of 4 (a response of L > 16 tokens gets
// −(L − 16)/4), here rl.maxGenBatches 3 and old log-probs recomputed (the scripted rollouts have
// no sampler log-probs).
import { deepStrictEqual, notStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadTokenizer } from "../model/tokenizer.ts";
import { arithmeticPrompts } from "../trainer/rl/prompt_data.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";
import type { Rollout, sampleGroups } from "../trainer/rl/rollout.ts";
import { ShortBatchError } from "../trainer/rl/dynamic_sampling.ts";
import { runRl } from "../trainer/rl/run_rl.ts";
import { warmupConstantSchedule } from "../trainer/optim/warmup_constant_schedule.ts";
import { warmupCosineDecaySchedule } from "../trainer/optim/warmup_cosine_decay_schedule.ts";
import { QUIET, rlConfig } from "./rl_utils.ts";
import { withTempDir } from "./train_utils.ts";
import { noGpu } from "../gpu/test_utils.ts";

const G = 4;
const TRAIN_BATCH = 2;
const MAX_NEW = 20;
const BUFFER = 4;
// No held-out evaluation (rl.eval.every is 0): the checks read the steps' metrics only.
const OVERRIDES = [
  "--rl.eval.final=false",
  "--rl.maxGenBatches=3",
  "--rl.oldLogprobs=recompute",
  "--trainer.steps=2",
  "--checkpoint.every=0",
  "--rl.overlong.filter=true",
  "--rl.alignKeepAllCorrect=true",
  "--rl.losses=[{name: clipped_pg}, {name: hidden_align, weight: 0.1}]",
];

type Kind = "mixed" | "all-correct" | "all-wrong";

/**
 * The groups of each generation call, in order (3 prompts each). Step 1: the batch is full after
 * the second call (the third mixed group comes beyond it). Step 2: one mixed group in 3 calls,
 * a short batch.
 */
const PLAN: Kind[][] = [
  ["all-correct", "mixed", "all-wrong"],
  ["mixed", "mixed", "all-wrong"],
  ["all-wrong", "all-wrong", "all-correct"],
  ["mixed", "all-wrong", "all-wrong"],
  ["all-correct", "all-wrong", "all-wrong"],
];
/** Calls per step. */
const CALLS = [2, 3];

const tokenizer = await loadTokenizer("models/arithmetic-tiny");
const EOS = tokenizer.eosTokenId!;

/** The gold answer of each training prompt, by its token ids. */
async function goldsByIds(): Promise<Map<string, string>> {
  const config = await rlConfig("/tmp/unused");
  const d = config.data;
  const prompts = arithmeticPrompts("train", {
    seed: d.seed,
    digits: d.digits,
    ops: d.ops,
    maxTerms: d.maxTerms,
    mulDigits: d.mulDigits,
    size: d.trainSize,
  });
  return new Map(
    prompts.map((p) => [
      JSON.stringify(promptIds(tokenizer, p.question, { template: config.rl.template })),
      p.gold,
    ]),
  );
}

function rollout(group: number, prompt: readonly number[], text: string, cut: boolean): Rollout {
  const tokens = [...tokenizer.encode(text), ...(cut ? [] : [EOS])];
  ok(tokens.length <= MAX_NEW, `scripted response of ${tokens.length} tokens`);
  const decode = { skipSpecialTokens: true };
  return {
    group,
    promptIds: [...prompt],
    tokens,
    oldLogprobs: new Float64Array(tokens.length),
    text: tokenizer.decode(tokens, decode),
    tokenOffsets: tokenizer.tokenOffsets(tokens, decode).map(([start]) => start),
    stopReason: cut ? "length" : "eos",
  };
}

/**
 * A group of the given kind. Rollout j of a group: j + 1 "x " before the answer (lengths differ),
 * the right answer or a wrong one (the gold with a "1" appended). A mixed group's rollout 0 is
 * right and rollout 1 is a truncated response of exactly rl.maxNewTokens tokens with no answer;
 * its rollout 3 is wrong and 17–20 tokens long (in the overlong buffer).
 */
function scriptedGroup(kind: Kind, group: number, prompt: readonly number[], gold: string) {
  return Array.from({ length: G }, (_, j) => {
    if (kind === "mixed" && j === 1) return rollout(group, prompt, "x ".repeat(10), true);
    const right = kind === "all-correct" || (kind === "mixed" && j === 0);
    const prefix = kind === "mixed" && j === 3 ? 7 : j + 1;
    return rollout(
      group,
      prompt,
      `${"x ".repeat(prefix)}Answer: ${gold}${right ? "" : "1"}`,
      false,
    );
  });
}

/** DAPO's overlong penalty of a response of `length` tokens (independent of scoreRollout). */
function penalty(length: number): number {
  const over = length - (MAX_NEW - BUFFER);
  return over <= 0 ? 0 : -Math.min(over, BUFFER) / BUFFER;
}

interface Script {
  /** The hook: the planned groups of the next generation call. */
  sampleGroups: typeof sampleGroups;
  /** What each call returned. */
  drawn: Rollout[][][];
}

async function script(plan: readonly Kind[][] = PLAN): Promise<Script> {
  const golds = await goldsByIds();
  const drawn: Rollout[][][] = [];
  return {
    drawn,
    sampleGroups: (_backend, prompts, options) => {
      const kinds = plan[drawn.length];
      ok(kinds !== undefined, `generation call ${drawn.length} is not in the plan`);
      strictEqual(prompts.length, kinds.length);
      const groups = prompts.map((p, i) => {
        const gold = golds.get(JSON.stringify(p));
        ok(gold !== undefined, "a prompt that is not a training prompt");
        return scriptedGroup(kinds[i], options.firstGroup + i, p, gold);
      });
      drawn.push(groups);
      const generatedTokens = groups.flat().reduce((n, r) => n + r.tokens.length, 0);
      return Promise.resolve({ groups, generatedTokens });
    },
  };
}

Deno.test({
  name: "runRl() trains only on mixed groups, refills to exactly the batch, stops at " +
    "rl.maxGenBatches, and penalises and filters the overlong rollouts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const s = await script();
      const result = await runRl(await rlConfig(dir, OVERRIDES), {
        ...QUIET,
        evalAtStart: false,
        sampleGroups: s.sampleGroups,
      });
      strictEqual(result.step, 2);
      strictEqual(s.drawn.length, CALLS[0] + CALLS[1]);
      const lines = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
        .split("\n").map((l) => JSON.parse(l) as Record<string, number>);
      strictEqual(lines.length, 2);

      let call = 0;
      lines.forEach((m, step) => {
        const calls = s.drawn.slice(call, call + CALLS[step]);
        const kinds = PLAN.slice(call, call + CALLS[step]).flat();
        call += CALLS[step];
        const groups = calls.flat();
        // The spec: keep mixed groups in the order drawn until TRAIN_BATCH; all-correct groups
        // drawn before the batch is full go to the align term only.
        const kept: Rollout[][] = [];
        const alignOnly: Rollout[][] = [];
        kinds.forEach((kind, i) => {
          if (kept.length === TRAIN_BATCH) return;
          if (kind === "mixed") kept.push(groups[i]);
          if (kind === "all-correct") alignOnly.push(groups[i]);
        });
        const label = `step ${step + 1}`;
        strictEqual(m["sampling/gen_batches"], CALLS[step], label);
        strictEqual(m["sampling/groups_generated"], groups.length, label);
        strictEqual(m["sampling/kept_groups"], kept.length, label);
        strictEqual(m["sampling/align_only_groups"], alignOnly.length, label);
        strictEqual(m["sampling/short_batch"], kept.length < TRAIN_BATCH ? 1 : 0, label);
        strictEqual(m["batch/rows"], (kept.length + alignOnly.length) * G, label);
        // The policy loss reads the kept groups' tokens, less the truncated responses.
        const policyTokens = kept.flat().reduce(
          (n, r) => n + (r.stopReason === "length" ? 0 : r.tokens.length),
          0,
        );
        strictEqual(m["batch/policy_tokens"], policyTokens, label);
        // Rewards and penalties over every rollout drawn.
        const all = groups.flat();
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        const penalties = all.map((r) => penalty(r.tokens.length));
        ok(penalties.some((p) => p < 0 && p > -1), "no rollout inside the buffer");
        ok(
          Math.abs(m["reward/overlong_penalty"] - mean(penalties)) < 1e-12,
          `${label}: penalty ${m["reward/overlong_penalty"]} vs ${mean(penalties)}`,
        );
        strictEqual(
          m["response/truncated"],
          mean(all.map((r) => r.stopReason === "length" ? 1 : 0)),
        );
        strictEqual(m["sampling/prompt_position"], call * 3, label);
      });
      deepStrictEqual(lines.map((m) => m["sampling/kept_groups"]), [2, 1]);
    }),
});

Deno.test({
  name: "runRl() with rl.onShortBatch stop fails at the short batch, naming rl.maxGenBatches",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const s = await script();
      await rejects(
        runRl(await rlConfig(dir, [...OVERRIDES, "--rl.onShortBatch=stop"]), {
          ...QUIET,
          evalAtStart: false,
          sampleGroups: s.sampleGroups,
        }),
        (error: unknown) =>
          error instanceof ShortBatchError && error.kept === 1 &&
          /rl\.maxGenBatches/.test(error.message),
      );
      strictEqual(s.drawn.length, CALLS[0] + CALLS[1]); // step 1 trained, step 2 drew 3 batches
      const lines = (await Deno.readTextFile(join(dir, "run", "metrics.jsonl"))).trim().split("\n");
      strictEqual(lines.length, 1);
    }),
});

// On WebGPU too: its AdamW runs on the device (trainer.optimizer "auto") with its own count.
for (const backend of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: "runRl() takes the learning rate from the RL step: a step with no update (no mixed " +
      `group) does not hold the warmup or the cosine back, and a resume repeats it (${backend})`,
    ignore: backend === "webgpu" && noGpu,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withTempDir(async (dir) => {
        // 2 updates planned a step (rl.miniBatches 2), 1 generation batch a step: step 1 draws only
        // all-wrong groups (no rows, no update), steps 2 and 3 mixed groups (2 mini-batches each;
        // a group's 4 rows make 2 mini-batches too).
        const PER = 2;
        const plan: Kind[][] = [
          ["all-wrong", "all-wrong", "all-wrong"],
          ["mixed", "mixed", "all-wrong"],
          ["mixed", "all-wrong", "all-wrong"],
        ];
        const LR = 1e-3;
        const schedules = {
          constant: warmupConstantSchedule({ peakValue: LR, warmupSteps: 2 * PER }),
          cosine: warmupCosineDecaySchedule({
            peakValue: LR,
            warmupSteps: 2 * PER,
            decaySteps: 3 * PER,
            minRatio: 0.1,
          }),
        };
        // On WebGPU (lavapipe: ~20 s a schedule) the cosine one alone: the shift is the same code.
        const cases = Object.entries(schedules).filter(([n]) =>
          backend === "cpu" || n === "cosine"
        );
        for (const [name, schedule] of cases) {
          const config = (run: string) =>
            rlConfig(dir, [
              ...OVERRIDES,
              `--run.name=${run}`,
              "--rl.maxGenBatches=1",
              "--rl.miniBatches=2",
              "--rl.losses=[{name: clipped_pg}]",
              "--rl.alignKeepAllCorrect=false",
              "--trainer.steps=3",
              "--trainer.warmupSteps=2",
              `--trainer.lr=${LR}`,
              "--trainer.minLrRatio=0.1",
              `--trainer.schedule=${name}`,
              "--checkpoint.every=1",
              `--backend=${backend}`,
            ]);
          const options = { ...QUIET, evalAtStart: false };
          const result = await runRl(await config(name), {
            ...options,
            sampleGroups: (await script(plan)).sampleGroups,
          });
          strictEqual(result.step, 3);
          // Killed after step 1 (no update) and resumed: the same metrics byte for byte (the
          // shift of the schedule follows from the step and the checkpoint's update count).
          const halted = await runRl(await config(`${name}-split`), {
            ...options,
            haltAfterStep: 1,
            sampleGroups: (await script(plan)).sampleGroups,
          });
          strictEqual(halted.halted, true);
          const resumed = await runRl(await config(`${name}-split`), {
            ...options,
            resume: true,
            sampleGroups: (await script(plan.slice(1))).sampleGroups,
          });
          strictEqual(
            await Deno.readTextFile(join(resumed.runDir, "metrics.jsonl")),
            await Deno.readTextFile(join(result.runDir, "metrics.jsonl")),
            `${name}: resumed`,
          );
          const lines = (await Deno.readTextFile(join(result.runDir, "metrics.jsonl"))).trim()
            .split("\n").map((l) => JSON.parse(l) as Record<string, number>);
          deepStrictEqual(lines.map((m) => m["sampling/kept_groups"]), [0, 2, 1], name);
          strictEqual(lines[0]["optim/lr"], undefined, `${name}: step 1 made an update`);
          deepStrictEqual(lines.slice(1).map((m) => m["optim/updates"]), [PER, PER], name);
          // The metric is the step's last update's rate: update u of step k (1-based) has the
          // schedule's value at (k − 1) · PER + u.
          for (const k of [2, 3]) {
            const m = lines[k - 1];
            const expected = schedule((k - 1) * PER + m["optim/updates"] - 1);
            strictEqual(
              m["optim/lr"],
              expected,
              `${name} step ${k}: ${m["optim/lr"]} vs ${expected}`,
            );
          }
          // Counting the updates made instead would give step 2 the rate of update 1.
          notStrictEqual(schedule(1), schedule(PER + 1), name);
        }
      }),
  });
}
