import { deepStrictEqual, notStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { RolloutClient } from "./rollout_client.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { remoteSampleGroups } from "./remote_sample_groups.ts";
import type { SampleGroupsOptions } from "../trainer/rl/rollout.ts";
import type { TrainBackend } from "../trainer/backend.ts";
import { RemoteEngineError, type RolloutRequest } from "./types.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
import { nextLogitsOf, serveFakes } from "./test_utils.ts";
import { loadModel } from "../model/load_model.ts";
import { generate } from "../model/generate.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";

const URL_A = "http://engine-a.test:8000";

const REQUEST: RolloutRequest = {
  promptIds: [1, 2],
  n: 2,
  maxTokens: 2,
  temperature: 1,
  topP: 1,
  topK: 0,
  seed: 11,
  stopTokenIds: [],
  eosTokenIds: [54],
  adapter: null,
  policyVersion: 4,
};

function vllmChoice(index: number, ids: number[], finish: string) {
  return {
    index,
    text: "",
    logprobs: {
      text_offset: ids.map(() => 0),
      token_logprobs: ids.map(() => -0.5),
      tokens: ids.map((id) => `token_id:${id}`),
      top_logprobs: null,
    },
    finish_reason: finish,
    stop_reason: null,
    token_ids: ids,
  };
}

/** A fetch that answers each POST with the next scripted body and records the requests. */
function scripted(bodies: (object | Response | Error)[]) {
  const sent: Record<string, unknown>[] = [];
  const fetch: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    sent.push(await request.json());
    const next = bodies.shift();
    if (next === undefined) throw new Error("no more scripted responses");
    if (next instanceof Error) throw next;
    if (next instanceof Response) return next;
    return Response.json(next);
  };
  return { fetch, sent };
}

Deno.test("RolloutClient.generate() re-requests a bad choice with a fresh seed", async () => {
  const { fetch, sent } = scripted([
    { choices: [vllmChoice(0, [5, 54], "stop"), vllmChoice(1, [5, 99], "length")] },
    { choices: [vllmChoice(0, [6, 7], "length")] },
  ]);
  const client = new RolloutClient(URL_A, { engine: "vllm", vocabSize: 64, model: "m", fetch });
  const choices = await client.generate(REQUEST);
  deepStrictEqual(choices.map((c) => [c.tokenIds, c.finish, c.policyVersion]), [
    [[5, 54], "eos", 4],
    [[6, 7], "length", 4],
  ]);
  strictEqual(sent.length, 2);
  strictEqual(sent[0].n, 2);
  strictEqual(sent[0].seed, 11);
  strictEqual(sent[1].n, 1);
  notStrictEqual(sent[1].seed, 11);
  strictEqual(client.outstanding, 0);
});

Deno.test("RolloutClient.generate() gives up on choices that stay bad, naming server and fault", async () => {
  const bad = { choices: [vllmChoice(0, [5, 6], "stop"), vllmChoice(1, [5, 6], "stop")] };
  const { fetch, sent } = scripted([bad, bad, bad]);
  const client = new RolloutClient(URL_A, {
    engine: "vllm",
    vocabSize: 64,
    model: "m",
    fetch,
    choiceRetries: 2,
  });
  const error = await rejects(client.generate(REQUEST), (e: unknown) => {
    ok(e instanceof RemoteEngineError);
    ok(e.retryable);
    ok(e.message.startsWith(`Server "${URL_A}": 2 of 2 choices were still bad after 3`), e.message);
    ok(/to end on an EOS or stop id \(54\): the last token is 6/.test(e.message), e.message);
    return true;
  });
  strictEqual(error, undefined);
  strictEqual(sent.length, 3);
});

