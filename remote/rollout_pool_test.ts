import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
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
      timeoutPerTokenMs: 0,
    })
  );
  const pool = new RolloutPool(list, { backoffMs: 1 });
  const choices = await pool.generate(REQUEST);
  deepStrictEqual(choices[0].tokenIds, [7]);
  deepStrictEqual(calls, ["a", "b"]);
  ok(/no answer to POST \/v1\/completions within 30 ms/.test(pool.states()[0].lastError!));
  strictEqual(pool.states()[0].up, false);
});

Deno.test("RolloutPool.generate() retries a lone server after a transient failure (downMs > backoff)", async () => {
  // The review's case: one server, attempts 4, downMs 10 s ≫ the backoffs: a single 503 used to
  // end the request with "all servers down".
  let completions = 0;
  const { list } = clients({
    a: () => (++completions === 1
      ? new Response("overloaded", { status: 503 })
      : Response.json(GOOD)),
  });
  const pool = new RolloutPool(list, { attempts: 4, backoffMs: 1, downMs: 10_000 });
  const choices = await pool.generate(REQUEST);
  deepStrictEqual(choices[0].tokenIds, [7]);
  strictEqual(completions, 2);
  deepStrictEqual(pool.states().map((s) => [s.failures, s.requests]), [[1, 1]]);
});

Deno.test("RolloutPool.generate() survives a burst that takes every server down once", async () => {
  const failed = new Set<string>();
  const once = (name: string) => () => {
    if (failed.has(name)) return Response.json(GOOD);
    failed.add(name);
    return new TypeError("connection reset");
  };
  const { list, calls } = clients({ a: once("a"), b: once("b") });
  const pool = new RolloutPool(list, { attempts: 3, backoffMs: 1, downMs: 60_000 });
  const choices = await pool.generate(REQUEST);
  deepStrictEqual(choices[0].tokenIds, [7]);
  strictEqual(calls.length, 3); // a, b fail; the one that comes back first answers
  // With every server failing for good, the attempts run out and the error names each one.
  const { list: dead } = clients({
    a: () => new TypeError("refused a"),
    b: () => new TypeError("refused b"),
  });
  const down = new RolloutPool(dead, { attempts: 3, backoffMs: 1, downMs: 60_000 });
  await rejects(down.generate(REQUEST), (e: unknown) => {
    ok(e instanceof RemoteEngineError && !e.retryable);
    ok(e.message.includes("all 2 rollout servers are down after 3 attempts"), e.message);
    ok(e.message.includes("refused a") && e.message.includes("refused b"), e.message);
    return true;
  });
});

/** vLLM-like answers of server `name` with a models route reporting `maxModelLen`. */
function vllmLike(log: string[], ready: () => boolean, maxModelLen: number) {
  return (name: string): typeof fetch => async (input, init) => {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname;
    log.push(`${name} ${path}`);
    if (!ready()) throw new TypeError("connection refused");
    if (path === "/v1/models") {
      return Response.json({ data: [{ id: "base", max_model_len: maxModelLen }] });
    }
    const body = await request.json();
    return Response.json({
      choices: Array.from({ length: body.n }, (_, i) => ({ ...GOOD.choices[0], index: i })),
    });
  };
}

/**
 * Connects a pool (no "model": each server's comes from its preflight) to vLLM-like servers "a"
 * (up, 4096 tokens) and "b" (up while `bReady()`, `bMaxModelLen` tokens), logging to `log`, with
 * the clock `now` and a down time of 1000.
 */
function connectAB(
  log: string[],
  bReady: () => boolean,
  bMaxModelLen: number,
  now: () => number,
): Promise<RolloutPool> {
  const a = vllmLike(log, () => true, 4096)("a");
  const b = vllmLike(log, bReady, bMaxModelLen)("b");
  const fetch: typeof globalThis.fetch = (input, init) =>
    new URL(String(input instanceof Request ? input.url : input)).hostname === "a"
      ? a(input, init)
      : b(input, init);
  return RolloutPool.connect(["http://a", "http://b"], {
    engine: "vllm",
    vocabSize: 64,
    fetch,
    backoffMs: 1,
    downMs: 1000,
    now,
  });
}

