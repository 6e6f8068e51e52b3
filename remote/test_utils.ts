// Test helper: serves request handlers as local fake inference servers. With --allow-net they
// listen on 127.0.0.1 at a random port (real sockets, real `fetch`); without it they are reached
// through an in-process `fetch` that routes by URL (same handlers, no sockets), so the tests run
// under `deno task test`, which does not grant the network.

import type { GenerateOptions, GenerateResult } from "../model/generate.ts";
import type { Qwen3Model } from "../model/model.ts";
import type { RolloutRequest } from "./types.ts";

/** The next-token logits of `model` after `ids` (`fakeVllmHandler`'s `nextLogits`). */
export function nextLogitsOf(model: Qwen3Model): (ids: readonly number[]) => Promise<Float32Array> {
  return async (ids) => {
    const { logits } = await model.forward({ inputIds: [[...ids]] });
    const vocab = logits.length / ids.length;
    return logits.slice((ids.length - 1) * vocab);
  };
}

/**
 * A stub `generate` for `fakeVllmHandler`: every prompt gets the one token `token` with log-prob
 * -0.5, ending by `stopReason`.
 */
export function oneTokenGenerate(
  token: number,
  stopReason: "stop" | "length",
): (options: GenerateOptions) => Promise<GenerateResult> {
  return (o) =>
    Promise.resolve(
      {
        sequences: o.prompts.map((p) => ({
          tokens: [token],
          logprobs: Float32Array.of(-0.5),
          modelLogprobs: Float32Array.of(-0.5),
          stopReason,
          length: 1,
          promptLength: p.length,
        })),
        stats: { readbacks: 0 },
      } as unknown as GenerateResult,
    );
}

/** A running fake server. */
export interface FakeServer {
  /** Its base URL. */
  url: string;
  /** Stops it: later requests fail like a refused connection. */
  close(): Promise<void>;
}

/** Fake servers and the `fetch` that reaches them. */
export interface FakeServers {
  servers: FakeServer[];
  /** `globalThis.fetch` with sockets, the in-process router without. */
  fetch: typeof fetch;
  /** Whether they listen on real sockets. */
  sockets: boolean;
  /** Stops every server still running. */
  closeAll(): Promise<void>;
}

/** Whether the test process may listen on and connect to 127.0.0.1. */
export async function hasNet(): Promise<boolean> {
  return (await Deno.permissions.query({ name: "net", host: "127.0.0.1" })).state === "granted";
}

/** Starts one fake server per handler. */
export async function serveFakes(
  handlers: readonly ((request: Request) => Promise<Response> | Response)[],
): Promise<FakeServers> {
  if (await hasNet()) {
    const running = handlers.map((handler) => {
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        handler,
      );
      let closed = false;
      return {
        url: `http://127.0.0.1:${server.addr.port}`,
        close: async () => {
          if (closed) return;
          closed = true;
          await server.shutdown();
        },
      };
    });
    return {
      servers: running,
      fetch: globalThis.fetch,
      sockets: true,
      closeAll: async () => {
        for (const s of running) await s.close();
      },
    };
  }
  const live = new Map<string, (request: Request) => Promise<Response> | Response>();
  const servers = handlers.map((handler, i) => {
    const url = `http://fake-${i}.invalid`;
    live.set(url, handler);
    return { url, close: () => Promise.resolve(void live.delete(url)) };
  });
  const route: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const origin = new URL(request.url).origin;
    const handler = live.get(origin);
    if (handler === undefined) {
      throw new TypeError(`error sending request for url (${request.url}): connection refused`);
    }
    request.signal.throwIfAborted();
    return await handler(request);
  };
  return {
    servers,
    fetch: route,
    sockets: false,
    closeAll: () => Promise.resolve(live.clear()),
  };
}

/** The request the backends' probe tests build their probe from (temperature 0.5, no adapter). */
export const PROBE_REQUEST: RolloutRequest = {
  promptIds: [1, 2],
  n: 1,
  maxTokens: 1,
  temperature: 0.5,
  topP: 1,
  topK: 0,
  seed: 5,
  stopTokenIds: [],
  eosTokenIds: [54],
  adapter: null,
  policyVersion: -1,
};
