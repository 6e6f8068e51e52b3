import { deepStrictEqual, notStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { RolloutClient } from "./rollout_client.ts";
import { RemoteEngineError, type RolloutRequest } from "./types.ts";
import { fakeVllmHandler } from "./fake_vllm_server.ts";
import { serveFakes } from "./test_utils.ts";
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
