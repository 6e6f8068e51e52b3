/**
 * A pool of rollout servers: each request (a prompt's G samples as one `n = G` request) goes to
 * the server with the fewest outstanding requests; a transport failure or a server whose choices
 * stay bad marks that server down for a while and the request goes, after a backoff, to the
 * others. When every server that could take the request is down, the retry goes to the one whose
 * down time ends first (so one server, or a burst of failures, still gets its `attempts`); when
 * the attempts run out with every server down the error names each one and why.
 *
 * A server that failed the preflight at connect (e.g. still loading its weights) gets no request
 * until a preflight passes: it is retried, once its down time is over, right before its first
 * request. At most `maxSeqsInFlight` sequences (the requests' `n`) are in flight per server; the
 * others wait in the pool for a request to end (each in flight has its client's timeout). A
 * request larger than the cap is split into near-equal chunks of at most the cap (chunk `k`
 * starting at sample `s` seeded `seed + s`, so sample `i` keeps seed `seed + i`, as vLLM's
 * parallel sampling derives them), which go to the servers like requests of their own; the
 * choices come back in the request's order. When a chunk fails, the request fails at once with
 * its error: the other chunks are aborted (their HTTP requests through the client's
 * `AbortSignal`; those still waiting for room or a backoff stop there) and not waited for. An
 * aborted chunk marks no server down, and once it has sent its generation request its sequences
 * count as in flight until that HTTP request has ended (a `fetch` that ignores the signal keeps
 * them counted until the server answers); a chunk aborted before that (waiting for room, a
 * backoff, or a server's shared first-contact check, which goes on for the other requests) frees
 * its sequences at once.
 *
 * A server that answers that it does not hold an adapter it held (restarted, so it lost its
 * adapters: vLLM's HTTP 404, SGLang's HTTP 400 "… not loaded", see `EngineBackend.lostAdapter`) no
 * longer counts as holding it: the request goes to a server that does, and the adapter is loaded
 * again there (`RolloutClient.restoreAdapter`). When no server holds it, the request waits for
 * that reload; a reload that failed retryably (a 503 or a timeout right after the restart) is
 * started again at the request's next attempt, so one server survives a restart within
 * `attempts`.
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

/** `promise`, or a rejection with the signal's reason as soon as `signal` aborts. */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Resolves after `ms`, or rejects (and clears the timer) as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

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
  /**
   * How long a failed server is skipped while another server can take the request; default
   * 10 000 ms.
   */
  downMs?: number;
  /**
   * Sequences (the sum of the requests' `n`) in flight per server; more wait in the pool. A
   * request larger than this is split into chunks of at most this many samples. Default 256
   * (vLLM's `--max-num-seqs`).
   */
  maxSeqsInFlight?: number;
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
  /** Whether its preflight passed (or none is needed): else one runs before its next request. */
  ready: boolean;
  /** The preflight in progress, shared by concurrent requests. */
  preflighting: Promise<unknown> | null;
  /** Sequences in flight. */
  seqs: number;
  /** Adapters it answered it lost and has not loaded again yet (their reload failed). */
  lost: Set<string>;
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
  #options: RolloutPoolOptions & PreflightOptions;
  #now: () => number;
  #turn = 0;
  #waiters: (() => void)[] = [];
  /** Adapter loads in progress on servers that lost them, per adapter name. */
  #restores = new Map<string, Set<Promise<void>>>();

  /**
   * Makes a pool over the servers.
   *
   * @param clients One client per server (preflight already run, or a `model` given).
   * @param options Retries, backoff, how long a failed server is skipped, the sequences in
   *   flight per server, and the preflight's probe (for servers that failed it at connect).
   */
  constructor(
    clients: readonly RolloutClient[],
    options: RolloutPoolOptions & PreflightOptions = {},
  ) {
    if (clients.length === 0) throw new RangeError("Cannot create a rollout pool: no servers");
    const cap = options.maxSeqsInFlight ?? 256;
    if (!(Number.isInteger(cap) && cap >= 1)) {
      throw new RangeError(
        `Cannot create a rollout pool: maxSeqsInFlight must be an integer ≥ 1: current value ` +
          `is ${cap}`,
      );
    }
    this.#slots = clients.map((client) => ({
      client,
      downUntil: -Infinity,
      requests: 0,
      failures: 0,
      lastError: null,
      ready: true,
      preflighting: null,
      seqs: 0,
      lost: new Set(),
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
      if (r.status === "rejected") {
        pool.#fail(pool.#slots[i], r.reason);
        pool.#slots[i].ready = false; // preflight again before its first request
      }
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

  #allDown(when: string, cause?: unknown): RemoteEngineError {
    const lines = this.#slots.map((s) =>
      `"${s.client.url}": ${s.lastError ?? "no error recorded"}`
    );
    return new RemoteEngineError(
      this.#slots.map((s) => s.client.url).join(", "),
      `all ${this.#slots.length} rollout servers are down ${when}: ${lines.join("; ")}`,
      { retryable: false, cause },
    );
  }

  /** Whether the slot may serve the adapter (it holds it, or its adapters are not tracked). */
  #holds(slot: Slot, adapter: string | null): boolean {
    const held = slot.client.servedAdapters;
    return adapter === null || held === null || held.has(adapter);
  }

  /**
   * The up server with the fewest outstanding requests (ties: round robin) among those that may
   * serve the adapter and have room for `n` more sequences; `"full"` when every such up server is
   * full; `null` when none is up.
   */
  #pick(adapter: string | null, n: number): Slot | "full" | null {
    const now = this.#now();
    const cap = this.#options.maxSeqsInFlight ?? 256;
    const count = this.#slots.length;
    let best: Slot | null = null;
    let full = false;
    for (let k = 0; k < count; k++) {
      const slot = this.#slots[(this.#turn + k) % count];
      if (slot.downUntil > now || !this.#holds(slot, adapter)) continue;
      if (slot.seqs + n > cap) {
        full = true;
        continue;
      }
      if (best === null || slot.client.outstanding < best.client.outstanding) best = slot;
    }
    this.#turn = (this.#turn + 1) % count;
    return best ?? (full ? "full" : null);
  }

  /** Waits until some request of the pool ends (or `signal` aborts: rejects). */
  #waitRelease(signal?: AbortSignal): Promise<void> {
    return abortable(new Promise((resolve) => this.#waiters.push(resolve)), signal);
  }

  #release(slot: Slot, n: number): void {
    slot.seqs -= n;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Runs the preflight of a server that has not passed it (once for concurrent requests). */
  async #preflight(slot: Slot): Promise<void> {
    slot.preflighting ??= slot.client.preflight(this.#options).finally(() => {
      slot.preflighting = null;
    });
    await slot.preflighting;
    slot.ready = true;
  }

  /**
   * Runs the slot's `restoreAdapter(name)`, registered so requests that find no holder wait for
   * it; the slot counts as having lost `name` until a reload succeeds.
   */
  #restore(slot: Slot, name: string): Promise<void> {
    const set = this.#restores.get(name) ?? new Set<Promise<void>>();
    this.#restores.set(name, set);
    slot.lost.add(name);
    const running = slot.client.restoreAdapter!(name).then(() => {
      slot.lost.delete(name);
    }, (error) => {
      // Only a retryable failure is worth a reload later (not "no longer in the window").
      if (!(error instanceof RemoteEngineError && error.retryable)) slot.lost.delete(name);
      throw error;
    }).finally(() => {
      set.delete(running);
      if (set.size === 0 && this.#restores.get(name) === set) this.#restores.delete(name);
    });
    set.add(running);
    return running;
  }

  /**
   * Whether `error` is a tracked server's answer that it does not hold the request's adapter
   * (`EngineBackend.lostAdapter`: vLLM's 404 "The model `<name>` does not exist.", SGLang's 400
   * "… requested LoRA adapters are not loaded: <name>" after a restart): the pool only sends it
   * requests for adapters it was told the server holds.
   */
  #lostAdapter(slot: Slot, error: unknown, adapter: string | null): boolean {
    return adapter !== null && error instanceof RemoteEngineError &&
      error.status !== undefined && slot.client.servedAdapters !== null &&
      slot.client.backend.lostAdapter(error.status, error.message, adapter);
  }

  /**
   * Generates a prompt's samples on the least busy server, retrying elsewhere on failure; a
   * request of more than `maxSeqsInFlight` samples goes as near-equal chunks of at most that
   * many (sample `i` seeded `seed + i`), each on a server of its own choosing; the first chunk
   * that fails fails the request, and the others are aborted.
   *
   * @param request The rollout request (`n` = the group size).
   * @returns `request.n` validated choices, in order.
   * @throws {RemoteEngineError} On a non-retryable failure (an HTTP 4xx: the request is wrong
   *   for the server), when no server holds the request's adapter, or when the attempts ran out
   *   (naming every server and its last error when all are down).
   * @throws {RangeError} When the request itself is invalid.
   */
  async generate(request: RolloutRequest): Promise<RolloutChoice[]> {
    const cap = this.#options.maxSeqsInFlight ?? 256;
    if (!(request.n > cap)) return await this.#generateChunk(request);
    // Larger than a server takes at once: near-equal chunks of at most `cap`, sample `i` still
    // seeded `seed + i` (a request that waited for an idle server could wait for ever).
    const chunks = Math.ceil(request.n / cap);
    const parts: RolloutRequest[] = [];
    for (let k = 0, start = 0; k < chunks; k++) {
      const n = Math.floor(request.n / chunks) + (k < request.n % chunks ? 1 : 0);
      parts.push({ ...request, n, seed: request.seed + start });
      start += n;
    }
    // The first failure fails the request: the others are aborted, not waited for (Promise.all
    // handles their later rejections; each releases its sequences when its HTTP request ends).
    const siblings = new AbortController();
    const runs = parts.map((part) =>
      this.#generateChunk(part, siblings.signal).catch((error) => {
        siblings.abort(error);
        throw error;
      })
    );
    return (await Promise.all(runs)).flat();
  }

  /**
   * {@linkcode RolloutPool.generate} of a request of at most `maxSeqsInFlight` samples; `signal`
   * (a sibling chunk failed) stops it wherever it waits, aborts its HTTP request, and marks no
   * server down.
   */
  async #generateChunk(request: RolloutRequest, signal?: AbortSignal): Promise<RolloutChoice[]> {
    const attempts = this.#options.attempts ?? 4;
    const backoff = this.#options.backoffMs ?? 250;
    const adapter = request.adapter;
    let last: unknown = null;
    nextAttempt: for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(backoff * 2 ** (attempt - 1), signal);
      let slot: Slot;
      for (;;) {
        signal?.throwIfAborted();
        const picked = this.#pick(adapter, request.n);
        if (picked === "full") {
          await this.#waitRelease(signal);
          continue;
        }
        if (picked !== null) {
          slot = picked;
          break;
        }
        const holders = this.#slots.filter((s) => this.#holds(s, adapter));
        const restoring = adapter === null ? undefined : this.#restores.get(adapter);
        if (holders.length === 0 && restoring !== undefined) {
          // A server that lost it is loading it again.
          await abortable(Promise.allSettled(restoring), signal);
          continue;
        }
        const lostBy = adapter === null || holders.length > 0
          ? undefined
          : this.#slots.find((s) => s.lost.has(adapter) && s.client.restoreAdapter !== null);
        if (lostBy !== undefined) {
          // Its reload failed retryably (a 503 or a timeout right after the restart): load it
          // again, as this attempt, rather than give up with attempts left.
          try {
            await abortable(this.#restore(lostBy, adapter!), signal);
            continue;
          } catch (e) {
            if (signal?.aborted) throw signal.reason;
            if (!(e instanceof RemoteEngineError) || !e.retryable) throw e;
            this.#fail(lostBy, e);
            last = e;
            continue nextAttempt;
          }
        }
        if (holders.length === 0) {
          throw new RemoteEngineError(
            this.#slots.map((s) => s.client.url).join(", "),
            `no rollout server holds adapter "${adapter}": they hold ` +
              this.#slots.map((s) => JSON.stringify([...s.client.servedAdapters ?? []])).join(
                ", ",
              ),
            { retryable: false },
          );
        }
        // Every server that could take it is down: retry the one that comes back first rather
        // than give up (one server, or a burst of failures, would never get a second attempt).
        slot = holders.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
        break;
      }
      slot.seqs += request.n;
      try {
        if (!slot.ready) await abortable(this.#preflight(slot), signal);
        const choices = await slot.client.generate(request, signal);
        slot.requests++;
        return choices;
      } catch (error) {
        if (signal?.aborted) throw signal.reason; // a sibling failed: not this server's fault
        if (this.#lostAdapter(slot, error, adapter)) {
          // The server lost the adapter (restarted): route the request to a server that holds
          // it, and load it again here (awaited when no other server holds it).
          slot.client.servedAdapters!.delete(adapter!);
          slot.lastError = (error as Error).message;
          last = error;
          const elsewhere = this.#slots.some((s) => s.client.servedAdapters?.has(adapter!));
          if (slot.client.restoreAdapter === null) {
            if (elsewhere) continue;
            throw error;
          }
          const restored = this.#restore(slot, adapter!);
          if (elsewhere) {
            restored.catch((e) => void (slot.lastError = (e as Error).message));
            continue;
          }
          try {
            await abortable(restored, signal);
          } catch (e) {
            if (signal?.aborted) throw signal.reason;
            if (!(e instanceof RemoteEngineError) || !e.retryable) throw e;
            this.#fail(slot, e);
            last = e;
          }
          continue;
        }
        const preflightFailed = !slot.ready;
        if (
          !preflightFailed && (!(error instanceof RemoteEngineError) || !error.retryable)
        ) throw error;
        this.#fail(slot, error);
        last = error;
      } finally {
        this.#release(slot, request.n);
      }
    }
    const now = this.#now();
    if (this.#slots.every((s) => s.downUntil > now)) {
      throw this.#allDown(`after ${attempts} attempts`, last);
    }
    throw new RemoteEngineError(
      this.#slots.map((s) => s.client.url).join(", "),
      `the rollout request failed ${attempts} times; last: ${(last as Error).message}`,
      { retryable: false, cause: last },
    );
  }
}
