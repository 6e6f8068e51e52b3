import { rejects } from "node:assert/strict";
import { loadConfig } from "../cli/load_config.ts";
import { readQwen3Config } from "../model/config.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import type { RolloutSourceContext } from "../trainer/rl/rollout_source.ts";
import { remoteRollouts } from "./remote_rollouts.ts";
import { serveFakes } from "./test_utils.ts";

async function context(overrides: string[]): Promise<RolloutSourceContext> {
  const config = await loadConfig(undefined, {
    overrides: [
      "--trainer.mode=rl",
      "--model.path=models/arithmetic-tiny",
      "--adapters.kind=lora",
      "--rl.rollout.adapterDir=/tmp/unused",
      ...overrides,
    ],
  });
  return {
    config,
    backend: {} as TrainBackend, // not read before the first step
    modelConfig: await readQwen3Config("models/arithmetic-tiny"),
    lora: null,
    eosTokenIds: [54],
    probePromptIds: [1, 2, 3],
    syncParams: () => Promise.resolve(),
    log: () => {},
  };
}

Deno.test("remoteRollouts() names the key when no server answers the preflight", async () => {
  const fakes = await serveFakes([() => new Response("down", { status: 503 })]);
  try {
    const ctx = await context([
      "--rl.rollout.backend=vllm",
      `--rl.rollout.servers=[${fakes.servers[0].url}]`,
      "--rl.rollout.attempts=1",
    ]);
    await rejects(remoteRollouts({ fetch: fakes.fetch })(ctx), {
      name: "RemoteEngineError",
      message: /cannot connect the servers of key "rl\.rollout\.servers": .*503/,
    });
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("remoteRollouts() refuses llama.cpp adapter sync, naming rl.rollout.backend", async () => {
  const ctx = await context([
    "--rl.rollout.backend=llamacpp",
    "--rl.rollout.servers=[http://127.0.0.1:9]",
    "--rl.rollout.preflight=false",
    "--rl.rollout.model=m",
  ]);
  await rejects(remoteRollouts()(ctx), {
    name: "RangeError",
    message: /key "rl\.rollout\.backend" is "llamacpp": .*server-wide at start-up/,
  });
});