Deno.test("RolloutPool: a server that failed the preflight at connect is preflighted before its first request", async () => {
  const log: string[] = [];
  let bReady = false;
  let clock = 0;
  // No "model" (rl.rollout.model: ""): a request sent to b without its preflight used to fail
  // with "no model: pass "model" or run preflight()". b's context is 8 tokens.
  const pool = await connectAB(log, () => bReady, 8, () => clock);
  deepStrictEqual(pool.states().map((s) => s.up), [true, false]);
  bReady = true;
  clock = 1000; // b's down time is over
  log.length = 0;
  const out = await Promise.all([0, 1, 2, 3].map(() => pool.generate(REQUEST)));
  strictEqual(out.length, 4);
  const bLog = log.filter((l) => l.startsWith("b "));
  strictEqual(bLog[0], "b /v1/models", JSON.stringify(log)); // preflight first, once
  strictEqual(bLog.filter((l) => l === "b /v1/models").length, 1, JSON.stringify(log));
  ok(bLog.includes("b /v1/completions"), JSON.stringify(log));
  strictEqual(pool.preflights().get("http://b")?.maxModelLen, 8);
  // b's context-length check now applies: a request that does not fit goes to a.
  log.length = 0;
  await pool.generate({ ...REQUEST, maxTokens: 20 }).catch(() => {});
  ok(!log.includes("b /v1/completions"), JSON.stringify(log));
});

Deno.test("RolloutPool: a server still failing its preflight gets no request", async () => {
  const log: string[] = [];
  let clock = 0;
  const pool = await connectAB(log, () => false, 4096, () => clock);
  clock = 1000;
  for (let i = 0; i < 4; i++) await pool.generate(REQUEST);
  ok(!log.includes("b /v1/completions"), JSON.stringify(log));
  deepStrictEqual(pool.states().map((s) => s.requests), [4, 0]);
});

Deno.test("RolloutPool caps the sequences in flight per server (maxSeqsInFlight)", async () => {
  let inFlight = 0;
  let peak = 0;
  const fetch: typeof globalThis.fetch = async (_input, init) => {
    const body = JSON.parse(String(init!.body));
    inFlight += body.n;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight -= body.n;
    return Response.json({
      choices: Array.from({ length: body.n }, (_, i) => ({ ...GOOD.choices[0], index: i })),
    });
  };
  const client = new RolloutClient("http://a", {
    engine: "vllm",
    vocabSize: 64,
    model: "m",
    fetch,
  });
  const pool = new RolloutPool([client], { maxSeqsInFlight: 4 });
  const out = await Promise.all(
    Array.from({ length: 7 }, (_, p) => pool.generate({ ...REQUEST, n: 2, seed: p })),
  );
  strictEqual(out.flat().length, 14);
  strictEqual(peak, 4);
});

Deno.test("RolloutPool splits a request larger than maxSeqsInFlight into chunks, in order, seeds kept", async () => {
  // A request of more than the cap used to wait for an idle server and then go alone (past the
  // cap), so servers kept busy by smaller requests could hold it back for ever.
  const inFlight = new Map<string, number>();
  const peak = new Map<string, number>();
  const sent: string[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const name = new URL(String(input)).hostname;
    const body = JSON.parse(String(init!.body));
    sent.push(`${name} n=${body.n} seed=${body.seed}`);
    inFlight.set(name, (inFlight.get(name) ?? 0) + body.n);
    peak.set(name, Math.max(peak.get(name) ?? 0, inFlight.get(name)!));
    await new Promise((r) => setTimeout(r, 5));
    inFlight.set(name, inFlight.get(name)! - body.n);
    // Sample i of a vLLM request seeded s is seeded s + i: answer that seed as the token.
    return Response.json({
      choices: Array.from({ length: body.n }, (_, i) => ({
        ...GOOD.choices[0],
        index: i,
        token_ids: [body.seed + i],
        logprobs: { token_logprobs: [-0.5], tokens: [`token_id:${body.seed + i}`] },
      })),
    });
  };
  const list = ["a", "b"].map((name) =>
    new RolloutClient(`http://${name}`, { engine: "vllm", vocabSize: 64, model: "m", fetch })
  );
  const pool = new RolloutPool(list, { maxSeqsInFlight: 4 });
  const [big, small] = await Promise.all([
    pool.generate({ ...REQUEST, n: 10, seed: 20 }),
    pool.generate({ ...REQUEST, n: 3, seed: 50 }),
  ]);
  deepStrictEqual(big.map((c) => c.tokenIds[0]), Array.from({ length: 10 }, (_, i) => 20 + i));
  deepStrictEqual(small.map((c) => c.tokenIds[0]), [50, 51, 52]);
  ok([...peak.values()].every((p) => p <= 4), JSON.stringify([...peak]));
  deepStrictEqual(sent.filter((l) => l.includes("seed=2")).map((l) => l.slice(2)).sort(), [
    "n=3 seed=24",
    "n=3 seed=27",
    "n=4 seed=20",
  ]);
  ok(sent.some((l) => l.startsWith("a ")) && sent.some((l) => l.startsWith("b ")), String(sent));
  throws(() => new RolloutPool(list, { maxSeqsInFlight: 0 }), /maxSeqsInFlight must be an integer/);
});

