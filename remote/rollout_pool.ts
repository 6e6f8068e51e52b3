/**
 * A pool of rollout servers: each request (a prompt's G samples as one `n = G` request) goes to
 * the server with the fewest outstanding requests; a transport failure or a server whose choices
 * stay bad marks that server down for a while and the request goes, after a backoff, to the
 * others; when every server is down the error names each one and why.
 *
 * @module
 */
import {
  type PreflightOptions,
  type PreflightResult,
  RolloutClient,
  type RolloutClientOptions,
} from "./rollout_client.ts";
import { RemoteEngineError, type RolloutChoice, type RolloutRequest } from "./types.ts";

/**
 * Options of {@linkcode RolloutPool}.
 *
 * @example Usage
 * ```ts
 * import type { RolloutPoolOptions } from "./rollout_pool.ts";
 *
 * const options: RolloutPoolOptions = { attempts: 4, backoffMs: 250, downMs: 10_000 };
 * ```
 */
export interface RolloutPoolOptions {
  /** Tries per request over all servers; default 4. */
  attempts?: number;
  /** The first retry's wait, doubling per retry; default 250 ms. */
  backoffMs?: number;
  /** How long a failed server is skipped; default 10 000 ms. */
  downMs?: number;
  /** The clock (tests); default `performance.now`. */
  now?: () => number;
}

/**
 * One server's state in the pool.
 *
 * @example Usage
 * ```ts
 * import type { PoolServerState } from "./rollout_pool.ts";
 *
 * const state: PoolServerState = {
 *   url: "http://a:8000", outstanding: 2, up: true, requests: 10, failures: 0, lastError: null,
 * };
 * ```
 */
export interface PoolServerState {
  /** The server's URL. */
  url: string;
  /** Requests in flight. */
  outstanding: number;
  /** Whether the pool sends it requests now. */
  up: boolean;
  /** Requests it answered. */
  requests: number;
  /** Requests that failed on it. */
  failures: number;
  /** The last failure's message, or `null`. */
  lastError: string | null;
}

interface Slot {
  client: RolloutClient;
  downUntil: number;
  requests: number;
  failures: number;
  lastError: string | null;
}

/**
 * Options of {@linkcode RolloutPool.connect}.
 *
 * @example Usage
 * ```ts
 * import type { ConnectPoolOptions } from "./rollout_pool.ts";
 *
 * const options: ConnectPoolOptions = {
 *   engine: "vllm", vocabSize: 64, probePromptIds: [1, 2], eosTokenIds: [54],
 * };
 * ```
 */
export interface ConnectPoolOptions
  extends RolloutClientOptions, RolloutPoolOptions, PreflightOptions {}

/**
 * A pool of rollout servers.
 *
 * @example Connect to two vLLM servers (needs running servers)
 * ```ts ignore
 * import { RolloutPool } from "./rollout_pool.ts";
 *
 * const pool = await RolloutPool.connect(["http://10.0.0.5:8000", "http://10.0.0.6:8000"], {
 *   engine: "vllm", vocabSize: 151936, probePromptIds: [9707, 11], eosTokenIds: [151645],
 * });
 * console.log(pool.states());
 * ```
 */
export class RolloutPool {
  #slots: Slot[];
  #options: RolloutPoolOptions;
  #now: () => number;
  #turn = 0;

