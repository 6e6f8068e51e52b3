import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { RolloutClient } from "./rollout_client.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { RemoteEngineError, type RolloutRequest } from "./types.ts";

const REQUEST: RolloutRequest = {
  promptIds: [1, 2],
  n: 1,
  maxTokens: 1,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: 0,
  stopTokenIds: [],
  eosTokenIds: [54],
  adapter: null,
  policyVersion: 0,
};

const GOOD = {
  choices: [{
    index: 0,
    logprobs: { token_logprobs: [-0.5], tokens: ["token_id:7"] },
    finish_reason: "length",
    token_ids: [7],
  }],
};

/** Clients whose fetch answers per server from `behaviour(name)`, recording the calls. */
function clients(behaviour: Record<string, () => Response | Error>) {
  const calls: string[] = [];
  const fetch: typeof globalThis.fetch = (input) => {
    const name = new URL(String(input)).hostname;
    calls.push(name);
    const out = behaviour[name]();
    return out instanceof Error ? Promise.reject(out) : Promise.resolve(out);
  };
  const list = Object.keys(behaviour).map((name) =>
    new RolloutClient(`http://${name}`, { engine: "vllm", vocabSize: 64, model: "m", fetch })
  );
  return { list, calls };
}

Deno.test("RolloutPool.generate() skips a failed server for downMs, then tries it again", async () => {
  let aFails = true;
  const { list, calls } = clients({
    a: () => (aFails ? new TypeError("connection refused") : Response.json(GOOD)),
    b: () => Response.json(GOOD),
  });
  let clock = 0;
  const pool = new RolloutPool(list, { backoffMs: 1, downMs: 1000, now: () => clock });
  await pool.generate(REQUEST); // a fails, b answers
  deepStrictEqual(calls, ["a", "b"]);
  deepStrictEqual(pool.states().map((s) => [s.up, s.failures, s.requests]), [
    [false, 1, 0],
    [true, 0, 1],
  ]);
  ok(/Server "http:\/\/a": POST \/v1\/completions failed: connection refused/.test(
    pool.states()[0].lastError!,
  ));
  await pool.generate(REQUEST);
  deepStrictEqual(calls.slice(2), ["b"]);
  aFails = false;
  clock = 1000;
  await pool.generate(REQUEST); // a is back: b is next in turn, a after; both idle
  await pool.generate(REQUEST);
  ok(calls.slice(3).includes("a"), JSON.stringify(calls));
  strictEqual(pool.states()[0].up, true);
});

Deno.test("RolloutPool.generate() does not retry a request the server refuses (HTTP 4xx)", async () => {
  const { list, calls } = clients({
    a: () => new Response('{"message":"The model `halo-v9` does not exist."}', { status: 404 }),
    b: () => Response.json(GOOD),
  });
  const pool = new RolloutPool(list, { backoffMs: 1 });
  await rejects(pool.generate({ ...REQUEST, adapter: "halo-v9" }), (e: unknown) => {
    ok(e instanceof RemoteEngineError && !e.retryable);
    ok(
      e.message.startsWith('Server "http://a": POST /v1/completions answered HTTP 404'),
      e.message,
    );
    return true;
  });
  deepStrictEqual(calls, ["a"]);
});

Deno.test("RolloutPool.generate() stops after `attempts` tries with the last error", async () => {
  let k = 0;
  const { list } = clients({
    a: () => new Response(`busy ${k++}`, { status: 503 }),
    b: () => new Response(`busy ${k++}`, { status: 503 }),
  });
  let clock = 0;
  const pool = new RolloutPool(list, { attempts: 3, backoffMs: 1, downMs: 0, now: () => clock++ });
  await rejects(pool.generate(REQUEST), (e: unknown) => {
    ok(e instanceof RemoteEngineError);
    ok(e.message.includes("failed 3 times; last: Server"), e.message);
    ok(e.message.includes("HTTP 503: busy 2"), e.message);
    return true;
  });
});

Deno.test("RolloutPool.generate() moves a request from a server that does not answer in time", async () => {
  const calls: string[] = [];
  const fetch: typeof globalThis.fetch = (input, init) => {
    const name = new URL(String(input)).hostname;
    calls.push(name);
    if (name === "b") return Promise.resolve(Response.json(GOOD));
    // a hangs until the client's timeout aborts the request
    return new Promise((_, reject) => {
      const signal = init!.signal!;
      signal.addEventListener("abort", () => reject(signal.reason));
    });
  };
  const list = ["a", "b"].map((name) =>
    new RolloutClient(`http://${name}`, {
      engine: "vllm",
      vocabSize: 64,
      model: "m",
      fetch,
      timeoutMs: 30,
    })
  );
  const pool = new RolloutPool(list, { backoffMs: 1 });
  const choices = await pool.generate(REQUEST);
  deepStrictEqual(choices[0].tokenIds, [7]);
  deepStrictEqual(calls, ["a", "b"]);
  ok(/no answer to POST \/v1\/completions within 30 ms/.test(pool.states()[0].lastError!));
  strictEqual(pool.states()[0].up, false);
});
