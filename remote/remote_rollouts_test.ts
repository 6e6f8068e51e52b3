import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadConfig } from "../cli/load_config.ts";
import { readQwen3Config } from "../model/config.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import type { RolloutSourceContext } from "../trainer/rl/rollout_source.ts";
import { remoteRollouts } from "./remote_rollouts.ts";
import { oneTokenGenerate, serveFakes } from "./test_utils.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
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

Deno.test("remoteRollouts().close() unloads every version the run loaded, warning on failures", async () => {
  // Runs used to leave their last `keep` versions loaded: an SGLang built before #11526 then
  // refuses the next run's loads beyond --max-loaded-loras.
  const stub = () => Promise.reject(new Error("no generation in this test"));
  let failUnloads = false;
  const handler = fakeVllmHandler({
    generate: stub,
    model: "m",
    maxModelLen: 64,
    loadAdapter: () => Promise.resolve(stub),
  });
  const fakes = await serveFakes([
    (r: Request) =>
      failUnloads && new URL(r.url).pathname === "/v1/unload_lora_adapter"
        ? new Response("busy", { status: 503 })
        : handler(r),
  ]);
  const dir = await Deno.makeTempDir();
  const served = async () => {
    const json = await (await fakes.fetch(`${fakes.servers[0].url}/v1/models`)).json();
    return (json.data as { id: string }[]).map((m) => m.id);
  };
  try {
    const ctx = await context([
      "--rl.rollout.backend=vllm",
      `--rl.rollout.servers=[${fakes.servers[0].url}]`,
      "--rl.rollout.preflight=false",
      "--rl.rollout.model=m",
      `--rl.rollout.adapterDir=${dir}`,
      "--rl.rollout.stalenessWindow=1",
    ]);
    const tree: Record<string, Float32Array> = {};
    for (const m of runAdapters(ctx.config, ctx.modelConfig)!.modules) {
      tree[loraTensorName(m, { matrix: "A" })] = m.experts[0].a;
      tree[loraTensorName(m, { matrix: "B" })] = m.experts[0].b;
    }
    const backend = { params: { tree } } as unknown as TrainBackend;
    const warnings: string[] = [];
    const open = (tag: string) =>
      remoteRollouts({ fetch: fakes.fetch, tag, onCloseWarning: (w) => warnings.push(w) })({
        ...ctx,
        backend,
      });
    const source = await open("a");
    for (const step of [1, 2, 3]) await source.beginStep(step);
    deepStrictEqual(await served(), ["m", "halo-a-v2", "halo-a-v3"]);
    await source.close();
    deepStrictEqual(await served(), ["m"]);
    deepStrictEqual(warnings, []);
    // An unload that fails at close is a warning, not an error (close runs in runRl's finally,
    // where an error would hide the run's own).
    const second = await open("b");
    await second.beginStep(1);
    failUnloads = true;
    await second.close();
    deepStrictEqual(await served(), ["m", "halo-b-v1"]);
    strictEqual(warnings.length, 1, JSON.stringify(warnings));
    ok(
      /^rollouts: unloading adapter "halo-b-v1" failed at close; given up: it stays loaded on .*HTTP 503/
        .test(warnings[0]),
      warnings[0],
    );
  } finally {
    await fakes.closeAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rl.rollout.unloadStale unloads at connect only the adapters a crashed process of this prefix left", async () => {
  // A crashed process's versions (another random tag) used to stay loaded: an SGLang built
  // before #11526 then refused the next run's second publish (--max-loaded-loras).
  const stub = () => Promise.reject(new Error("no generation in this test"));
  const crashed = ["halo-0a1b2c-v7", "halo-0a1b2c-v8", "halo-d4e5f6-v2"];
  const others = [
    "halo-ffffff-v1", // this process's tag
    "other-0a1b2c-v1", // another prefix
    "halo-0A1B2C-v1", // not a tag (lower-case hex only)
    "halo-0a1b2-v1",
    "halo-0a1b2c-v1x",
    "halo-0a1b2c",
    "xhalo-0a1b2c-v1",
    "halo.0a1b2c-v1",
  ];
  const refused = "halo-abcdef-v3"; // its unload fails: a warning, not an error
  const handler = fakeVllmHandler({
    generate: stub,
    model: "m",
    maxModelLen: 64,
    adapters: [...crashed, ...others, refused],
    loadAdapter: () => Promise.resolve(stub),
  });
  const fakes = await serveFakes([
    async (r: Request) =>
      new URL(r.url).pathname === "/v1/unload_lora_adapter" &&
        (await r.clone().json()).lora_name === refused
        ? new Response("busy", { status: 503 })
        : handler(r),
  ]);
  const served = async () => {
    const json = await (await fakes.fetch(`${fakes.servers[0].url}/v1/models`)).json();
    return (json.data as { id: string }[]).map((m) => m.id).sort();
  };
  try {
    const open = async (unloadStale: boolean) =>
      await remoteRollouts({ fetch: fakes.fetch, tag: "ffffff" })(
        await context([
          "--rl.rollout.backend=vllm",
          `--rl.rollout.servers=[${fakes.servers[0].url}]`,
          "--rl.rollout.preflight=false",
          "--rl.rollout.model=m",
          `--rl.rollout.unloadStale=${unloadStale}`,
        ]),
      );
    const all = ["m", ...crashed, ...others, refused].sort();
    // Off by default: nothing is unloaded.
    const off = await open(false);
    deepStrictEqual(await served(), all);
    deepStrictEqual(off.takeWarnings(), []);
    const on = await open(true);
    deepStrictEqual(await served(), ["m", ...others, refused].sort());
    const [failed, ...unloaded] = on.takeWarnings().sort(); // "rl.…" sorts first
    deepStrictEqual(
      unloaded,
      crashed.map((name) =>
        `unloaded stale adapter "${name}" from "${fakes.servers[0].url}" (rl.rollout.unloadStale)`
      ),
    );
    ok(
      /^rl\.rollout\.unloadStale: unloading stale adapter "halo-abcdef-v3" failed; it stays loaded on "http.*HTTP 503/
        .test(failed),
      failed,
    );
    ok(/; unloaded 3 stale adapter\(s\)/.test(on.description), on.description);
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("rl.rollout.unloadStale skips a server that failed the preflight, and escapes the prefix's dot", async () => {
  // The down server was listed again (with the full timeoutMs: a blackholed one held the
  // connect); adapterPrefix "h.lo" matched "hxlo-…" if its "." were not escaped.
  const asked: string[] = [];
  const unloads: string[] = [];
  const fakes = await serveFakes([
    async (r: Request) => {
      const path = new URL(r.url).pathname;
      if (path === "/v1/models") {
        const data = [
          { id: "m", parent: null, max_model_len: 64 },
          ...[
            "h.lo-0a1b2c-v1",
            "hxlo-0a1b2c-v1",
          ].map((id) => ({ id, parent: "m" })),
        ];
        return Response.json({ object: "list", data });
      }
      if (path === "/v1/unload_lora_adapter") unloads.push((await r.json()).lora_name);
      // The probe: no top log-probs, so "unknown"; the preflight passes.
      return Response.json({ choices: [{ index: 0, text: "", logprobs: null }] });
    },
    (r: Request) => {
      asked.push(new URL(r.url).pathname);
      return new Response("down", { status: 503 });
    },
  ]);
  try {
    const [up, down] = fakes.servers.map((s) => s.url);
    const source = await remoteRollouts({ fetch: fakes.fetch, tag: "ffffff" })(
      await context([
        "--rl.rollout.backend=vllm",
        `--rl.rollout.servers=[${up}, ${down}]`,
        "--rl.rollout.adapterPrefix=h.lo",
        "--rl.rollout.unloadStale=true",
      ]),
    );
    deepStrictEqual(asked, ["/v1/models"]); // the preflight's, and no other
    deepStrictEqual(unloads, ["h.lo-0a1b2c-v1"]);
    const warnings = source.takeWarnings();
    ok(
      warnings.some((w) =>
        w.startsWith(
          `rl.rollout.unloadStale: did not unload stale adapters from "${down}": it failed ` +
            `the preflight at connect (`,
        )
      ),
      JSON.stringify(warnings),
    );
    ok(
      /; unloaded 1 stale adapter\(s\) \(1 server\(s\) not checked: see the warnings\)/.test(
        source.description,
      ),
      source.description,
    );
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("rl.rollout.apiKeyEnv sends the key from the environment; maxSeqsInFlight caps the sequences per request", async () => {
  const seen: { auth: string | null; n?: number }[] = [];
  const handler = fakeVllmHandler({
    generate: oneTokenGenerate(54, "stop"),
    model: "m",
    maxModelLen: 64,
  });
  const fakes = await serveFakes([async (r: Request) => {
    const body = r.method === "POST" ? await r.clone().json() : {};
    seen.push({ auth: r.headers.get("authorization"), n: body.n });
    return handler(r);
  }]);
  const name = "HALO_TEST_ROLLOUT_API_KEY";
  try {
    const ctx = await context([
      "--rl.rollout.backend=vllm",
      `--rl.rollout.servers=[${fakes.servers[0].url}]`,
      `--rl.rollout.apiKeyEnv=${name}`,
      "--rl.rollout.maxSeqsInFlight=2",
    ]);
    Deno.env.delete(name);
    await rejects(
      remoteRollouts({ fetch: fakes.fetch })(ctx),
      (e: Error) => {
        ok(
          /the environment variable named by key "rl\.rollout\.apiKeyEnv" \(25 characters, not shown\) is not set \(or empty\).*must hold the variable's NAME/
            .test(e.message),
          e.message,
        );
        return true;
      },
    );
    Deno.env.set(name, "s3cret-key");
    const source = await remoteRollouts({ fetch: fakes.fetch })(ctx);
    const sampling = {
      groupSize: 3,
      maxNewTokens: 1,
      temperature: 1,
      seed: 1,
      firstGroup: 0,
      tokenizer: { decode: () => "", tokenOffsets: () => [[0, 0]] },
    } as unknown as import("../trainer/rl/rollout.ts").SampleGroupsOptions;
    const backend = { model: { config: { eosTokenIds: [54] } } } as unknown as TrainBackend;
    seen.length = 0;
    const { groups } = await source.sampleGroups(backend, [[1, 2]], sampling);
    deepStrictEqual(groups.map((g) => g.length), [3]);
    // A group of 3 goes as requests of at most 2 sequences, each with the key.
    deepStrictEqual(seen, [{ auth: "Bearer s3cret-key", n: 2 }, {
      auth: "Bearer s3cret-key",
      n: 1,
    }]);
    // Only the variable's name is in the config (and so in checkpoints): never the key.
    // Only the variable's name is in the config (and so in checkpoints), and the key is in
    // nothing the run logs or records: the description, metrics, warnings, close warnings.
    strictEqual(ctx.config.rl.rollout.apiKeyEnv, name);
    const closeWarnings: string[] = [];
    const logged = await remoteRollouts({
      fetch: fakes.fetch,
      onCloseWarning: (m) => closeWarnings.push(m),
    })(ctx);
    await logged.sampleGroups(backend, [[1, 2]], sampling);
    await logged.close();
    const recorded = JSON.stringify([
      ctx.config,
      logged.description,
      logged.metrics(),
      logged.takeWarnings(),
      closeWarnings,
    ]);
    ok(recorded.includes(fakes.servers[0].url), recorded); // what is checked is not empty
    ok(!recorded.includes("s3cret"), recorded);
    await source.close();
  } finally {
    Deno.env.delete(name);
    await fakes.closeAll();
  }
  // A key pasted in place of the variable's name is never echoed (the message used to show it
  // twice: in the override and as the current value).
  const pasted = "token-abc123";
  const refused = await context([
    "--rl.rollout.backend=vllm",
    `--rl.rollout.apiKeyEnv=${pasted}`,
  ]).then(() => "accepted", (e: Error) => e.message);
  ok(
    /key "rl\.rollout\.apiKeyEnv" \(set by "--rl\.rollout\.apiKeyEnv=…"\) must be the NAME of an environment variable .*\(12 characters\) is not shown/
      .test(refused),
    refused,
  );
  ok(!refused.includes("abc123"), refused);
  // One that passes as a name (letters and digits) but is not set: not echoed either, unlike a
  // conventional name (upper case), which the error names.
  const keyLike = "abc123secret";
  const ctx = await context([
    "--rl.rollout.backend=vllm",
    `--rl.rollout.servers=[http://127.0.0.1:9]`,
    `--rl.rollout.apiKeyEnv=${keyLike}`,
  ]);
  Deno.env.delete(keyLike);
  const unset = await remoteRollouts({})(ctx).then(() => "accepted", (e: Error) => e.message);
  ok(/must be the NAME of an environment variable .*12 characters, not shown/.test(unset), unset);
  ok(!unset.includes("abc123"), unset);
  // Nor one that looks like a conventional name (upper case and digits, as some keys do): the
  // message used to name "the environment variable" by the value.
  const upper = "K9X2QF7ZL3M8";
  Deno.env.delete(upper);
  const named = await remoteRollouts({})(
    await context([
      "--rl.rollout.backend=vllm",
      `--rl.rollout.servers=[http://127.0.0.1:9]`,
      `--rl.rollout.apiKeyEnv=${upper}`,
    ]),
  ).then(() => "accepted", (e: Error) => e.message);
  ok(
    /named by key "rl\.rollout\.apiKeyEnv" \(12 characters, not shown\) is not set/.test(named),
    named,
  );
  ok(!named.includes(upper), named);
});