/** Choices of a vLLM completion of `n` samples (token 7). */
function answer(n: number): Response {
  return Response.json({
    choices: Array.from({ length: n }, (_, i) => ({ ...GOOD.choices[0], index: i })),
  });
}

Deno.test("RolloutPool: a failed chunk fails its request at once and aborts the other chunks", async () => {
  // n = 8, cap 2, three servers: chunks seeded 0, 2, 4, 6. Chunk 0 (on a) is refused (HTTP 400)
  // after 10 ms; chunk 2 (on b) gets a 503 at once and backs off (1.5 s); chunk 4 (on c) hangs
  // until aborted (or answers after 1.5 s); chunk 6 waits for room. The request used to wait
  // for chunks 2, 4 and 6 before it failed.
  const log: string[] = [];
  let refuse = true;
  const fetch: typeof globalThis.fetch = (input, init) => {
    const name = new URL(String(input)).hostname;
    const { n, seed } = JSON.parse(String(init!.body));
    log.push(`${name} seed=${seed} sent`);
    const signal = init!.signal!;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        log.push(`${name} seed=${seed} aborted`);
        reject(signal.reason);
      };
      const end = (what: string, response: Response) => {
        signal.removeEventListener("abort", onAbort);
        log.push(`${name} seed=${seed} ${what}`);
        resolve(response);
      };
      if (!refuse) return end("answered", answer(n));
      if (seed === 2 && log.filter((l) => l.includes("seed=2 sent")).length === 1) {
        return end("503", new Response("busy", { status: 503 }));
      }
      signal.addEventListener("abort", onAbort, { once: true });
      const timer = seed === 0
        ? setTimeout(() => end("400", new Response("bad", { status: 400 })), 10)
        : setTimeout(() => end("answered", answer(n)), 1500);
    });
  };
  const list = ["a", "b", "c"].map((name) =>
    new RolloutClient(`http://${name}`, { engine: "vllm", vocabSize: 64, model: "m", fetch })
  );
  const pool = new RolloutPool(list, { maxSeqsInFlight: 2, backoffMs: 1500, downMs: 60_000 });
  await rejects(pool.generate({ ...REQUEST, n: 8 }), (e: unknown) => {
    ok(
      e instanceof RemoteEngineError && !e.retryable && /HTTP 400: bad/.test(e.message),
      String(e),
    );
    return true;
  });
  // Nothing answered after the refusal: chunk 2 did not retry, chunk 4 was aborted in flight,
  // and chunk 6 stopped waiting for room (or, sent, was aborted).
  ok(!log.some((l) => l.endsWith("answered")), JSON.stringify(log));
  strictEqual(log.filter((l) => l.includes("seed=2 sent")).length, 1, JSON.stringify(log));
  deepStrictEqual(log.filter((l) => l.includes("seed=4")), ["c seed=4 sent", "c seed=4 aborted"]);
  deepStrictEqual(
    log.filter((l) => l.includes("seed=6")).map((l) => l.slice(2)),
    log.some((l) => l.includes("seed=6 sent")) ? ["seed=6 sent", "seed=6 aborted"] : [],
  );
  // The abort marks no server down: only b's 503 counts.
  for (let i = 0; i < 100 && pool.states().some((s) => s.outstanding > 0); i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  deepStrictEqual(pool.states().map((s) => [s.outstanding, s.up, s.failures]), [
    [0, true, 0],
    [0, false, 1],
    [0, true, 0],
  ]);
  // The aborted chunks released their sequences: a and c each take a request of the whole cap.
  refuse = false;
  log.length = 0;
  const out = await Promise.all([1, 3].map((seed) => pool.generate({ ...REQUEST, n: 2, seed })));
  deepStrictEqual(out.map((c) => c.length), [2, 2]);
  deepStrictEqual(log.filter((l) => l.endsWith("sent")).map((l) => l[0]).sort(), ["a", "c"]);
});

