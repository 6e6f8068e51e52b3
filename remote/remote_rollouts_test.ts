import { rejects, strictEqual } from "node:assert/strict";
import { loadConfig } from "../cli/load_config.ts";
import { readQwen3Config } from "../model/config.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import type { RolloutSourceContext } from "../trainer/rl/rollout_source.ts";
import { remoteRollouts } from "./remote_rollouts.ts";
import { serveFakes } from "./test_utils.ts";
import { runAdapters } from "../trainer/run_adapters.ts";
import { loraTensorName } from "../model/adapter_types.ts";

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

Deno.test("rl.rollout.backend: llamacpp with LoRA is refused by the config, naming the key", async () => {
  // The per-step adapter sync cannot reach llama.cpp (adapters are set server-wide at start-up):
  // refused before the model is built, not after the servers are connected.
  await rejects(
    context([
      "--rl.rollout.backend=llamacpp",
      "--rl.rollout.servers=[http://127.0.0.1:9]",
      "--rl.rollout.preflight=false",
      "--rl.rollout.model=m",
    ]),
    /key "rl\.rollout\.backend" .*must be "vllm" or "sglang" .*server-wide at start-up.*current value is "llamacpp"/s,
  );
});

Deno.test("remoteRollouts() loads each version from serverAdapterDir when it is set", async () => {
  // Preflight off and a server that records the load requests; the first publish is all we need.
  const loads: { lora_name: string; lora_path: string }[] = [];
  const fakes = await serveFakes([async (r: Request) => {
    if (new URL(r.url).pathname === "/v1/load_lora_adapter") loads.push(await r.json());
    return new Response("ok");
  }]);
  const dir = await Deno.makeTempDir();
  try {
    const ctx = await context([
      "--rl.rollout.backend=vllm",
      `--rl.rollout.servers=[${fakes.servers[0].url}]`,
      "--rl.rollout.preflight=false",
      "--rl.rollout.model=m",
      `--rl.rollout.adapterDir=${dir}/./adapters/`,
      "--rl.rollout.serverAdapterDir=/mnt/shared/adapters",
    ]);
    const tree: Record<string, Float32Array> = {};
    // The run's LoRA tensors, as the train backend holds them.
    const lora = runAdapters(ctx.config, ctx.modelConfig)!;
    for (const m of lora.modules) {
      tree[loraTensorName(m, { matrix: "A" })] = m.experts[0].a;
      tree[loraTensorName(m, { matrix: "B" })] = m.experts[0].b;
    }
    const backend = { params: { tree } } as unknown as TrainBackend;
    const source = await remoteRollouts({ fetch: fakes.fetch, tag: "t" })({ ...ctx, backend });
    await source.beginStep(1);
    strictEqual(loads.length, 1);
    strictEqual(loads[0].lora_name, "halo-t-v1");
    strictEqual(loads[0].lora_path, "/mnt/shared/adapters/halo-t-v1");
    strictEqual(source.metrics()["rollout/policy_version"], 1);
  } finally {
    await fakes.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});