Deno.test("RolloutClient.request() classifies HTTP, network and timeout failures", async () => {
  const cases: [object | Response | Error, boolean, RegExp][] = [
    [
      new Response('{"message":"The model `x` does not exist."}', { status: 404 }),
      false,
      /HTTP 404/,
    ],
    [new Response("overloaded", { status: 503 }), true, /HTTP 503: overloaded/],
    [new TypeError("error sending request: connection refused"), true, /connection refused/],
    [new Response("<html>", { status: 200 }), true, /expected a JSON body/],
  ];
  for (const [answer, retryable, pattern] of cases) {
    const { fetch } = scripted([answer]);
    const client = new RolloutClient(URL_A, { engine: "vllm", vocabSize: 64, model: "m", fetch });
    await rejects(client.generate(REQUEST), (e: unknown) => {
      ok(e instanceof RemoteEngineError, String(e));
      strictEqual(e.retryable, retryable, e.message);
      ok(e.message.includes(URL_A) && pattern.test(e.message), e.message);
      return true;
    });
  }
  const hang: typeof fetch = (_input, init) =>
    new Promise((_, reject) =>
      init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason))
    );
  const slow = new RolloutClient(URL_A, {
    engine: "vllm",
    vocabSize: 64,
    model: "m",
    fetch: hang,
    timeoutMs: 50,
    timeoutPerTokenMs: 5,
  });
  // A completion's timeout grows with the tokens it may generate: 50 + 5 · maxTokens ms.
  const within = 50 + 5 * REQUEST.maxTokens;
  await rejects(
    slow.generate(REQUEST),
    new RegExp(`no answer to POST /v1/completions within ${within} ms`),
  );
  await rejects(slow.request("/v1/models", null), /no answer to GET \/v1\/models within 50 ms/);
  await rejects(
    slow.generate({ ...REQUEST, temperature: 0, n: 0 }),
    /n must be an integer ≥ 1: got 0; temperature must be > 0: got 0/,
  );
});

Deno.test({
  name: "RolloutClient.preflight() reads the models route and tells raw from processed log-probs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const model = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
    const files = arithmeticTokenizerFiles();
    const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
    const probe = promptIds(tokenizer, "What is 3 + 4?", { template: "task" });
    const fakes = await serveFakes(
      (["raw_logprobs", "processed_logprobs"] as const).map((logprobsMode) =>
        fakeVllmHandler({
          generate: (o) => generate(model, o),
          model: "arith",
          maxModelLen: 128,
          logprobsMode,
          nextLogits: nextLogitsOf(model),
        })
      ),
    );
    try {
      const found = [];
      for (const server of fakes.servers) {
        const client = new RolloutClient(server.url, {
          engine: "vllm",
          vocabSize: 64,
          fetch: fakes.fetch,
        });
        found.push(await client.preflight({ probePromptIds: probe, eosTokenIds: [54] }));
        // The context length is enforced before sending.
        await rejects(
          client.generate({ ...REQUEST, promptIds: probe, maxTokens: 128 }),
          /must fit the server's max length 128/,
        );
      }
      deepStrictEqual(found.map((f) => [f.models, f.model, f.maxModelLen, f.logprobs]), [
        [["arith"], "arith", 128, "raw"],
        [["arith"], "arith", 128, "processed"],
      ]);
      const wrong = new RolloutClient(fakes.servers[0].url, {
        engine: "vllm",
        vocabSize: 64,
        model: "Qwen/Qwen3-1.7B",
        fetch: fakes.fetch,
      });
      await rejects(wrong.preflight(), /expected model "Qwen\/Qwen3-1.7B" .* serves \["arith"\]/);
    } finally {
      await fakes.closeAll();
      model.dispose();
    }
  },
});

/**
 * A vLLM fake over a categorical next-token distribution: `logits(call)` gives the logits of
 * completion request number `call` (1, 2, …), so each request can carry its own noise, as a raw
 * server's cold and prefix-cache-hit computations do. Sampling follows vLLM's modes: raw
 * log-probs are log_softmax(z), processed ones log_softmax(z / T).
 */
function categorical(
  mode: "raw_logprobs" | "processed_logprobs" | "raw_logits" | "processed_logits",
  logits: (call: number) => number[],
  top = true,
) {
  let call = 0;
  const logSoftmax = (z: number[]) => {
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    return z.map((x) => x - lse);
  };
  return fakeVllmHandler({
    model: "base",
    maxModelLen: 64,
    logprobsMode: mode,
    nextLogits: top ? () => Promise.resolve(logits(call)) : undefined,
    generate: (o) => {
      const z = logits(++call);
      const raw = logSoftmax(z);
      const tempered = logSoftmax(z.map((x) => x / o.temperature!));
      const sequences = o.prompts.map((p, k) => {
        let u = ((o.seed! + k) * 0.6180339887) % 1;
        let id = 0;
        for (; id < z.length - 1 && u > Math.exp(tempered[id]); id++) u -= Math.exp(tempered[id]);
        return {
          tokens: [id],
          logprobs: Float32Array.of(tempered[id]),
          modelLogprobs: Float32Array.of(raw[id]),
          stopReason: "length" as const,
          length: 1,
          promptLength: p.length,
        };
      });
      return Promise.resolve(
        {
          sequences,
          stats: { readbacks: 0 },
        } as unknown as import("../model/generate.ts").GenerateResult,
      );
    },
  });
}

