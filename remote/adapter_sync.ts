/**
 * Adapter sync by file + HTTP: after an update the trainer writes the PEFT adapter to a new
 * directory per policy version (written under a temporary name, files fsynced, then renamed into
 * place), every server loads it under a new name (`<prefix>-v<version>`), and versions that fall
 * out of the staleness window are unloaded. A name is never loaded twice: vLLM keys its prefix
 * cache by adapter name, so reloading changed weights under an old name can serve stale KV
 * (vllm#42125); `load_inplace` is never used. A restarted server's lost version is loaded again
 * (for the pool, on its "not loaded" answer) only while it is in the window, in turn with the publishes' loads and
 * unloads on that server, so a reload cannot land after a publish unloaded that version. An
 * unload that fails (server unreachable, HTTP 5xx) is a warning, and the version is unloaded again
 * at the next publish, up to `unloadTries` tries in all (a last warning says it stays loaded, and
 * counts against the server's `--max-loras`, until the server restarts); an unload answered
 * "unknown adapter" (vLLM HTTP 404, SGLang HTTP 400 "… does not exist", see
 * `EngineBackend.unknownAdapter`) means the server no longer holds the version (it restarted)
 * and is not retried.
 *
 * Routes: vLLM `POST /v1/load_lora_adapter {lora_name, lora_path, load_inplace: false}` and
 * `POST /v1/unload_lora_adapter {lora_name}` (server started with
 * `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True --enable-lora --max-loras ≥ keep + 1`: a publish loads
 * the new version before it unloads the oldest, so a server briefly holds keep + 1); SGLang
 * `POST /load_lora_adapter {lora_name, lora_path, pinned: false}` and `POST /unload_lora_adapter`
 * (`--enable-lora --max-loaded-loras ≥ keep + 1`). llama.cpp sets adapters server-wide and is
 * refused.
 * The servers read the directory from their own disk: `dir` must be shared storage (or
 * `serverPath` maps it), and HILO adapters cannot be served (engines serve plain LoRA only).
 *
 * @module
 */
import { join } from "node:path";
import { syncTree } from "../internal/atomic_write.ts";
import type { RolloutClient } from "./rollout_client.ts";
import { RemoteEngineError } from "./types.ts";

/**
 * Options of {@linkcode AdapterSync}.
 *
 * @example Usage
 * ```ts
 * import type { AdapterSyncOptions } from "./adapter_sync.ts";
 *
 * const options: AdapterSyncOptions = { dir: "/shared/adapters", prefix: "run7", keep: 2 };
 * ```
 */
export interface AdapterSyncOptions {
  /** Where the versions are written (readable by every server). */
  dir: string;
  /** Name prefix; default `"halo"`. */
  prefix?: string;
  /** Versions kept loaded on the servers (the staleness window + 1); default 2. */
  keep?: number;
  /** The path a server reads for a local path; default the same path. */
  serverPath?: (path: string) => string;
  /**
   * Tries to unload a version from a server: a failed unload is tried again at the next
   * publish, until this many tries failed; default 3.
   */
  unloadTries?: number;
  /**
   * Tries to load a version on a server when a try fails retryably (unreachable, timeout, HTTP
   * 5xx/429), as `RolloutPoolOptions.attempts`; default 4. A publish tries a server again only
   * while no other server has loaded the version (with one server, or all failing, it gets every
   * try; a hung server among healthy ones costs the publish one request timeout, not `attempts`):
   * a server still failing is skipped (the others serve the version), or fails the publish when
   * no server loaded it. A restarted server's reload of a version (the pool's restore) is tried
   * again on the same rule: while no other server holds that version.
   */
  attempts?: number;
  /** Milliseconds before the second load try, doubling after each; default 250. */
  backoffMs?: number;
  /**
   * Milliseconds each unload at {@linkcode AdapterSync.close} may take (capped by the client's
   * own `timeoutMs`); default 5000. The unloads of close run in parallel, over servers and
   * versions, so a hung server holds up close (and the error of a failed run) about this long,
   * after close has awaited the publishes and reloads in progress (each request of those may
   * take the client's full `timeoutMs`).
   */
  closeTimeoutMs?: number;
}

