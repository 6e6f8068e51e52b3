// AdapterSync against two fake vLLM servers whose load route loads the PEFT directory into
// halo's CPU model (models/arithmetic-tiny): versions are published under new names, old ones
// unloaded, and a served version samples exactly what the base model with that adapter samples.
// Tolerance: served log-probs (float32) vs halo's float64 scoring of the adapted model ≤ 1e-5.
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../model/load_model.ts";
import { generate } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { savePeftAdapter } from "../adapters/peft_io.ts";
import { AdapterSync } from "./adapter_sync.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
import { RolloutClient } from "./rollout_client.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { RemoteEngineError, type RolloutRequest } from "./types.ts";
import { oneTokenGenerate, serveFakes } from "./test_utils.ts";
import { peftWriter } from "./peft_writer.ts";
import { withTempDir } from "../internal/test_utils.ts";
import { loraTensorName } from "../adapters/lora.ts";
import type { TrainBackend } from "../trainer/backend.ts";

const BASE = "models/arithmetic-tiny";

Deno.test({
  name: "AdapterSync publishes versions under new names, unloads old ones, and serves the update",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const models: Qwen3Model[] = [];
    const load = async (adapter?: string) => {
      const m = await loadModel(BASE, { backend: "cpu", warn: false, adapter });
      models.push(m);
      return m;
    };
    const base = await load();
    const dir = await Deno.makeTempDir({ prefix: "halo_adapter_sync_" });
    const fakes = await serveFakes([0, 1].map(() =>
      fakeVllmHandler({
        generate: (o) => generate(base, o),
        model: "arith",
        maxModelLen: 128,
        loadAdapter: async (path) => {
          const m = await load(path);
          return (o) => generate(m, o);
        },
      })
    ));
    try {
      const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
        engine: "vllm",
        vocabSize: 64,
        fetch: fakes.fetch,
      });
      const sync = new AdapterSync(pool.clients, { dir, keep: 2 });
      const write = (seed: number) => (to: string) =>
        savePeftAdapter(
          to,
          createLora(loraConfig({ r: 4, initLoraWeights: false }), base.config, { seed }),
        );
      const results = [];
      for (const v of [1, 2, 3]) results.push(await sync.publish(v, write(v)));
      deepStrictEqual(results.map((r) => [r.name, r.unloaded, r.warnings]), [
        ["halo-v1", [], []],
        ["halo-v2", [], []],
        ["halo-v3", ["halo-v1"], []],
      ]);
      deepStrictEqual(sync.loaded, ["halo-v2", "halo-v3"]);
      for (const c of pool.clients) {
        deepStrictEqual((await c.preflight()).models, ["arith", "halo-v2", "halo-v3"]);
      }
      // No temporary directories are left; each version has its own.
      deepStrictEqual(
        [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
        ["halo-v1", "halo-v2", "halo-v3"],
      );

      const prompt = [0, 1, 2, 3, 4];
      const request: RolloutRequest = {
        promptIds: prompt,
        n: 4,
        maxTokens: 8,
        temperature: 1,
        topP: 1,
        topK: 0,
        seed: 3,
        stopTokenIds: [],
        eosTokenIds: [54],
        adapter: "halo-v3",
        policyVersion: 3,
      };
      const served = await pool.generate(request);
      const adapted = await loadModel(BASE, {
        backend: "cpu",
        warn: false,
        adapter: join(dir, "halo-v3"),
      });
      models.push(adapted);
      const direct = await generate(adapted, {
        prompts: Array(4).fill(prompt),
        maxNewTokens: 8,
        temperature: 1,
        seed: 3,
        stopTokenIds: [54],
      });
      deepStrictEqual(served.map((c) => c.tokenIds), direct.sequences.map((s) => s.tokens));
      let gapAdapted = 0;
      let gapBase = 0;
      for (const c of served) {
        strictEqual(c.policyVersion, 3);
        const ids = [[...prompt, ...c.tokenIds]];
        const a = (await adapted.tokenLogprobs({ inputIds: ids })).logprobs;
        const b = (await base.tokenLogprobs({ inputIds: ids })).logprobs;
        c.samplerLogprobs.forEach((lp, i) => {
          gapAdapted = Math.max(gapAdapted, Math.abs(a[prompt.length - 1 + i] - lp));
          gapBase = Math.max(gapBase, Math.abs(b[prompt.length - 1 + i] - lp));
        });
      }
      ok(gapAdapted <= 1e-5, `served vs adapted model: ${gapAdapted}`);
      ok(gapBase > 1e-3, `served vs base model: ${gapBase} (the adapter changes nothing?)`);

      // Names are never reused; an unloaded version is gone from the servers (and the pool,
      // which tracks what each server holds, says so without asking them).
      await rejects(sync.publish(3, write(9)), /must be integers that increase/);
      await rejects(pool.generate({ ...request, adapter: "halo-v1" }), (e: unknown) => {
        ok(e instanceof RemoteEngineError && !e.retryable, String(e));
        ok(/no rollout server holds adapter "halo-v1": they hold/.test(e.message), e.message);
        return true;
      });
      for (const c of pool.clients) {
        await rejects(c.generate({ ...request, adapter: "halo-v1" }), /HTTP 404/);
      }
      // A version the servers cannot load fails naming them, and the previous one stays current.
      await rejects(
        sync.publish(4, writeStubAdapter),
        (e: unknown) => {
          ok(e instanceof RemoteEngineError, String(e));
          ok(/"halo-v4" failed to load on 2 of 2 servers/.test(e.message), e.message);
          for (const s of fakes.servers) ok(e.message.includes(s.url), e.message);
          return true;
        },
      );
      strictEqual(sync.current?.name, "halo-v3");
    } finally {
      await fakes.closeAll();
      for (const m of models) m.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** A one-token request for the restartable servers' stub generation, with `n` samples. */
function stubRequest(adapter: string, n: number): RolloutRequest {
  return {
    promptIds: [1, 2],
    n,
    maxTokens: 1,
    temperature: 1,
    topP: 1,
    topK: 0,
    seed: 1,
    stopTokenIds: [],
    eosTokenIds: [54],
    adapter,
    policyVersion: 1,
  };
}

/** Writes the stand-in adapter the fake servers load. */
function writeStubAdapter(dir: string): Promise<void> {
  return Deno.writeTextFile(join(dir, "adapter_config.json"), "{}");
}

/**
 * A fake vLLM server that can restart (losing its adapters); generation is a stub. `gate`, when
 * given, is awaited before each adapter load (given the directory's name).
 */
function restartable(tag: string, loads: string[], gate?: (name: string) => Promise<void>) {
  const stub = oneTokenGenerate(tag === "a" ? 5 : 6, "length");
  const make = () =>
    fakeVllmHandler({
      generate: stub,
      model: "arith",
      maxModelLen: 128,
      loadAdapter: async (path) => {
        const name = path.split("/").at(-1)!;
        loads.push(`${tag} ${name}`);
        await gate?.(name);
        return stub;
      },
    });
  let handler = make();
  return {
    handler: (r: Request) => handler(r),
    restart: () => void (handler = make()),
  };
}

Deno.test({
  name: "A restarted server's lost adapter is loaded again, and requests go where it is held",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loads: string[] = [];
    const servers = [restartable("a", loads), restartable("b", loads)];
    const fakes = await serveFakes(servers.map((s) => s.handler));
    const dir = await Deno.makeTempDir({ prefix: "halo_adapter_sync_" });
    try {
      const request = (adapter: string) => stubRequest(adapter, 2);
      // One server: vLLM answers 404 "model does not exist" after a restart; the pool used to
      // take that for a refused request and end the run.
      const [a] = fakes.servers;
      const single = await RolloutPool.connect([a.url], {
        engine: "vllm",
        vocabSize: 64,
        fetch: fakes.fetch,
        backoffMs: 1,
      });
      const sync = new AdapterSync(single.clients, { dir, prefix: "one", keep: 2 });
      const { name } = await sync.publish(1, writeStubAdapter);
      servers[0].restart();
      const choices = await single.generate(request(name));
      strictEqual(choices.length, 2);
      deepStrictEqual(loads, ["a one-v1", "a one-v1"]); // published, then restored
      ok(single.clients[0].servedAdapters?.has(name));

      // Two servers, one restarted: the request goes to the other, and the adapter is loaded
      // again on the restarted one.
      loads.length = 0;
      const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
        engine: "vllm",
        vocabSize: 64,
        fetch: fakes.fetch,
        backoffMs: 1,
      });
      const sync2 = new AdapterSync(pool.clients, { dir, prefix: "two", keep: 2 });
      const v1 = (await sync2.publish(1, writeStubAdapter)).name;
      servers[0].restart();
      servers[1].restart(); // both lost it: the first 404 awaits its reload
      const out = await Promise.all([0, 1, 2, 3].map(() => pool.generate(request(v1))));
      strictEqual(out.flat().length, 8);
      ok(pool.clients.every((c) => c.servedAdapters?.has(v1)), JSON.stringify(loads));
      // An adapter no longer in the window is not loaded again: the 404 ends the request.
      const v2 = (await sync2.publish(2, writeStubAdapter)).name;
      const v3 = (await sync2.publish(3, writeStubAdapter)).name;
      deepStrictEqual(sync2.loaded, [v2, v3]);
      pool.clients[0].servedAdapters!.add(v1); // stale belief
      pool.clients[1].servedAdapters!.add(v1);
      await rejects(pool.generate(request(v1)), RemoteEngineError);
    } finally {
      await fakes.closeAll();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "A reload racing a publish that unloads the same version leaves no stale adapter loaded",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The race: a restarted server's 404 for v1 starts a reload of v1 (in the window then);
    // while that load runs, publish(v3) loads v3 and unloads v1 from the servers that hold it:
    // not this one (it lost v1, and the reload is not done). Then the reload lands: the server
    // holds v1, out of the window, for good, one adapter beyond --max-loras (= keep) once v2
    // is reloaded too.
    const loads: string[] = [];
    let entered!: () => void;
    const reloadStarted = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const gate = (name: string) => {
      if (name !== "race-v1" || loads.filter((l) => l === "a race-v1").length < 2) {
        return Promise.resolve();
      }
      entered();
      return released; // the reload of v1 hangs until released
    };
    const server = restartable("a", loads, gate);
    const fakes = await serveFakes([server.handler]);
    const dir = await Deno.makeTempDir({ prefix: "halo_adapter_sync_" });
    try {
      const request = (adapter: string) => stubRequest(adapter, 1);
      const pool = await RolloutPool.connect([fakes.servers[0].url], {
        engine: "vllm",
        vocabSize: 64,
        fetch: fakes.fetch,
        backoffMs: 1,
      });
      const keep = 2;
      const sync = new AdapterSync(pool.clients, { dir, prefix: "race", keep });
      await sync.publish(1, writeStubAdapter);
      await sync.publish(2, writeStubAdapter);
      server.restart();
      const late = pool.generate(request("race-v1")).then(() => "served", (e) => String(e));
      await reloadStarted;
      const published = sync.publish(3, writeStubAdapter);
      await new Promise((r) => setTimeout(r, 20)); // let the publish run as far as it can
      release();
      const result = await published;
      deepStrictEqual([result.name, result.unloaded], ["race-v3", ["race-v1"]]);
      await late; // served before v1 was unloaded, or refused as out of the window
      // v2 is reloaded on its next request.
      strictEqual((await pool.generate(request("race-v2"))).length, 1);
      const held = (await pool.clients[0].preflight()).models.filter((m) => m !== "arith");
      deepStrictEqual(held.sort(), sync.loaded, `loads: ${JSON.stringify(loads)}`);
      ok(held.length <= keep, JSON.stringify(held));
      deepStrictEqual([...pool.clients[0].servedAdapters!].sort(), sync.loaded);
    } finally {
      await fakes.closeAll();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "The fake vLLM server refuses rank_pattern/alpha_pattern (vLLM ignores them); peftWriter's " +
    "adapter loads and serves halo's adapted model",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const models: Qwen3Model[] = [];
    const base = await loadModel(BASE, { backend: "cpu", warn: false });
    models.push(base);
    const dir = await Deno.makeTempDir({ prefix: "halo_adapter_sync_" });
    const fakes = await serveFakes([
      fakeVllmHandler({
        generate: (o) => generate(base, o),
        model: "arith",
        maxModelLen: 128,
        loadAdapter: async (path) => {
          const m = await loadModel(BASE, { backend: "cpu", warn: false, adapter: path });
          models.push(m);
          return (o) => generate(m, o);
        },
      }),
    ]);
    try {
      const pool = await RolloutPool.connect([fakes.servers[0].url], {
        engine: "vllm",
        vocabSize: 64,
        fetch: fakes.fetch,
      });
      const sync = new AdapterSync(pool.clients, { dir, keep: 2 });
      const cfg = loraConfig({
        r: 4,
        loraAlpha: 8,
        rankPattern: { "v_proj": 2 },
        alphaPattern: { "o_proj": 2 },
        initLoraWeights: false,
      });
      const lora = createLora(cfg, base.config, { seed: 3 });
      // Written as halo saves it, vLLM would mis-scale it: the fake refuses it.
      await rejects(sync.publish(1, (to) => savePeftAdapter(to, lora)), /rank_pattern.*v_proj/);
      // Through peftWriter (patterns folded into B) it loads, and serves what halo's model with
      // the original adapter samples.
      const tree: Record<string, Float32Array> = {};
      for (const m of lora.modules) {
        tree[loraTensorName(m, { matrix: "A" })] = m.experts[0].a;
        tree[loraTensorName(m, { matrix: "B" })] = m.experts[0].b;
      }
      const backend = { params: { tree } } as unknown as TrainBackend;
      const { name } = await sync.publish(
        2,
        (to) => peftWriter(createLora(cfg, base.config, { seed: 9 }))(backend, to),
      );
      const own = join(dir, "own");
      await savePeftAdapter(own, lora);
      const adapted = await loadModel(BASE, { backend: "cpu", warn: false, adapter: own });
      models.push(adapted);
      const prompt = [0, 1, 2, 3, 4];
      const served = await pool.generate({
        promptIds: prompt,
        n: 4,
        maxTokens: 8,
        temperature: 1,
        topP: 1,
        topK: 0,
        seed: 3,
        stopTokenIds: [],
        eosTokenIds: [54],
        adapter: name,
        policyVersion: 2,
      });
      let gap = 0;
      for (const c of served) {
        const ids = [[...prompt, ...c.tokenIds]];
        const a = (await adapted.tokenLogprobs({ inputIds: ids })).logprobs;
        c.samplerLogprobs.forEach((lp, i) => {
          gap = Math.max(gap, Math.abs(a[prompt.length - 1 + i] - lp));
        });
      }
      ok(gap <= 1e-5, `served (peftWriter) vs halo's adapted model: ${gap}`);
    } finally {
      await fakes.closeAll();
      for (const m of models) m.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A vLLM-like server's adapter routes on a client's `fetch`: `held` is what it holds, `unloads`
 * logs each unload call, and `fail(name)` makes that call answer HTTP 503 when it returns true.
 */
function adapterRoutes(fail: (name: string) => boolean) {
  const held = new Set<string>();
  const unloads: string[] = [];
  const answer = (path: string, name: string): Response => {
    if (path === "/v1/load_lora_adapter") held.add(name);
    else if (path === "/v1/unload_lora_adapter") {
      unloads.push(name);
      if (fail(name)) return new Response("busy", { status: 503 });
      if (!held.delete(name)) return new Response("cannot be found", { status: 404 });
    } else return new Response("no route", { status: 404 });
    return new Response("ok");
  };
  const fetch: typeof globalThis.fetch = (input, init) =>
    Promise.resolve(
      answer(new URL(String(input)).pathname, JSON.parse(String(init!.body)).lora_name),
    );
  const client = new RolloutClient("http://a", {
    engine: "vllm",
    vocabSize: 64,
    model: "m",
    fetch,
  });
  return { client, held, unloads };
}

Deno.test("AdapterSync tries a failed unload again at the next publish, a bounded number of times", async () => {
  await withTempDir(async (dir) => {
    // v1's first unload fails: it used to stay loaded for good (one of --max-loras per failure).
    let v1Fails = 1;
    const flaky = adapterRoutes((name) => name === "t-v1" && v1Fails-- > 0);
    const sync = new AdapterSync([flaky.client], { dir, prefix: "t", keep: 2 });
    for (const v of [1, 2]) await sync.publish(v, writeStubAdapter);
    const third = await sync.publish(3, writeStubAdapter);
    deepStrictEqual(third.unloaded, ["t-v1"]);
    strictEqual(third.warnings.length, 1, JSON.stringify(third.warnings));
    ok(
      /unloading adapter "t-v1" failed \(try 1 of 3; tried again at the next publish\): Server "http:\/\/a": .*HTTP 503/
        .test(third.warnings[0]),
      third.warnings[0],
    );
    deepStrictEqual([...flaky.held].sort(), ["t-v1", "t-v2", "t-v3"]);
    const fourth = await sync.publish(4, writeStubAdapter);
    deepStrictEqual([fourth.unloaded, fourth.warnings], [["t-v2"], []]);
    deepStrictEqual([...flaky.held].sort(), ["t-v3", "t-v4"]);
    deepStrictEqual([...flaky.client.servedAdapters!].sort(), ["t-v3", "t-v4"]);
    deepStrictEqual(flaky.unloads, ["t-v1", "t-v1", "t-v2"]);

    // An unload that keeps failing is tried `unloadTries` times, then given up with a warning.
    const stuck = adapterRoutes((name) => name === "s-v1");
    const sync2 = new AdapterSync([stuck.client], { dir, prefix: "s", keep: 1, unloadTries: 2 });
    const warnings = [];
    for (const v of [1, 2, 3, 4]) {
      warnings.push((await sync2.publish(v, writeStubAdapter)).warnings);
    }
    strictEqual(stuck.unloads.filter((n) => n === "s-v1").length, 2, String(stuck.unloads));
    deepStrictEqual(warnings.map((w) => w.length), [0, 1, 1, 0]);
    ok(
      /failed \(try 1 of 2; tried again at the next publish\)/.test(warnings[1][0]),
      warnings[1][0],
    );
    ok(
      /"s-v1" failed 2 times; given up: it stays loaded on "http:\/\/a"/.test(warnings[2][0]),
      warnings[2][0],
    );
    deepStrictEqual([...stuck.held].sort(), ["s-v1", "s-v4"]);

    // A server that no longer holds the version (404: it restarted) is not asked again.
    let v1Lost = false;
    const lost = adapterRoutes((name) => name === "l-v1" && !v1Lost);
    const sync3 = new AdapterSync([lost.client], { dir, prefix: "l", keep: 1 });
    await sync3.publish(1, writeStubAdapter);
    strictEqual((await sync3.publish(2, writeStubAdapter)).warnings.length, 1);
    lost.held.delete("l-v1"); // restarted (and v2 reloaded)
    v1Lost = true;
    deepStrictEqual((await sync3.publish(3, writeStubAdapter)).warnings, []);
    await sync3.publish(4, writeStubAdapter);
    deepStrictEqual(lost.unloads, ["l-v1", "l-v1", "l-v2", "l-v3"]);
    deepStrictEqual([...lost.client.servedAdapters!], ["l-v4"]);
    throws(() => new AdapterSync([lost.client], { dir, unloadTries: 0 }), /"unloadTries" must be/);
  });
});

Deno.test("AdapterSync: SGLang's HTTP 400 'LoRA with name … does not exist' on unload means not held", async () => {
  // SGLang answers the unload of a name it does not hold (it restarted) with HTTP 400
  // {success: false, error_message: "LoRA with name <name> does not exist. …"}, not vLLM's 404:
  // each publish used to warn and try the unload again, up to unloadTries times.
  const held = new Set<string>();
  const calls: string[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const path = new URL(String(input)).pathname;
    const name = JSON.parse(String(init!.body)).lora_name;
    calls.push(`${path} ${name}`);
    if (path === "/load_lora_adapter") held.add(name);
    else if (path === "/unload_lora_adapter" && !held.delete(name)) {
      const error_message = `LoRA with name ${name} does not exist. Loaded LoRAs: ` +
        `odict_keys(${JSON.stringify([...held])})`;
      return Promise.resolve(Response.json({ success: false, error_message }, { status: 400 }));
    }
    return Promise.resolve(Response.json({ success: true, error_message: "" }));
  };
  const client = new RolloutClient("http://a", {
    engine: "sglang",
    vocabSize: 64,
    model: "m",
    fetch,
  });
  await withTempDir(async (dir) => {
    const sync = new AdapterSync([client], { dir, prefix: "g", keep: 1 });
    await sync.publish(1, writeStubAdapter);
    held.clear(); // restarted
    const second = await sync.publish(2, writeStubAdapter);
    deepStrictEqual([second.unloaded, second.warnings], [["g-v1"], []]);
    deepStrictEqual([...client.servedAdapters!], ["g-v2"]);
    const third = await sync.publish(3, writeStubAdapter);
    deepStrictEqual([third.unloaded, third.warnings], [["g-v2"], []]);
    deepStrictEqual(calls, [
      "/load_lora_adapter g-v1",
      "/load_lora_adapter g-v2",
      "/unload_lora_adapter g-v1",
      "/load_lora_adapter g-v3",
      "/unload_lora_adapter g-v2", // g-v1 is not asked again
    ]);
    deepStrictEqual([...held], ["g-v3"]);
  });
});

Deno.test("AdapterSync.close() unloads the window and the earlier failed unloads, then refuses publishes", async () => {
  await withTempDir(async (dir) => {
    let v1Fails = 1;
    const server = adapterRoutes((name) => name === "c-v1" && v1Fails-- > 0);
    const sync = new AdapterSync([server.client], { dir, prefix: "c", keep: 2 });
    for (const v of [1, 2, 3]) await sync.publish(v, writeStubAdapter); // c-v1's unload fails
    deepStrictEqual([...server.held].sort(), ["c-v1", "c-v2", "c-v3"]);
    deepStrictEqual(await sync.close(), []);
    deepStrictEqual([...server.held], []);
    deepStrictEqual([...server.client.servedAdapters!], []);
    deepStrictEqual(sync.loaded, []);
    await rejects(sync.publish(4, writeStubAdapter), /version 4: the AdapterSync is closed/);
  });
});

Deno.test("AdapterSync.publish() tries a load again after a retryable failure (one server, one 503)", async () => {
  // A single-server run used to end on one 503 (or timeout) during a publish.
  await withTempDir(async (dir) => {
    const loads: number[] = [];
    let answers = [503, 200];
    const held = new Set<string>();
    const fetch: typeof globalThis.fetch = (_input, init) => {
      const name = JSON.parse(String(init!.body)).lora_name;
      const status = answers.shift() ?? 200;
      loads.push(status);
      if (status !== 200) return Promise.resolve(new Response("overloaded", { status }));
      if (held.has(name)) {
        return Promise.resolve(
          new Response(`The lora adapter '${name}' has already been loaded.`, { status: 400 }),
        );
      }
      held.add(name);
      return Promise.resolve(new Response("ok"));
    };
    const client = new RolloutClient("http://a", {
      engine: "vllm",
      vocabSize: 64,
      model: "m",
      fetch,
    });
    const sync = new AdapterSync([client], { dir, prefix: "r", keep: 2, backoffMs: 1 });
    const first = await sync.publish(1, writeStubAdapter);
    deepStrictEqual([first.name, first.warnings, loads], ["r-v1", [], [503, 200]]);
    deepStrictEqual([...client.servedAdapters!], ["r-v1"]);
    // A try that timed out but loaded: the next try's "already been loaded" is a success.
    held.add("r-v2");
    answers = [504];
    loads.length = 0;
    deepStrictEqual((await sync.publish(2, writeStubAdapter)).warnings, []);
    deepStrictEqual(loads, [504, 200]);
    // A server failing every try fails the publish after `attempts` tries.
    answers = [503, 503, 503];
    loads.length = 0;
    const tight = new AdapterSync([client], { dir, prefix: "t", attempts: 3, backoffMs: 1 });
    await rejects(tight.publish(1, writeStubAdapter), /"t-v1" failed to load on 1 of 1 servers/);
    deepStrictEqual(loads, [503, 503, 503]);
    throws(() => new AdapterSync([client], { dir, attempts: 0 }), /"attempts" must be/);
  });
});

/**
 * A vLLM-like server on a `fetch` stub that logs what it answers: the load route answers
 * `loadAnswers` in turn (then 200; 400 "already been loaded" when `alreadyHeld`), completions
 * answer 404 "model does not exist" for an adapter it does not hold, and `hang` makes every
 * request wait for its abort.
 */
function loggingServer(url: string, timeoutMs?: number) {
  const state = {
    held: new Set<string>(),
    loadAnswers: [] as number[],
    alreadyHeld: false,
    generate404: 0,
    hang: false,
    inFlight: 0,
    maxInFlight: 0,
    log: [] as string[],
  };
  const GOOD = {
    choices: [{
      index: 0,
      token_ids: [54],
      logprobs: { token_logprobs: [-0.5], tokens: ["token_id:54"] },
      finish_reason: "stop",
    }],
  };
  const fetch: typeof globalThis.fetch = (input, init) => {
    const path = new URL(String(input)).pathname;
    const body = JSON.parse(String(init!.body));
    if (state.hang) {
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      state.log.push(`hung ${path}`);
      return new Promise((_, reject) =>
        init!.signal!.addEventListener("abort", () => {
          state.inFlight--;
          reject(init!.signal!.reason);
        })
      );
    }
    if (path === "/v1/load_lora_adapter") {
      if (state.alreadyHeld) {
        state.log.push("load 400 already");
        return Promise.resolve(
          new Response(`The lora adapter '${body.lora_name}' has already been loaded.`, {
            status: 400,
          }),
        );
      }
      const status = state.loadAnswers.shift() ?? 200;
      state.log.push(`load ${status}`);
      if (status === 200) state.held.add(body.lora_name);
      return Promise.resolve(new Response(status === 200 ? "ok" : "busy", { status }));
    }
    if (path === "/v1/unload_lora_adapter") {
      state.log.push(`unload ${body.lora_name}`);
      state.held.delete(body.lora_name);
      return Promise.resolve(new Response("ok"));
    }
    if (!state.held.has(body.model) || state.generate404-- > 0) {
      state.log.push("generate 404");
      return Promise.resolve(
        Response.json({ message: `The model \`${body.model}\` does not exist.` }, { status: 404 }),
      );
    }
    state.log.push("generate ok");
    return Promise.resolve(Response.json(GOOD));
  };
  const client = new RolloutClient(url, {
    engine: "vllm",
    vocabSize: 64,
    model: "m",
    fetch,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  return { client, state };
}

Deno.test("A restarted single server's reload that fails retryably is tried again, not given up", async () => {
  // The reload used to be one request: a 503 (or timeout) right after the restart ended the run
  // with "no rollout server holds adapter", whatever `attempts` said.
  await withTempDir(async (dir) => {
    // The reload's own tries (AdapterSync `attempts`, default 4).
    const one = loggingServer("http://a");
    const sync = new AdapterSync([one.client], { dir, prefix: "s", backoffMs: 1 });
    const { name } = await sync.publish(1, writeStubAdapter);
    const pool = new RolloutPool([one.client], { attempts: 10, backoffMs: 1 });
    one.state.held.clear(); // restarted
    one.state.loadAnswers = [503];
    strictEqual((await pool.generate(stubRequest(name, 1))).length, 1);
    deepStrictEqual(one.state.log, [
      "load 200",
      "generate 404",
      "load 503",
      "load 200",
      "generate ok",
    ]);

    // A reload out of tries (AdapterSync `attempts: 1`): the pool loads it again at its next
    // attempt instead of finding no holder.
    const two = loggingServer("http://b");
    const sync2 = new AdapterSync([two.client], { dir, prefix: "t", attempts: 1, backoffMs: 1 });
    const v1 = (await sync2.publish(1, writeStubAdapter)).name;
    const pool2 = new RolloutPool([two.client], { attempts: 4, backoffMs: 1 });
    two.state.held.clear();
    two.state.loadAnswers = [503, 503];
    strictEqual((await pool2.generate(stubRequest(v1, 1))).length, 1);
    deepStrictEqual(two.state.log, [
      "load 200",
      "generate 404",
      "load 503",
      "load 503",
      "load 200",
      "generate ok",
    ]);
    // Every reload failing: the request ends after the pool's attempts, naming the reload's error.
    two.state.held.clear();
    two.state.loadAnswers = [503, 503, 503, 503];
    await rejects(
      pool2.generate(stubRequest(v1, 1)),
      /down after 4 attempts: .*load_lora_adapter answered HTTP 503/,
    );

    // A reload answered "already loaded" (the server holds the name, so these weights) is a
    // reload, not a refused request.
    const three = loggingServer("http://c");
    const sync3 = new AdapterSync([three.client], { dir, prefix: "u", backoffMs: 1 });
    const u1 = (await sync3.publish(1, writeStubAdapter)).name;
    const pool3 = new RolloutPool([three.client], { attempts: 4, backoffMs: 1 });
    three.state.generate404 = 1;
    three.state.alreadyHeld = true;
    strictEqual((await pool3.generate(stubRequest(u1, 1))).length, 1);
    deepStrictEqual(three.state.log, [
      "load 200",
      "generate 404",
      "load 400 already",
      "generate ok",
    ]);
  });
});

Deno.test("AdapterSync.publish() tries a server again only while no other server loaded the version", async () => {
  // A hung server among healthy ones used to cost every publish `attempts` timeouts.
  await withTempDir(async (dir) => {
    const ok1 = loggingServer("http://a");
    const hung = loggingServer("http://b", 30);
    hung.state.hang = true;
    const sync = new AdapterSync([ok1.client, hung.client], {
      dir,
      prefix: "p",
      attempts: 4,
      backoffMs: 1,
    });
    const result = await sync.publish(1, writeStubAdapter);
    deepStrictEqual(hung.state.log, ["hung /v1/load_lora_adapter"]); // one try, not 4
    deepStrictEqual(ok1.state.log, ["load 200"]);
    strictEqual(result.warnings.length, 1);
    ok(
      /^skipped: .*no answer to POST \/v1\/load_lora_adapter within 30 ms/.test(
        result.warnings[0],
      ),
      result.warnings[0],
    );
    deepStrictEqual(
      [[...ok1.client.servedAdapters!], [...hung.client.servedAdapters!]],
      [["p-v1"], []],
    );
    // With no server loading it, each gets every try.
    const bad = [loggingServer("http://c"), loggingServer("http://d")];
    for (const b of bad) b.state.loadAnswers = [503, 503, 503];
    const sync2 = new AdapterSync(bad.map((b) => b.client), {
      dir,
      prefix: "q",
      attempts: 3,
      backoffMs: 1,
    });
    await rejects(sync2.publish(1, writeStubAdapter), /failed to load on 2 of 2 servers/);
    deepStrictEqual(bad.map((b) => b.state.log.length), [3, 3]);
  });
});

Deno.test("AdapterSync.close() unloads at once over versions with a short timeout", async () => {
  // It used to unload one version after another, each with the full request timeout, so a hung
  // server delayed a failed run's error by versions × timeoutMs.
  await withTempDir(async (dir) => {
    const server = loggingServer("http://a", 200);
    const sync = new AdapterSync([server.client], {
      dir,
      prefix: "c",
      keep: 3,
      closeTimeoutMs: 10,
    });
    for (const v of [1, 2, 3]) await sync.publish(v, writeStubAdapter);
    server.state.hang = true;
    const warnings = await sync.close();
    strictEqual(server.state.maxInFlight, 3); // all three unloads at once
    strictEqual(warnings.length, 3);
    for (const w of warnings) {
      ok(/failed at close; .*no answer to POST \/v1\/unload_lora_adapter within 10 ms/.test(w), w);
    }
  });
});

Deno.test("AdapterSync.close() waits for a publish in progress, then unloads what it loaded", async () => {
  // The version of a publish that was writing when close() ran used to stay loaded.
  await withTempDir(async (dir) => {
    const server = loggingServer("http://a");
    const sync = new AdapterSync([server.client], { dir, prefix: "c", keep: 2 });
    await sync.publish(1, writeStubAdapter);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    let writing!: () => void;
    const started = new Promise<void>((resolve) => writing = resolve);
    const publishing = sync.publish(2, async (to) => {
      writing();
      await gate;
      await writeStubAdapter(to);
    });
    await started;
    const closing = sync.close();
    release();
    strictEqual((await publishing).name, "c-v2");
    deepStrictEqual(await closing, []);
    deepStrictEqual([...server.state.held], []);
    deepStrictEqual(sync.loaded, []);
    await rejects(sync.publish(3, writeStubAdapter), /the AdapterSync is closed/);
  });
});

Deno.test("A restarted server's background reload is not tried again while another server holds the version", async () => {
  // Its retries would only hold up that server's next publish (its loads run in turn).
  await withTempDir(async (dir) => {
    const [a, b] = [loggingServer("http://a"), loggingServer("http://b")];
    const sync = new AdapterSync([a.client, b.client], { dir, prefix: "w", backoffMs: 1 });
    const v1 = (await sync.publish(1, writeStubAdapter)).name;
    const pool = new RolloutPool([a.client, b.client], { attempts: 4, backoffMs: 1 });
    a.state.held.clear(); // restarted
    a.state.loadAnswers = [503];
    strictEqual((await pool.generate(stubRequest(v1, 1))).length, 1); // served by b
    await sync.publish(2, writeStubAdapter); // a's loads run after its reload
    deepStrictEqual(a.state.log, ["load 200", "generate 404", "load 503", "load 200"]);
    deepStrictEqual(b.state.log, ["load 200", "generate ok", "load 200"]);
    deepStrictEqual([...a.client.servedAdapters!], ["w-v2"]);
  });
});

Deno.test("AdapterSync.unloadStale() on SGLang: the listed adapters it accepts, not its own; 'does not exist' is no warning", async () => {
  // SGLang builds that list adapters in /v1/models (with "parent", as vLLM does); an adapter
  // unloaded meanwhile answers 400 "… does not exist" (nothing to warn about); a server whose
  // list cannot be read is a warning.
  const held = new Set(["p-aaaaaa-v1", "p-bbbbbb-v4", "p-cccccc-v2", "q-aaaaaa-v1"]);
  const calls: string[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const url = new URL(String(input));
    if (url.host === "b") return Promise.resolve(new Response("down", { status: 503 }));
    if (url.pathname === "/v1/models") {
      const data = [{ id: "m", parent: null }, ...[...held].map((id) => ({ id, parent: "m" }))];
      return Promise.resolve(Response.json({ object: "list", data }));
    }
    const name = JSON.parse(String(init!.body)).lora_name;
    calls.push(`${url.pathname} ${name}`);
    if (name === "p-cccccc-v2") held.delete(name); // another process unloaded it meanwhile
    if (!held.delete(name)) {
      const error_message = `LoRA with name ${name} does not exist. Loaded LoRAs: …`;
      return Promise.resolve(Response.json({ success: false, error_message }, { status: 400 }));
    }
    return Promise.resolve(Response.json({ success: true, error_message: "" }));
  };
  const [a, b] = ["http://a", "http://b"].map((url) =>
    new RolloutClient(url, { engine: "sglang", vocabSize: 64, model: "m", fetch })
  );
  const sync = new AdapterSync([a, b], { dir: "/unused", prefix: "p-bbbbbb" });
  const found = await sync.unloadStale((name) => name.startsWith("p-"));
  deepStrictEqual(found.unloaded, [{ server: "http://a", name: "p-aaaaaa-v1" }]);
  deepStrictEqual(calls.sort(), [
    "/unload_lora_adapter p-aaaaaa-v1",
    "/unload_lora_adapter p-cccccc-v2",
  ]);
  deepStrictEqual([...held].sort(), ["p-bbbbbb-v4", "q-aaaaaa-v1"]); // its own, another prefix
  strictEqual(found.warnings.length, 1, JSON.stringify(found.warnings));
  ok(
    /^did not unload stale adapters from "http:\/\/b": could not list its adapters: .*HTTP 503/
      .test(found.warnings[0]),
    found.warnings[0],
  );
  deepStrictEqual(found.unchecked, ["http://b"]);
});

Deno.test("AdapterSync.unloadStale(): an adapter listed with parent null is found; an SGLang list with no adapter is a warning; skipped servers are not asked", async () => {
  // Some vLLM builds list LoRA cards with "parent": null (they used to be skipped); SGLang
  // builds before sglang#12229 list only the base model, so stale adapters there could not be
  // found, and nothing said so; a server that failed the preflight was queried anyway.
  const held = new Set(["p-aaaaaa-v1", "q-aaaaaa-v1"]);
  const asked: string[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const url = new URL(String(input));
    asked.push(`${url.host}${url.pathname}`);
    if (url.pathname === "/v1/models") {
      const data = url.host === "old"
        ? [{ id: "m", root: "m" }]
        : [{ id: "m", parent: null }, ...[...held].map((id) => ({ id, parent: null }))];
      return Promise.resolve(Response.json({ object: "list", data }));
    }
    held.delete(JSON.parse(String(init!.body)).lora_name);
    return Promise.resolve(Response.json({ success: true }));
  };
  const [vllm, old, down] = [["http://v", "vllm"], ["http://old", "sglang"], [
    "http://down",
    "vllm",
  ]].map(([url, engine]) =>
    new RolloutClient(url, { engine: engine as "vllm", vocabSize: 64, model: "m", fetch })
  );
  const sync = new AdapterSync([vllm, old, down], { dir: "/unused", prefix: "p-ffffff" });
  const found = await sync.unloadStale((name) => /^p-[0-9a-f]{6}-v\d+$/.test(name), {
    skip: new Map([["http://down", "it failed the preflight at connect"]]),
  });
  deepStrictEqual(found.unloaded, [{ server: "http://v", name: "p-aaaaaa-v1" }]);
  deepStrictEqual([...held], ["q-aaaaaa-v1"]);
  deepStrictEqual(found.unchecked.sort(), ["http://down", "http://old"]);
  deepStrictEqual(asked.sort(), ["old/v1/models", "v/v1/models", "v/v1/unload_lora_adapter"]);
  strictEqual(found.warnings.length, 2, JSON.stringify(found.warnings));
  const [skipped, listsNone] = found.warnings.sort();
  strictEqual(
    skipped,
    'did not unload stale adapters from "http://down": it failed the preflight at connect',
  );
  ok(
    /^did not unload stale adapters from "http:\/\/old": its \/v1\/models lists no LoRA adapters: SGLang builds before sglang#12229 do not list them.*restart it or raise --max-loaded-loras$/
      .test(listsNone),
    listsNone,
  );
});