Deno.test("RolloutClient.preflight(): the probe stands cross-request noise and near-certain tokens", async () => {
  // The old probe compared one drawn token's log-prob at temperatures 1 and 0.5 within 1e-5:
  // ±0.05 nat of noise between the two requests (a raw vLLM's prefix-cache hit) made a raw
  // server "processed", and a near-certain token (p = 1 − 1e-6) made a processed server "raw".
  // Top-20 gap 1.1 nat (the probe reads the 20 most likely): close to the 1 nat floor.
  const base = [...Array.from({ length: 20 }, (_, i) => 1.2 - 1.1 * i / 19), -3, -4, -5, -6];
  // The worst noise for a raw server: the gap grows by 0.1 nat at T = 1 and shrinks at T = 0.5.
  const noisy = (call: number) =>
    base.map((z, i) => z + (i === 0 ? 0.05 : i === 19 ? -0.05 : 0) * (call === 1 ? 1 : -1));
  const certain = () => base.map((_, i) => (i === 0 ? 14 : 0));
  const flat = () => base.map((_, i) => 0.3 - 0.01 * i);
  const fakes = await serveFakes([
    categorical("raw_logprobs", noisy),
    categorical("processed_logprobs", certain),
    categorical("processed_logprobs", noisy),
    categorical("raw_logprobs", flat),
    categorical("raw_logprobs", noisy, false),
  ]);
  try {
    const found = [];
    for (const server of fakes.servers) {
      const client = new RolloutClient(server.url, {
        engine: "vllm",
        vocabSize: base.length,
        fetch: fakes.fetch,
      });
      found.push(await client.preflight({ probePromptIds: [1, 2], eosTokenIds: [] }));
    }
    deepStrictEqual(
      found.map((f) => f.logprobs),
      ["raw", "processed", "processed", "unknown", "unknown"],
    );
    ok(/ratio 0\.8\d\d; raw 1, processed 2/.test(found[0].probe!), found[0].probe);
    ok(/14\.000 nat at temperature 1, 28\.000 at 0\.5/.test(found[1].probe!), found[1].probe);
    ok(/under 1 nat, too small to tell/.test(found[3].probe!), found[3].probe);
    // Without top log-probs the probe cannot tell, and says why.
    ok(/top log-probs could not be read: expected .*top_logprobs\[0\]/.test(found[4].probe!));
    // A probe that could not tell refuses rollouts at T ≠ 1 (raw log-probs would bias every
    // ratio), and lets them through at T = 1, where raw and processed agree.
    const pool = await RolloutPool.connect([fakes.servers[3].url], {
      engine: "vllm",
      vocabSize: base.length,
      fetch: fakes.fetch,
      probePromptIds: [1, 2],
    });
    const sampling = {
      groupSize: 2,
      maxNewTokens: 1,
      temperature: 0.7,
      seed: 1,
      firstGroup: 0,
      tokenizer: { decode: () => "", tokenOffsets: () => [[0, 0]] },
    } as unknown as SampleGroupsOptions;
    const backend = { model: { config: { eosTokenIds: [] } } } as unknown as TrainBackend;
    const sample = remoteSampleGroups(pool, { onWarning: () => {} });
    await rejects(
      sample(backend, [[1, 2]], sampling),
      /"http.*": its preflight probe could not tell raw from processed log-probs \(.*under 1 nat.*temperature 0\.7/,
    );
    strictEqual(
      (await sample(backend, [[1, 2]], { ...sampling, temperature: 1 })).groups.length,
      1,
    );
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("RolloutClient.preflight() refuses a server that returns logits (vLLM --logprobs-mode *_logits)", async () => {
  // Logits in place of log-probs used to pass the gap probe (raw_logits keeps the gap: "raw";
  // processed_logits doubles it: "processed"), and the sampled tokens' logits became π_old.
  const base = [...Array.from({ length: 20 }, (_, i) => 1.2 - 1.1 * i / 19), -3, -4, -5, -6];
  // Every logit below zero (top -1.8): no single value is positive, but the top 20's
  // probabilities sum to e^0.64 ≈ 1.9.
  const negative = () => base.map((z) => z - 3);
  // A log-prob of a near-certain token (p = 1 − 2e-5) sits next to 0: not taken for a logit.
  const certain = () => base.map((_, i) => (i === 0 ? 14 : 0));
  const fakes = await serveFakes([
    categorical("raw_logits", () => base),
    categorical("processed_logits", negative),
    categorical("raw_logprobs", certain),
  ]);
  try {
    const preflight = (url: string) =>
      new RolloutClient(url, { engine: "vllm", vocabSize: base.length, fetch: fakes.fetch })
        .preflight({ probePromptIds: [1, 2], eosTokenIds: [] });
    for (const [i, largest] of [[0, "1\\.200"], [1, "-1\\.800"]] as const) {
      await rejects(preflight(fakes.servers[i].url), (e: Error) => {
        ok(e instanceof RemoteEngineError && !e.retryable, e.message);
        ok(
          new RegExp(
            `^Server "${fakes.servers[i].url}": the preflight probe found logits where ` +
              `log-probs belong: the top 20 values it returned at temperature 1 are not ` +
              `log-probs: the largest is ${largest} .*start vLLM with --logprobs-mode ` +
              `raw_logprobs .* or processed_logprobs`,
          ).test(e.message),
          e.message,
        );
        return true;
      });
    }
    strictEqual((await preflight(fakes.servers[2].url)).logprobs, "raw");
    // Through the pool: no server passes, and the error says why.
    await rejects(
      RolloutPool.connect([fakes.servers[0].url], {
        engine: "vllm",
        vocabSize: base.length,
        fetch: fakes.fetch,
        probePromptIds: [1, 2],
      }),
      /all 1 rollout servers are down at connect: .*found logits where log-probs belong.*--logprobs-mode raw_logprobs/,
    );
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("RolloutClient.preflight(): vLLM's -9999 (a masked token) is no log-prob to the probe", async () => {
  // A token masked at both temperatures comes back as -9999 (vLLM's clamp of -inf): it was the
  // probe's least likely token, its ~9999 nat gap read the same at both temperatures, and a
  // processed server passed as "raw".
  const masked = () => [1, -1.5, -1e4];
  const fakes = await serveFakes([
    categorical("processed_logprobs", masked),
    categorical("raw_logprobs", masked),
  ]);
  try {
    const found = await Promise.all(
      fakes.servers.map((s) =>
        new RolloutClient(s.url, { engine: "vllm", vocabSize: 3, fetch: fakes.fetch })
          .preflight({ probePromptIds: [1, 2], eosTokenIds: [] })
      ),
    );
    deepStrictEqual(found.map((f) => f.logprobs), ["processed", "raw"], found[0].probe);
    ok(/^log-prob gap of tokens 0 and 1: 2\.500 nat/.test(found[0].probe!), found[0].probe);
  } finally {
    await fakes.closeAll();
  }
});

Deno.test("RolloutClient.preflight(): the probe reads the top 20, or as many as --max-logprobs allows", async () => {
  // Five near-equal openings, the 20th 1.5 nat below: the top-5 probe (gap 0.4 nat, under the
  // 1 nat floor) said "unknown" and a run at T ≠ 1 was refused.
  const logits = () => [
    ...[2, 1.9, 1.8, 1.7, 1.6],
    ...Array.from({ length: 15 }, (_, i) => 1.5 - i / 14),
    -3,
    -4,
  ];
  const asked: number[][] = [[], []];
  /** vLLM's check of `logprobs` against `--max-logprobs` (default 20). */
  const capped = (k: number, cap: number, mode: "raw_logprobs" | "processed_logprobs") => {
    const handler = categorical(mode, logits);
    return async (r: Request) => {
      const body = r.method === "POST" ? await r.clone().json() : {};
      if (typeof body.logprobs === "number") {
        asked[k].push(body.logprobs);
        if (body.logprobs > cap) {
          return Response.json({
            object: "error",
            message: `Requested sample logprobs of ${body.logprobs}, which is greater than ` +
              `max allowed: ${cap}`,
          }, { status: 400 });
        }
      }
      return handler(r);
    };
  };
  const fakes = await serveFakes([capped(0, 20, "raw_logprobs"), capped(1, 5, "raw_logprobs")]);
  try {
    const found = [];
    for (const server of fakes.servers) {
      const client = new RolloutClient(server.url, {
        engine: "vllm",
        vocabSize: 22,
        fetch: fakes.fetch,
      });
      found.push(await client.preflight({ probePromptIds: [1, 2], eosTokenIds: [] }));
    }
    deepStrictEqual(found.map((f) => f.logprobs), ["raw", "unknown"]);
    deepStrictEqual(asked, [[20, 20], [20, 5, 5]]);
    ok(
      /tokens 0 and 19: 1\.500 nat at temperature 1, 1\.500 at 0\.5/.test(found[0].probe!),
      found[0].probe,
    );
    // With --max-logprobs 5 it reads the top 5 (no failed preflight), and says why it cannot tell.
    ok(/tokens 0 and 4: 0\.400 nat.*under 1 nat/.test(found[1].probe!), found[1].probe);
  } finally {
    await fakes.closeAll();
  }
});
