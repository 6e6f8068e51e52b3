import assert from "node:assert/strict";
import type { GenerateOptions, GenerateResult } from "../../model/generate.ts";
import type { TrainBackend } from "../backend.ts";
import { withMergeAdapters } from "./merge_adapters_view.ts";

/** A backend stub that records the options of its generate calls and the other calls made. */
function recorder() {
  const seen: GenerateOptions[] = [];
  const calls: string[] = [];
  const result: GenerateResult = {
    sequences: [],
    stats: {
      readbacks: 0,
      submits: 0,
      steps: 0,
      promptTokens: 0,
      generatedTokens: 0,
      rowSteps: 0,
      seconds: 0,
    },
  };
  const called = (name: string) => () => {
    calls.push(name);
    return Promise.resolve(undefined as never);
  };
  const backend = {
    kind: "webgpu",
    mode: "adapters",
    model: null,
    params: null,
    forward: called("forward"),
    lossAndGrads: called("lossAndGrads"),
    objectiveAndGrads: called("objectiveAndGrads"),
    generate: (options: GenerateOptions) => {
      seen.push(options);
      return Promise.resolve(result);
    },
    setParams: () => void calls.push("setParams"),
    releaseWorkspaces: () => void calls.push("releaseWorkspaces"),
    dispose: () => void calls.push("dispose"),
  } as unknown as TrainBackend;
  return { backend, seen, calls };
}

const OPTIONS: GenerateOptions = { prompts: [[1, 2]], maxNewTokens: 3, temperature: 1, seed: 5 };

Deno.test("withMergeAdapters() passes rl.mergeAdapters on or off to every generate call", async () => {
  for (const merge of [true, false]) {
    const { backend, seen, calls } = recorder();
    const view = withMergeAdapters(backend, merge);
    assert.notEqual(view, backend);
    await view.generate(OPTIONS);
    assert.deepEqual(seen, [{ ...OPTIONS, mergeAdapters: merge }]);
    // A call's own choice stands.
    await view.generate({ ...OPTIONS, mergeAdapters: !merge });
    assert.equal(seen[1].mergeAdapters, !merge);
    // The rest is the backend's.
    assert.equal(view.kind, "webgpu");
    await view.forward({ inputIds: [[1]] });
    view.setParams({});
    view.releaseWorkspaces?.();
    view.dispose();
    assert.deepEqual(calls, ["forward", "setParams", "releaseWorkspaces", "dispose"]);
  }
});

Deno.test("withMergeAdapters() leaves the backend's own choice for rl.mergeAdapters: auto", () => {
  const { backend } = recorder();
  assert.equal(withMergeAdapters(backend, undefined), backend);
});
