// AdapterSync against two fake vLLM servers whose load route loads the PEFT directory into
// halo's CPU model (models/arithmetic-tiny): versions are published under new names, old ones
// unloaded, and a served version samples exactly what the base model with that adapter samples.
// Tolerance: served log-probs (float32) vs halo's float64 scoring of the adapted model ≤ 1e-5.
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../model/load_model.ts";
import { generate } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import { createLora } from "../adapters/lora.ts";
import { loraConfig } from "../adapters/lora_config.ts";
import { savePeftAdapter } from "../adapters/peft_io.ts";
import { AdapterSync } from "./adapter_sync.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { RemoteEngineError, type RolloutRequest } from "./types.ts";
import { serveFakes } from "./test_utils.ts";

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
        ok(/no up rollout server holds adapter "halo-v1": they hold/.test(e.message), e.message);
        return true;
      });
      for (const c of pool.clients) {
        await rejects(c.generate({ ...request, adapter: "halo-v1" }), /HTTP 404/);
      }
      // A version the servers cannot load fails naming them, and the previous one stays current.
      await rejects(
        sync.publish(4, (to) => Deno.writeTextFile(join(to, "adapter_config.json"), "{}")),
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