/**
 * Result of {@linkcode AdapterSync.publish}.
 *
 * @example Usage
 * ```ts
 * import type { PublishResult } from "./adapter_sync.ts";
 *
 * const result: PublishResult = {
 *   name: "halo-v3", version: 3, path: "/shared/adapters/halo-v3", unloaded: ["halo-v1"],
 *   warnings: [],
 * };
 * ```
 */
export interface PublishResult {
  /** The served name of the new version. */
  name: string;
  /** Its policy version. */
  version: number;
  /** Its directory. */
  path: string;
  /** Versions unloaded from the servers (out of the window). */
  unloaded: string[];
  /**
   * Servers skipped because they could not be reached (they get no requests for this version
   * until a later publish reaches them), and unload failures (tried again at the next publish,
   * up to `unloadTries` tries); neither is fatal.
   */
  warnings: string[];
}

function routes(client: RolloutClient): { load: string; unload: string; extra: object } {
  switch (client.backend.kind) {
    case "vllm":
      return {
        load: "/v1/load_lora_adapter",
        unload: "/v1/unload_lora_adapter",
        extra: { load_inplace: false },
      };
    case "sglang":
      return {
        load: "/load_lora_adapter",
        unload: "/unload_lora_adapter",
        extra: { pinned: false },
      };
    default:
      throw new RangeError(
        `Cannot sync adapters to "${client.url}": ${client.backend.kind} sets LoRA adapters ` +
          `server-wide at start-up, with no load route per name`,
      );
  }
}

/**
 * Result of {@linkcode AdapterSync.unloadStale}.
 *
 * @example Usage
 * ```ts
 * import type { UnloadStaleResult } from "./adapter_sync.ts";
 *
 * const result: UnloadStaleResult = {
 *   unloaded: [{ server: "http://10.0.0.5:8000", name: "halo-3f9a0c-v7" }],
 *   unchecked: [],
 *   warnings: [],
 * };
 * ```
 */
export interface UnloadStaleResult {
  /** The adapters unloaded, per server. */
  unloaded: { server: string; name: string }[];
  /**
   * Servers whose adapters were not looked at: skipped (`skip`), their list could not be read,
   * or an SGLang build whose list holds no adapter (builds before sglang#12229 list none).
   */
  unchecked: string[];
  /** Why each unchecked server was not, and unloads that failed; neither is fatal. */
  warnings: string[];
}

/**
 * Options of {@linkcode AdapterSync.unloadStale}.
 *
 * @example Usage
 * ```ts
 * import type { UnloadStaleOptions } from "./adapter_sync.ts";
 *
 * const options: UnloadStaleOptions = {
 *   skip: new Map([["http://10.0.0.6:8000", "it failed the preflight at connect"]]),
 * };
 * ```
 */
export interface UnloadStaleOptions {
  /**
   * Servers not to query, by URL, each with the reason its warning gives (servers that failed
   * the preflight: a down or unreachable one would hold the connect for the client's whole
   * `timeoutMs`).
   */
  skip?: ReadonlyMap<string, string>;
}

/**
 * The ids a models route lists, and how many entries have a `parent` (vLLM's and SGLang's
 * adapter cards; the base model's is `null`, and some vLLM builds gave adapters `null` too).
 */
function listedModels(json: unknown): { ids: string[]; withParent: number } {
  const data = typeof json === "object" && json !== null
    ? (json as { data?: unknown }).data
    : undefined;
  if (!Array.isArray(data)) {
    throw new TypeError(
      `expected a models list with "data": got ${JSON.stringify(json)?.slice(0, 80)}`,
    );
  }
  const ids = data.flatMap((m) => typeof m?.id === "string" ? [m.id as string] : []);
  const withParent = data.filter((m) => typeof m?.parent === "string" && m.parent !== "").length;
  return { ids, withParent };
}

/**
 * Publishes adapter versions to a set of servers.
 *
 * @example Publish the adapter of each step (needs running servers)
 * ```ts ignore
 * import { AdapterSync } from "./adapter_sync.ts";
 * import { RolloutClient } from "./rollout_client.ts";
 * import { savePeftAdapter } from "../adapters/peft_io.ts";
 * declare const lora: import("../adapters/lora.ts").Lora;
 *
 * const client = new RolloutClient("http://10.0.0.5:8000", { engine: "vllm", vocabSize: 151936 });
 * const sync = new AdapterSync([client], { dir: "/shared/adapters", keep: 2 });
 * const { name } = await sync.publish(1, (dir) => savePeftAdapter(dir, lora));
 * console.log(name); // "halo-v1": send requests with adapter "halo-v1"
 * ```
 */
