// The rollout pool against local fake vLLM servers backed by halo's CPU model
// (models/arithmetic-tiny): completions and log-probs are real samples of the model. With
// --allow-net the fakes listen on 127.0.0.1 (random ports) and are killed with
// `server.shutdown()`; without it (`deno task test` grants no network) the same handlers are
// reached through an in-process fetch and a killed server refuses connections.
//
// Tolerance: the fake reports halo's sampler log-probs, stored as float32 by `generate`, so they
// match a float64 re-scoring of the same tokens to |Δ| ≤ 1e-5 (observed ≤ 2.4e-7, float32
// rounding, 2026-12-03).
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { loadModel } from "../model/load_model.ts";
import { generate } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import { arithmeticTokenizerFiles } from "../data/arithmetic_tokenizer.ts";
import { createTokenizer } from "../model/tokenizer.ts";
import { promptIds } from "../trainer/rl/prompt_template.ts";
import {
  fakeVllmHandler,
  RemoteEngineError,
  RolloutPool,
  type RolloutRequest,
} from "../remote/mod.ts";
import { serveFakes } from "../remote/test_utils.ts";

const LOGPROB_ATOL = 1e-5;
const POOL = { engine: "vllm", vocabSize: 64, backoffMs: 5, downMs: 60_000 } as const;

const files = arithmeticTokenizerFiles();
const tokenizer = createTokenizer(files.tokenizerJson, files.tokenizerConfig);
const questions = ["What is 3 + 4?", "What is 9 - 2?", "What is 5 * 6?", "What is 8 + 1?"];
const prompts = questions.map((q) => promptIds(tokenizer, q, { template: "task" }));

function request(p: number, seed: number): RolloutRequest {
  return {
    promptIds: prompts[p % prompts.length],
    n: 4,
    maxTokens: 12,
    temperature: 1,
    topP: 1,
    topK: 0,
    seed,
    stopTokenIds: [],
    eosTokenIds: [54],
    adapter: null,
    policyVersion: 0,
  };
}

/** The largest |server log-prob − halo's float64 re-scoring| over the choices. */
async function maxLogprobGap(
  model: Qwen3Model,
  prompt: readonly number[],
  choices: { tokenIds: number[]; samplerLogprobs: number[] }[],
): Promise<number> {
  let gap = 0;
  for (const c of choices) {
    const { logprobs } = await model.tokenLogprobs({ inputIds: [[...prompt, ...c.tokenIds]] });
    c.tokenIds.forEach((_, i) => {
      gap = Math.max(gap, Math.abs(logprobs[prompt.length - 1 + i] - c.samplerLogprobs[i]));
    });
  }
  return gap;
}

const TEST = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...TEST,
  name: "RolloutPool spreads groups by outstanding requests; choices are halo's real samples",
  fn: async () => {
    const model = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
    const seen: number[] = [0, 0];
    const fakes = await serveFakes([0, 1].map((i) => {
      const handler = fakeVllmHandler({
        generate: (o) => generate(model, o),
        model: "arith",
        maxModelLen: 128,
      });
      return (r: Request) => {
        if (r.method === "POST") seen[i]++;
        return handler(r);
      };
    }));
    try {
      const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
        ...POOL,
        fetch: fakes.fetch,
      });
      const answers = await Promise.all(
        [0, 1, 2, 3, 4, 5].map((p) => pool.generate(request(p, p))),
      );
      for (const [p, choices] of answers.entries()) {
        strictEqual(choices.length, 4);
        const gap = await maxLogprobGap(model, request(p, p).promptIds, choices);
        ok(gap <= LOGPROB_ATOL, `prompt ${p}: log-prob gap ${gap}`);
        // The same request on halo directly gives the same samples (the fake is faithful).
        const direct = await generate(model, {
          prompts: Array(4).fill(request(p, p).promptIds),
          maxNewTokens: 12,
          temperature: 1,
          seed: p,
          stopTokenIds: [54],
        });
        deepStrictEqual(choices.map((c) => c.tokenIds), direct.sequences.map((s) => s.tokens));
      }
      // Six concurrent groups over two idle servers: three each.
      deepStrictEqual(seen, [3, 3]);
      deepStrictEqual(pool.states().map((s) => [s.requests, s.failures, s.up]), [[3, 0, true], [
        3,
        0,
        true,
      ]]);
    } finally {
      await fakes.closeAll();
      model.dispose();
    }
  },
});