Deno.test("RolloutPool: a failed chunk does not wait for a sibling whose fetch ignores the abort", async () => {
  const log: string[] = [];
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const safety = setTimeout(finish, 1000); // the request used to wait for chunk 4: let it end
  // Ignores init.signal: seeds 4 and 10 answer only when the test lets them.
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const name = new URL(String(input)).hostname;
    const { n, seed } = JSON.parse(String(init!.body));
    log.push(`${name} seed=${seed} sent`);
    if (seed === 0) return new Response("bad", { status: 400 });
    if (seed === 4 || seed === 10) await finished;
    log.push(`${name} seed=${seed} answered`);
    return answer(n);
  };
  const list = ["a", "b"].map((name) =>
    new RolloutClient(`http://${name}`, { engine: "vllm", vocabSize: 64, model: "m", fetch })
  );
  const pool = new RolloutPool(list, { maxSeqsInFlight: 4 });
  // n = 8, cap 4: chunk 0 on a (refused), chunk 4 on b (answers only when let).
  await rejects(pool.generate({ ...REQUEST, n: 8 }), /HTTP 400: bad/);
  deepStrictEqual(log, ["a seed=0 sent", "b seed=4 sent"]);
  // Chunk 4 is still in flight on b, so its 4 sequences still count: of two requests of 4, one
  // goes to a and the other waits (a and b are full).
  deepStrictEqual(pool.states().map((s) => s.outstanding), [0, 1]);
  const next = [10, 20].map((seed) => pool.generate({ ...REQUEST, n: 4, seed }));
  await new Promise((r) => setTimeout(r, 5));
  deepStrictEqual(log.slice(2), ["a seed=10 sent"]);
  clearTimeout(safety);
  finish(); // chunk 4's answer is dropped (no unhandled rejection); the waiting request goes
  deepStrictEqual((await Promise.all(next)).map((c) => c.length), [4, 4]);
  deepStrictEqual(log.slice(3, 5).sort(), ["a seed=10 answered", "b seed=4 answered"]);
  ok(log.slice(5).some((l) => l.endsWith("seed=20 sent")), String(log));
});

/**
 * SGLang-like servers on one `fetch`: `/generate` answers every sample with token 7, or HTTP 400
 * with the message `refuse(server, lora_path)` when that is not `null`.
 */
function sglangLike(
  names: readonly string[],
  refuse: (name: string, adapter: string) => string | null,
  calls: string[],
) {
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const name = new URL(request.url).hostname;
    const body = await request.json();
    calls.push(name);
    const message = refuse(name, body.lora_path[0]);
    if (message !== null) return Response.json({ error: { message } }, { status: 400 });
    return Response.json(
      (body.input_ids as unknown[]).map(() => ({
        output_ids: [7],
        meta_info: {
          output_token_logprobs: [[-0.5, 7, null]],
          finish_reason: { type: "length", length: 1 },
        },
      })),
    );
  };
  return names.map((name) =>
    new RolloutClient(`http://${name}`, { engine: "sglang", vocabSize: 64, model: "m", fetch })
  );
}

Deno.test("RolloutPool: SGLang's HTTP 400 'requested LoRA adapters are not loaded' is a lost adapter", async () => {
  // SGLang answers a restarted server's lost adapter with HTTP 400 (http_server.py's
  // _create_error_response of its LoRA registry's ValueError), not vLLM's 404: the pool used to
  // take it for a refused request and end the run, even with healthy servers beside it.
  const request = { ...REQUEST, n: 2, adapter: "halo-v3" };
  for (const names of [["a"], ["a", "b"]]) {
    const lost = new Set(["a"]);
    const calls: string[] = [];
    const list = sglangLike(
      names,
      (name, adapter) =>
        lost.has(name)
          ? `The following requested LoRA adapters are not loaded: ${adapter}\n` +
            `Loaded adapters: odict_keys([]).`
          : null,
      calls,
    );
    const restores: string[] = [];
    for (const c of list) {
      c.servedAdapters = new Set(["halo-v3"]);
      c.restoreAdapter = (name) => {
        restores.push(`${c.url} ${name}`);
        lost.delete(new URL(c.url).hostname);
        c.servedAdapters!.add(name);
        return Promise.resolve();
      };
    }
    const pool = new RolloutPool(list, { backoffMs: 1 });
    for (let k = 0; k < 4; k++) {
      const choices = await pool.generate(request);
      deepStrictEqual(choices.map((c) => c.tokenIds), [[7], [7]]);
    }
    deepStrictEqual(restores, ["http://a halo-v3"], names.join());
    // The lost adapter's request is served after the reload (one server) or by the other one.
    deepStrictEqual(calls.slice(0, 2), ["a", names.length === 1 ? "a" : "b"]);
    ok(list.every((c) => c.servedAdapters!.has("halo-v3")));
  }
  // Any other HTTP 400 (a request SGLang refuses) still fails the request at once.
  const calls: string[] = [];
  const refused = sglangLike(["a", "b"], (_, a) => `LoRA adapter ${a} has rank 64 > 32`, calls);
  for (const c of refused) c.servedAdapters = new Set(["halo-v3"]);
  await rejects(
    new RolloutPool(refused, { backoffMs: 1 }).generate(request),
    (e: unknown) => e instanceof RemoteEngineError && e.status === 400 && !e.retryable,
  );
  deepStrictEqual(calls, ["a"]);
});