export class AdapterSync {
  #clients: readonly RolloutClient[];
  #options: AdapterSyncOptions;
  #loaded: { name: string; version: number }[] = [];
  #restoring = new Map<string, Promise<void>>();
  /** Per server, the tail of its adapter loads and unloads (run one at a time, in order). */
  #queues = new Map<RolloutClient, Promise<unknown>>();
  /** Per server, the versions whose unload failed → failed tries (retried at the next publish). */
  #unloadFailures = new Map<RolloutClient, Map<string, number>>();
  #closed = false;
  /** Publishes in progress (close awaits them, then unloads what they loaded). */
  #publishing = new Set<Promise<unknown>>();

  /**
   * Makes the synchronizer.
   *
   * @param clients The servers (each loads every version).
   * @param options Directory, name prefix, window.
   */
  constructor(clients: readonly RolloutClient[], options: AdapterSyncOptions) {
    const keep = options.keep ?? 2;
    if (!Number.isInteger(keep) || keep < 1) {
      throw new RangeError(
        `Cannot sync adapters: "keep" must be an integer ≥ 1: current value is ${keep}`,
      );
    }
    const attempts = options.attempts ?? 4;
    if (!Number.isInteger(attempts) || attempts < 1) {
      throw new RangeError(
        `Cannot sync adapters: "attempts" must be an integer ≥ 1: current value is ${attempts}`,
      );
    }
    const unloadTries = options.unloadTries ?? 3;
    if (!Number.isInteger(unloadTries) || unloadTries < 1) {
      throw new RangeError(
        `Cannot sync adapters: "unloadTries" must be an integer ≥ 1: current value is ` +
          `${unloadTries}`,
      );
    }
    for (const c of clients) routes(c);
    this.#clients = clients;
    this.#options = options;
    for (const c of clients) c.restoreAdapter = (name) => this.#restore(c, name);
  }

  /** The path a server reads version `name` from. */
  #serverPath(name: string): string {
    return (this.#options.serverPath ?? ((p) => p))(join(this.#options.dir, name));
  }

  /**
   * Runs `op` on `client` after its earlier loads and unloads: a reload cannot race a publish
   * that unloads the same name (the reload checks the window when its turn comes, and the
   * publish unloads what the server holds when its turn comes).
   */
  #serial<T>(client: RolloutClient, op: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(client) ?? Promise.resolve()).then(op); // the tail never rejects
    const tail = run.catch(() => {});
    this.#queues.set(client, tail);
    void tail.then(() => {
      if (this.#queues.get(client) === tail) this.#queues.delete(client);
    });
    return run;
  }

