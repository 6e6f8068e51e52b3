import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { NonFiniteLossError, trainLoop, type TrainLoopOptions } from "./train_loop.ts";

/** A toy run: w halves each step; loss w²; optional NaN at one step. */
function toy(runDir: string, nanAt = -1) {
  const state = { w: 1, commits: 0, evals: [] as number[], saves: [] as number[] };
  const options: TrainLoopOptions = {
    runDir,
    startStep: 0,
    totalSteps: 7,
    evalEvery: 3,
    evalAtStart: true,
    checkpointEvery: 2,
    step: (s) =>
      Promise.resolve({
        loss: s === nanAt ? NaN : state.w * state.w,
        tokens: 10,
        metrics: { "loss/l2": state.w * state.w, "x/step": s },
        commit: () => {
          state.w /= 2;
          state.commits++;
        },
      }),
    evaluate: (s) => {
      state.evals.push(s);
      return Promise.resolve({ "eval/w": state.w });
    },
    checkpoint: (s) => {
      state.saves.push(s);
      return Promise.resolve(`${runDir}/step_${s}`);
    },
  };
  return { state, options };
}

async function lines(runDir: string): Promise<string[]> {
  return (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n");
}

Deno.test("trainLoop() evaluates and checkpoints on cadence and after the last step", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const { state, options } = toy(runDir);
    const result = await trainLoop(options);
    deepStrictEqual(state.evals, [0, 3, 6, 7]);
    deepStrictEqual(state.saves, [2, 4, 6, 7]);
    strictEqual(result.lastCheckpoint, `${runDir}/step_7`);
    const text = await lines(runDir);
    strictEqual(text.length, 8);
    strictEqual(text[0], '{"step":0,"eval/w":1}');
    strictEqual(text[3], '{"step":3,"eval/w":0.125,"loss/l2":0.0625,"x/step":3}');
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("trainLoop() with evalFinal false evaluates on cadence only, and with evalEvery 0 not at all", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const cadence = toy(runDir);
    await trainLoop({ ...cadence.options, evalAtStart: false, evalFinal: false });
    deepStrictEqual(cadence.state.evals, [3, 6]);
    // Checkpoints still follow their own cadence and the last step.
    deepStrictEqual(cadence.state.saves, [2, 4, 6, 7]);
    const last = JSON.parse((await lines(runDir)).at(-1)!);
    strictEqual(last.step, 7);
    strictEqual("eval/w" in last, false);

    const none = toy(runDir);
    await trainLoop({ ...none.options, evalAtStart: false, evalEvery: 0, evalFinal: false });
    deepStrictEqual(none.state.evals, []);
    const text = await lines(runDir);
    strictEqual(text.length, 7);
    strictEqual(text.some((l) => l.includes("eval/")), false);
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("trainLoop() stops on a NaN loss before applying the step", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const { state, options } = toy(runDir, 5);
    await rejects(trainLoop(options), (e: unknown) => {
      strictEqual((e as NonFiniteLossError).step, 5);
      strictEqual((e as NonFiniteLossError).lastCheckpoint, `${runDir}/step_4`);
      strictEqual(
        (e as Error).message,
        `Training stopped at step 5: "loss" must be finite: current value is NaN; the update of ` +
          `step 5 was not applied and the last good checkpoint is "${runDir}/step_4"`,
      );
      return e instanceof NonFiniteLossError;
    });
    strictEqual(state.commits, 4);
    deepStrictEqual(state.saves, [2, 4]);
    strictEqual((await lines(runDir)).length, 5); // steps 0..4
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("trainLoop() stops on a non-finite metric too", async () => {
  const runDir = await Deno.makeTempDir();
  try {
    const { options } = toy(runDir);
    await rejects(
      trainLoop({
        ...options,
        step: (s) =>
          Promise.resolve({
            loss: 1,
            tokens: 1,
            metrics: { "optim/grad_norm": s === 2 ? Infinity : 1 },
            commit: () => {},
          }),
      }),
      { name: "NonFiniteLossError", message: /step 2: "optim\/grad_norm" .* Infinity/ },
    );
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
});

Deno.test("trainLoop() resumed after a halt writes the same metrics file", async () => {
  const full = await Deno.makeTempDir();
  const split = await Deno.makeTempDir();
  try {
    await trainLoop(toy(full).options);
    // Halt after step 5 (last checkpoint at 4), then resume from 4 with the state of step 4.
    const first = toy(split);
    const halted = await trainLoop({ ...first.options, haltAfterStep: 5 });
    strictEqual(halted.halted, true);
    strictEqual((await lines(split)).length, 6); // steps 0..5, step 5 past the checkpoint
    const second = toy(split);
    second.state.w = 1 / 16; // the state saved at step 4
    await trainLoop({ ...second.options, startStep: 4 });
    deepStrictEqual(await lines(split), await lines(full));
  } finally {
    await Deno.remove(full, { recursive: true });
    await Deno.remove(split, { recursive: true });
  }
});