  /**
   * Makes a pool over the servers.
   *
   * @param clients One client per server (preflight already run, or a `model` given).
   * @param options Retries, backoff, how long a failed server is skipped.
   */
  constructor(clients: readonly RolloutClient[], options: RolloutPoolOptions = {}) {
    if (clients.length === 0) throw new RangeError("Cannot create a rollout pool: no servers");
    this.#slots = clients.map((client) => ({
      client,
      downUntil: -Infinity,
      requests: 0,
      failures: 0,
      lastError: null,
    }));
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Creates a client per URL and runs each one's preflight; a server that fails it starts down
   * (a warning in {@linkcode RolloutPool.states}), and the pool needs at least one up.
   *
   * @param urls The servers' base URLs.
   * @param options Client, pool and preflight options.
   * @returns The pool.
   * @throws {RemoteEngineError} When no server passes the preflight (naming each).
   */
  static async connect(urls: readonly string[], options: ConnectPoolOptions): Promise<RolloutPool> {
    const clients = urls.map((url) => new RolloutClient(url, options));
    const pool = new RolloutPool(clients, options);
    const results = await Promise.allSettled(clients.map((c) => c.preflight(options)));
    results.forEach((r, i) => {
      if (r.status === "rejected") pool.#fail(pool.#slots[i], r.reason);
    });
    if (results.every((r) => r.status === "rejected")) throw pool.#allDown("at connect");
    return pool;
  }

  /** The clients, in order. */
  get clients(): RolloutClient[] {
    return this.#slots.map((s) => s.client);
  }

  /**
   * The preflight results of the servers that have one.
   *
   * @returns URL → result.
   */
  preflights(): Map<string, PreflightResult> {
    const out = new Map<string, PreflightResult>();
    for (const s of this.#slots) {
      if (s.client.preflightResult) out.set(s.client.url, s.client.preflightResult);
    }
    return out;
  }

  /**
   * Each server's state.
   *
   * @returns One entry per server, in order.
   */
  states(): PoolServerState[] {
    const now = this.#now();
    return this.#slots.map((s) => ({
      url: s.client.url,
      outstanding: s.client.outstanding,
      up: s.downUntil <= now,
      requests: s.requests,
      failures: s.failures,
      lastError: s.lastError,
    }));
  }

  #fail(slot: Slot, error: unknown): void {
    slot.failures++;
    slot.lastError = (error as Error).message;
    slot.downUntil = this.#now() + (this.#options.downMs ?? 10_000);
  }

  #allDown(when: string): RemoteEngineError {
    const lines = this.#slots.map((s) =>
      `"${s.client.url}": ${s.lastError ?? "no error recorded"}`
    );
    return new RemoteEngineError(
      this.#slots.map((s) => s.client.url).join(", "),
      `all ${this.#slots.length} rollout servers are down ${when}: ${lines.join("; ")}`,
      { retryable: false },
    );
  }

  /**
   * The up server with the fewest outstanding requests (ties: round robin) among those that hold
   * the adapter (when the server's adapters are tracked).
   */
  #pick(adapter: string | null): Slot | null {
    const now = this.#now();
    const n = this.#slots.length;
    let best: Slot | null = null;
    for (let k = 0; k < n; k++) {
      const slot = this.#slots[(this.#turn + k) % n];
      if (slot.downUntil > now) continue;
      const held = slot.client.servedAdapters;
      if (adapter !== null && held !== null && !held.has(adapter)) continue;
      if (best === null || slot.client.outstanding < best.client.outstanding) best = slot;
    }
    this.#turn = (this.#turn + 1) % n;
    return best;
  }

  /**
   * Generates a prompt's samples on the least busy server, retrying elsewhere on failure.
   *
   * @param request The rollout request (`n` = the group size).
   * @returns `request.n` validated choices.
   * @throws {RemoteEngineError} On a non-retryable failure (an HTTP 4xx: the request is wrong
   *   for the server), or when every server is down or the attempts ran out (naming the servers).
   * @throws {RangeError} When the request itself is invalid.
   */
  async generate(request: RolloutRequest): Promise<RolloutChoice[]> {
    const attempts = this.#options.attempts ?? 4;
    const backoff = this.#options.backoffMs ?? 250;
    let last: unknown = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, backoff * 2 ** (attempt - 1)));
      const slot = this.#pick(request.adapter);
      if (slot === null) {
        const now = this.#now();
        const up = this.#slots.filter((s) => s.downUntil <= now);
        if (up.length === 0) throw this.#allDown(`after ${attempt} attempts`);
        throw new RemoteEngineError(
          up.map((s) => s.client.url).join(", "),
          `no up rollout server holds adapter "${request.adapter}": they hold ` +
            up.map((s) => JSON.stringify([...s.client.servedAdapters ?? []])).join(", "),
          { retryable: false },
        );
      }
      try {
        const choices = await slot.client.generate(request);
        slot.requests++;
        return choices;
      } catch (error) {
        if (!(error instanceof RemoteEngineError) || !error.retryable) throw error;
        this.#fail(slot, error);
        last = error;
      }
    }
    throw new RemoteEngineError(
      this.#slots.map((s) => s.client.url).join(", "),
      `the rollout request failed ${attempts} times; last: ${(last as Error).message}`,
      { retryable: false, cause: last },
    );
  }
}