  /**
   * Loads a version in the window again on one server (it lost it: restarted); concurrent calls
   * for the same server and name share one load. It runs in turn with the server's publishes
   * ({@linkcode AdapterSync.publish}), so a version that left the window meanwhile is not loaded.
   */
  #restore(client: RolloutClient, name: string): Promise<void> {
    const key = `${client.url} ${name}`;
    let running = this.#restoring.get(key);
    if (running === undefined) {
      running = this.#serial(client, async () => {
        if (!this.#loaded.some((x) => x.name === name)) {
          throw new RemoteEngineError(
            client.url,
            `cannot load adapter "${name}" again: it is no longer in the window (${
              JSON.stringify(this.loaded)
            })`,
            { retryable: false },
          );
        }
        const r = routes(client);
        // Tried again while no other server holds the version (the pool awaits this reload
        // then; otherwise retries would only hold up this server's next publish), and "already
        // loaded" at any try is a success: names are never reused, so it holds these weights.
        await this.#load(
          client,
          r.load,
          { lora_name: name, lora_path: this.#serverPath(name), ...r.extra },
          {
            alreadyLoaded: "any",
            retry: () => !this.#clients.some((c) => c !== client && c.servedAdapters?.has(name)),
          },
        );
        (client.servedAdapters ??= new Set()).add(name);
      }).finally(() => this.#restoring.delete(key));
      this.#restoring.set(key, running);
    }
    return running;
  }

  /**
   * Loads a version on one server, trying again after a retryable failure (`attempts`, with
   * doubling `backoffMs`) while `retry()` allows it and the synchronizer is open. An answer
   * "already loaded" (vLLM: "… has already been loaded", SGLang: "LoRA with name … already
   * exists") is a success at a later try (an earlier try that seemed to fail, a timeout, did
   * load it), and at any try with `alreadyLoaded: "any"` (a reload).
   */
  async #load(
    client: RolloutClient,
    path: string,
    body: { lora_name: string; lora_path: string },
    options: { alreadyLoaded?: "retry" | "any"; retry?: () => boolean } = {},
  ): Promise<void> {
    const attempts = this.#options.attempts ?? 4;
    const backoff = this.#options.backoffMs ?? 250;
    const retry = () => !this.#closed && (options.retry?.() ?? true);
    let last: unknown;
    for (let attempt = 0;; attempt++) {
      try {
        await client.request(path, body, { text: true });
        return;
      } catch (error) {
        last = error;
        const retryable = error instanceof RemoteEngineError && error.retryable;
        if (
          (attempt > 0 || options.alreadyLoaded === "any") && error instanceof RemoteEngineError &&
          error.status === 400 && error.message.includes(body.lora_name) &&
          /already been loaded|already exists/.test(error.message)
        ) return;
        if (!retryable || attempt + 1 >= attempts || !retry()) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, backoff * 2 ** attempt));
      if (!retry()) throw last; // another server loaded it during the backoff, or closed
    }
  }

  /**
   * Unloads from `client` the versions `unloaded` and those whose unload failed at an earlier
   * publish (run in the server's turn, through `#serial`), in parallel; at close (`last`) each
   * with `closeTimeoutMs` (at most the client's timeout) and a single try.
   *
   * @returns A warning per failed unload.
   */
  async #unload(
    client: RolloutClient,
    unloaded: readonly string[],
    last = false,
  ): Promise<string[]> {
    const tries = last ? 1 : this.#options.unloadTries ?? 3; // at close: no next publish
    const failures = this.#unloadFailures.get(client) ?? new Map<string, number>();
    for (const name of unloaded) if (!failures.has(name)) failures.set(name, 0);
    const warnings: string[] = [];
    const timeoutMs = last
      ? Math.min(this.#options.closeTimeoutMs ?? 5000, client.timeoutMs)
      : client.timeoutMs;
    const unloadOne = async (name: string, failed: number): Promise<void> => {
      failures.delete(name);
      if (!client.servedAdapters?.has(name)) return; // never loaded there, or lost (restart)
      try {
        await client.request(routes(client).unload, { lora_name: name }, { text: true, timeoutMs });
      } catch (error) {
        const notHeld = error instanceof RemoteEngineError && error.status !== undefined &&
          client.backend.unknownAdapter(error.status, error.message, name);
        if (!notHeld) {
          const message = (error as Error).message;
          if (failed + 1 < tries) {
            failures.set(name, failed + 1);
            warnings.push(
              `unloading adapter "${name}" failed (try ${failed + 1} of ${tries}; tried again ` +
                `at the next publish): ${message}`,
            );
          } else {
            warnings.push(
              `unloading adapter "${name}" failed ${
                last ? "at close" : `${tries} times`
              }; given up: it stays loaded on "${client.url}" (one of its --max-loras) until ` +
                `the server restarts: ${message}`,
            );
          }
          return;
        } // the server does not hold it (it restarted since)
      }
      client.servedAdapters.delete(name);
    };
    // Distinct names, so they may go at once (earlier publishes' failures first in the warnings).
    await Promise.all([...failures].map(([name, failed]) => unloadOne(name, failed)));
    if (failures.size > 0) this.#unloadFailures.set(client, failures);
    else this.#unloadFailures.delete(client);
    return warnings;
  }

  /**
   * Unloads from every server each version this synchronizer loaded there and still holds
   * (the window, and earlier unloads that failed), after the publishes in progress (awaited, so
   * what they load is unloaded too) and the server's loads and unloads in progress; all at once,
   * each with `closeTimeoutMs`; best effort: a failed unload is a warning, never an error, and
   * is not tried again. Later publishes are refused, and load retries in progress stop. Servers
   * keep unloaded versions' directories on disk.
   *
   * @returns A warning per failed unload.
   */
  async close(): Promise<string[]> {
    this.#closed = true;
    // A publish in progress finishes (its load retries stop, as the synchronizer is closed), and
    // what it loaded is unloaded with the rest.
    await Promise.allSettled([...this.#publishing]);
    const names = this.#loaded.map((x) => x.name);
    this.#loaded = []; // no reload starts them again
    const results = await Promise.all(
      this.#clients.map((c) =>
        this.#serial(c, () => this.#unload(c, names, true)).catch((error) => [
          `unloading adapters from "${c.url}" failed at close: ${(error as Error).message}`,
        ])
      ),
    );
    return results.flat();
  }

  /**
   * Unloads adapters another process left on the servers (it crashed before its close): each
   * server's models route is read, and every id it lists that `isStale` accepts is unloaded
   * (whatever its `parent`), except this synchronizer's own (`<prefix>-v<N>`). Best effort: a
   * list that cannot be read, or an unload that fails, is a warning; an unload answered "unknown
   * adapter" (gone meanwhile) is neither. vLLM lists its adapters; SGLang builds before
   * sglang#12229 (which include every build before sglang#11526, the ones whose
   * `--max-loaded-loras` is a hard limit) list only the base model, so their stale adapters
   * cannot be found: an SGLang server whose list holds no adapter is a warning (a build that
   * lists them may simply hold none) and counts as unchecked. Meant to run once at connect,
   * before the first publish.
   *
   * @param isStale Which listed names to unload; it must accept only names of this run's own
   *   scheme (an adapter of another live run on the same server would be unloaded: vLLM and
   *   SGLang then answer that run's requests "not loaded", and its pool reloads the version).
   * @param options Servers to skip (e.g. those that failed the preflight).
   * @returns What was unloaded, the servers not checked, and the warnings.
   */
  async unloadStale(
    isStale: (name: string) => boolean,
    options: UnloadStaleOptions = {},
  ): Promise<UnloadStaleResult> {
    const own = `${this.#options.prefix ?? "halo"}-v`;
    const result: UnloadStaleResult = { unloaded: [], unchecked: [], warnings: [] };
    const unchecked = (client: RolloutClient, why: string) => {
      result.unchecked.push(client.url);
      result.warnings.push(`did not unload stale adapters from "${client.url}": ${why}`);
    };
    await Promise.all(this.#clients.map((client) => {
      const skip = options.skip?.get(client.url);
      if (skip !== undefined) return unchecked(client, skip);
      return this.#serial(client, async () => {
        let names: string[];
        try {
          const listed = listedModels(await client.request(client.backend.modelsPath, null));
          const ours = listed.ids.filter((name) => isStale(name) || name.startsWith(own));
          if (client.backend.kind === "sglang" && listed.withParent === 0 && ours.length === 0) {
            return unchecked(
              client,
              `its ${client.backend.modelsPath} lists no LoRA adapters: SGLang builds before ` +
                `sglang#12229 do not list them, so stale ones cannot be found there (or this ` +
                `build lists them and holds none); if a crashed run left adapters on it, ` +
                `restart it or raise --max-loaded-loras`,
            );
          }
          names = ours.filter((name) => !name.startsWith(own));
        } catch (error) {
          return unchecked(client, `could not list its adapters: ${(error as Error).message}`);
        }
        await Promise.all(names.map(async (name) => {
          try {
            await client.request(routes(client).unload, { lora_name: name }, { text: true });
            result.unloaded.push({ server: client.url, name });
          } catch (error) {
            const gone = error instanceof RemoteEngineError && error.status !== undefined &&
              client.backend.unknownAdapter(error.status, error.message, name);
            if (!gone) {
              result.warnings.push(
                `unloading stale adapter "${name}" failed; it stays loaded on "${client.url}": ` +
                  (error as Error).message,
              );
            }
          }
        }));
      });
    }));
    return result;
  }

  /** The newest published version, or `null`. */
  get current(): { name: string; version: number } | null {
    return this.#loaded.at(-1) ?? null;
  }

  /** The versions loaded on the servers, oldest first. */
  get loaded(): string[] {
    return this.#loaded.map((x) => x.name);
  }

  /**
   * Writes version `version` with `write` (into a temporary directory, fsynced, renamed to
   * `<dir>/<prefix>-v<version>`), loads it on every server, then unloads the versions beyond
   * `keep` (and tries again the unloads that failed at earlier publishes).
   *
   * @param version The policy version; greater than every published one.
   * @param write Writes the PEFT adapter into the directory it is given.
   * @returns The new name and what was unloaded.
   * @throws {RangeError} When the version is not new, its directory exists, or the
   *   synchronizer is closed.
   * @throws {RemoteEngineError} When a server refuses it (HTTP 4xx) or no server loads it
   *   within `attempts` tries (naming each failed server); the previous version stays current.
   */
  publish(version: number, write: (dir: string) => Promise<void>): Promise<PublishResult> {
    const running = this.#publish(version, write);
    this.#publishing.add(running);
    const forget = () => void this.#publishing.delete(running);
    running.then(forget, forget);
    return running;
  }

  async #publish(version: number, write: (dir: string) => Promise<void>): Promise<PublishResult> {
    if (this.#closed) {
      throw new RangeError(`Cannot publish adapter version ${version}: the AdapterSync is closed`);
    }
    const last = this.current;
    if (!Number.isSafeInteger(version) || (last !== null && version <= last.version)) {
      throw new RangeError(
        `Cannot publish adapter version ${version}: versions must be integers that increase ` +
          `(a served name is never reused): the last one is ${last?.version ?? "none"}`,
      );
    }
    const name = `${this.#options.prefix ?? "halo"}-v${version}`;
    const path = join(this.#options.dir, name);
    const exists = await Deno.stat(path).then(() => true, () => false);
    if (exists) {
      throw new RangeError(`Cannot publish adapter "${name}": "${path}" already exists`);
    }
    await Deno.mkdir(this.#options.dir, { recursive: true });
    const tmp = await Deno.makeTempDir({ dir: this.#options.dir, prefix: `.${name}.` });
    try {
      await write(tmp);
      await syncTree(tmp);
      await Deno.rename(tmp, path);
    } catch (error) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw error;
    }
    const lora_path = this.#serverPath(name);
    // A server is tried again only while no other one has loaded the version: once one has, the
    // version is served, and a hung server would hold up every publish `attempts` timeouts long.
    let loadedSomewhere = false;
    const loads = await Promise.allSettled(this.#clients.map((c) => {
      const r = routes(c);
      return this.#serial(c, async () => {
        await this.#load(c, r.load, { lora_name: name, lora_path, ...r.extra }, {
          retry: () => !loadedSomewhere,
        });
        loadedSomewhere = true;
      });
    }));
    const failed = loads.flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
    const refused = failed.some((e) => !(e instanceof RemoteEngineError) || !e.retryable);
    if (failed.length === this.#clients.length || refused) {
      throw new RemoteEngineError(
        this.#clients.map((c) => c.url).join(", "),
        `adapter "${name}" failed to load on ${failed.length} of ${this.#clients.length} ` +
          `servers: ${failed.map((e) => e.message).join("; ")}`,
        { retryable: false },
      );
    }
    const warnings: string[] = [];
    loads.forEach((r, i) => {
      const client = this.#clients[i];
      client.servedAdapters ??= new Set();
      if (r.status === "fulfilled") client.servedAdapters.add(name);
      else {
        // Unreachable now: the pool sends it no requests for this version (servedAdapters),
        // and the next publish tries it again.
        warnings.push(`skipped: ${(r.reason as Error).message}`);
      }
    });
    this.#loaded.push({ name, version });
    const unloaded: string[] = [];
    while (this.#loaded.length > (this.#options.keep ?? 2)) {
      unloaded.push(this.#loaded.shift()!.name);
    }
    // Out of the window now, so no reload starts them again; each server unloads those it holds
    // when its turn comes (after a reload that was already running).
    const results = await Promise.all(
      this.#clients.map((c) => this.#serial(c, () => this.#unload(c, unloaded))),
    );
    warnings.push(...results.flat());
    return { name, version, path, unloaded, warnings };
  }
}