Deno.test({
  ...TEST,
  name: "RolloutPool sends the next group to the server with fewer outstanding requests",
  fn: async () => {
    const model = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const served: string[] = [];
    const handlers = ["a", "b"].map((name) => {
      const handler = fakeVllmHandler({
        generate: (o) => generate(model, o),
        model: "arith",
        maxModelLen: 128,
      });
      return async (r: Request) => {
        if (r.method === "POST") {
          served.push(name);
          if (name === "a") await gate; // server a is slow
        }
        return handler(r);
      };
    });
    const fakes = await serveFakes(handlers);
    try {
      const pool = await RolloutPool.connect(fakes.servers.map((s) => s.url), {
        ...POOL,
        fetch: fakes.fetch,
      });
      const slow = pool.generate(request(0, 1)); // goes to a (tie, first in turn) and hangs
      await new Promise((r) => setTimeout(r, 20));
      // a has one outstanding request: the next three go to b, one at a time.
      for (let k = 0; k < 3; k++) await pool.generate(request(k, 10 + k));
      release();
      await slow;
      deepStrictEqual(served, ["a", "b", "b", "b"]);
    } finally {
      release();
      await fakes.closeAll();
      model.dispose();
    }
  },
});

Deno.test({
  ...TEST,
  name: "RolloutPool survives a server killed mid-run and names every server when all are down",
  fn: async () => {
    const model = await loadModel("models/arithmetic-tiny", { backend: "cpu", warn: false });
    const fakes = await serveFakes(
      [0, 1, 2].map(() =>
        fakeVllmHandler({ generate: (o) => generate(model, o), model: "arith", maxModelLen: 128 })
      ),
    );
    const [a, b, dead] = fakes.servers;
    try {
      await dead.close(); // down before connect: the pool starts without it
      const pool = await RolloutPool.connect([a.url, b.url, dead.url], {
        ...POOL,
        fetch: fakes.fetch,
      });
      const start = pool.states();
      deepStrictEqual(start.map((s) => s.up), [true, true, false]);
      ok(start[2].lastError?.includes(dead.url), String(start[2].lastError));

      const first = await Promise.all([0, 1, 2, 3].map((p) => pool.generate(request(p, p))));
      strictEqual(first.flat().length, 16);
      await b.close(); // killed mid-run
      const second = await Promise.all([0, 1, 2, 3].map((p) => pool.generate(request(p, 100 + p))));
      for (const [p, choices] of second.entries()) {
        strictEqual(choices.length, 4);
        const gap = await maxLogprobGap(model, request(p, 0).promptIds, choices);
        ok(gap <= LOGPROB_ATOL, `prompt ${p}: log-prob gap ${gap}`);
      }
      const mid = pool.states();
      deepStrictEqual(mid.map((s) => s.up), [true, false, false]);
      ok(mid[1].failures >= 1, JSON.stringify(mid[1]));
      strictEqual(mid[0].requests + mid[1].requests, 8);

      await a.close();
      await rejects(pool.generate(request(0, 7)), (e: unknown) => {
        ok(e instanceof RemoteEngineError, String(e));
        ok(e.message.includes("all 3 rollout servers are down"), e.message);
        for (const s of [a, b, dead]) ok(e.message.includes(`"${s.url}"`), e.message);
        return true;
      });
    } finally {
      await fakes.closeAll();
      model.dispose();
    }
  },
});
