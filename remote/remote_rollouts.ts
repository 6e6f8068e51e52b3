/**
 * The rollout source of a run whose `rl.rollout.backend` is an inference engine (`vllm`,
 * `sglang`, `llamacpp`), built from the run's config keys alone: a {@linkcode RolloutPool} over
 * `rl.rollout.servers` (preflight, timeouts, retries, failover), an {@linkcode AdapterSync} into
 * `rl.rollout.adapterDir`, and {@linkcode remoteSampleGroups} for the samples. `runRl` takes it
 * as `runRl(config, { rollouts: remoteRollouts() })`; `deno task train` passes it.
 *
 * At the start of step `s` the trainer's LoRA (the policy after step `s − 1`'s update; the host
 * parameters are first brought up to date with the device under `trainer.optimizer: device`) is
 * written as a PEFT directory `<adapterDir>/<prefix>-v<s>`, loaded on every server under that
 * name, and every rollout of the step is sampled from it: each group is pinned to one policy
 * version, and the servers hold the newest `stalenessWindow + 1` versions (older ones are
 * unloaded and their directories removed). The prefix is `rl.rollout.adapterPrefix` plus a
 * random tag per process, so a resumed run never reloads a served name (vLLM keys its prefix
 * cache by adapter name). When the run ends (or fails), `close()` unloads the versions this
 * process loaded from every server, best effort (a failure is a warning). A process killed
 * before that leaves its versions loaded: vLLM and SGLang builds with LRU eviction evict them
 * as needed, but SGLang built before sgl-project/sglang#11526 (Oct 2025) refuses loads beyond
 * `--max-loaded-loras`: restart such servers, or raise that limit, after a crashed run.
 * `rl.rollout.unloadStale` (opt-in) cannot help those builds: at connect it unloads the adapters
 * named `<adapterPrefix>-<6 hex>-v<N>` with another tag that a server's models route lists, and
 * SGLang lists adapters there only from sgl-project/sglang#12229 (after #11526), so on older
 * builds it finds none and warns. On vLLM and newer SGLang (which evict by LRU anyway) it
 * tidies the servers' adapter lists and frees what the stale adapters hold, and it also unloads
 * the adapters of a live run sharing the servers and the prefix (see the key's doc).
 *
 * @module
 */
import { basename, join } from "node:path";
import { runAdapters } from "../trainer/run_adapters.ts";
import type { RolloutSource, RolloutSourceFactory } from "../trainer/rl/rollout_source.ts";
import { AdapterSync } from "./adapter_sync.ts";
import { peftWriter } from "./peft_writer.ts";
import { remoteSampleGroups } from "./remote_sample_groups.ts";
import { RolloutClient } from "./rollout_client.ts";
import { RolloutPool } from "./rollout_pool.ts";
import { RemoteEngineError } from "./types.ts";

/**
 * Options of {@linkcode remoteRollouts}.
 *
 * @example Usage
 * ```ts
 * import type { RemoteRolloutsOptions } from "./remote_rollouts.ts";
 *
 * const options: RemoteRolloutsOptions = { fetch: globalThis.fetch };
 * ```
 */
export interface RemoteRolloutsOptions {
  /** The `fetch` to use (tests route it to in-process servers); default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** The tag after `rl.rollout.adapterPrefix` (tests); default 6 random hex digits. */
  tag?: string;
  /**
   * Where the warnings of `close()` go (the run has no step left to report them); default
   * `console.warn`.
   */
  onCloseWarning?: (message: string) => void;
}

function randomTag(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The factory of a remote rollout source (see the module doc).
 *
 * @param options Test hooks.
 * @returns The factory `runRl` calls once the model is built.
 * @throws {RemoteEngineError} (from the factory) When no server passes the preflight, naming
 *   the key `rl.rollout.servers` and each server's error.
 * @throws {RangeError} (from the factory) When the run has no LoRA adapters, the engine cannot
 *   load adapters per name (llama.cpp), or `rl.rollout.apiKeyEnv` names an unset variable,
 *   naming the key.
 *
 * @example A run with rollouts from vLLM servers (needs running servers)
 * ```ts ignore
 * import { remoteRollouts } from "./remote_rollouts.ts";
 * import { runRl } from "../trainer/rl/run_rl.ts";
 * import { loadConfig } from "../cli/load_config.ts";
 *
 * const config = await loadConfig("configs/rl_remote_vllm.yaml");
 * await runRl(config, { rollouts: remoteRollouts() });
 * ```
 */
export function remoteRollouts(options: RemoteRolloutsOptions = {}): RolloutSourceFactory {
  return async (ctx): Promise<RolloutSource> => {
    const { config } = ctx;
    const r = config.rl.rollout;
    if (r.backend === "local") {
      throw new RangeError(
        `Cannot build remote rollouts: key "rl.rollout.backend" is "local" (halo's own sampler)`,
      );
    }
    const scratch = runAdapters(config, ctx.modelConfig);
    if (scratch === null || scratch.hilo) {
      throw new RangeError(
        `Cannot run RL: key "rl.rollout.backend" is "${r.backend}", which needs ` +
          `"adapters.kind" "lora" (engines serve plain PEFT LoRA only): current value is ` +
          `"${config.adapters.kind}"`,
      );
    }
    let apiKey: string | undefined;
    if (r.apiKeyEnv !== "") {
      apiKey = Deno.env.get(r.apiKeyEnv);
      if (!apiKey) {
        // The value is never shown, even when it looks like a variable name: a pasted key can
        // look like one too (upper case and digits), and the config shows the name anyway.
        throw new RangeError(
          /^[A-Z_][A-Z0-9_]*$/.test(r.apiKeyEnv)
            ? `Cannot run RL: the environment variable named by key "rl.rollout.apiKeyEnv" ` +
              `(${r.apiKeyEnv.length} characters, not shown) is not set (or empty): set it to ` +
              `the servers' API key. The key must hold the variable's NAME (e.g. ` +
              `"VLLM_API_KEY"), never the API key itself`
            : `Cannot run RL: key "rl.rollout.apiKeyEnv" must be the NAME of an environment ` +
              `variable that holds the servers' API key: its value (${r.apiKeyEnv.length} ` +
              `characters, not shown) is not a set variable, and looks like the key itself ` +
              `(variable names are upper case, digits and "_")`,
        );
      }
    }
    const clientOptions = {
      engine: r.backend,
      ...(apiKey !== undefined ? { apiKey } : {}),
      vocabSize: ctx.modelConfig.vocabSize,
      ...(r.model !== "" ? { model: r.model } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      timeoutMs: r.timeoutMs,
      choiceRetries: r.choiceRetries,
    };
    const poolOptions = {
      attempts: r.attempts,
      backoffMs: r.backoffMs,
      downMs: r.downMs,
      maxSeqsInFlight: r.maxSeqsInFlight,
    };
    let pool: RolloutPool;
    try {
      pool = r.preflight
        ? await RolloutPool.connect(r.servers, {
          ...clientOptions,
          ...poolOptions,
          probePromptIds: ctx.probePromptIds,
          eosTokenIds: ctx.eosTokenIds,
        })
        : new RolloutPool(r.servers.map((u) => new RolloutClient(u, clientOptions)), poolOptions);
    } catch (error) {
      throw new RemoteEngineError(
        r.servers.join(", "),
        `cannot connect the servers of key "rl.rollout.servers": ${(error as Error).message}`,
        { retryable: false, cause: error },
      );
    }
    let adapters: AdapterSync;
    const tag = options.tag ?? randomTag();
    try {
      adapters = new AdapterSync(pool.clients, {
        dir: r.adapterDir,
        prefix: `${r.adapterPrefix}-${tag}`,
        keep: r.stalenessWindow + 1,
        attempts: r.attempts,
        backoffMs: r.backoffMs,
        serverPath: r.serverAdapterDir === ""
          ? undefined
          : (path) => join(r.serverAdapterDir, basename(path)), // <adapterDir>/<name>
      });
    } catch (error) {
      throw new RangeError(
        `Cannot run RL: key "rl.rollout.backend" is "${r.backend}": ${(error as Error).message}`,
        { cause: error },
      );
    }
    const write = peftWriter(scratch, {
      baseModelNameOrPath: config.model.path,
      syncParams: ctx.syncParams,
    });
    let version = 0;
    const warnings: string[] = [];
    let stale = "";
    if (r.unloadStale) {
      // Only this prefix's per-process names, <adapterPrefix>-<6 hex>-v<N>; unloadStale leaves
      // this process's own tag alone.
      const escaped = r.adapterPrefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const scheme = new RegExp(`^${escaped}-[0-9a-f]{6}-v\\d+$`);
      // Servers that failed the preflight (just now: nothing else has run) are not queried: a
      // blackholed one would hold the connect for its whole timeoutMs.
      const skip = new Map(
        pool.states().filter((s) => s.failures > 0).map((s) => [
          s.url,
          `it failed the preflight at connect (${s.lastError})`,
        ]),
      );
      const found = await adapters.unloadStale((name) => scheme.test(name), { skip });
      for (const { server, name } of found.unloaded) {
        warnings.push(`unloaded stale adapter "${name}" from "${server}" (rl.rollout.unloadStale)`);
      }
      warnings.push(...found.warnings.map((w) => `rl.rollout.unloadStale: ${w}`));
      stale = `; unloaded ${found.unloaded.length} stale adapter(s)` +
        (found.unchecked.length > 0
          ? ` (${found.unchecked.length} server(s) not checked: see the warnings)`
          : "");
    }
    const sample = remoteSampleGroups(pool, {
      adapter: () => adapters.current?.name ?? null,
      policyVersion: () => version,
      onWarning: (message) => warnings.push(message),
    });
    const preflights = [...pool.preflights()].map(([url, p]) =>
      `${url} (${p.model}, max length ${p.maxModelLen ?? "?"}, ${p.logprobs} log-probs)`
    );
    return {
      description: `${r.backend} pool of ${r.servers.length} server(s)` +
        (preflights.length > 0 ? `: ${preflights.join(", ")}` : "") +
        `; adapters in ${r.adapterDir}, window ${r.stalenessWindow}${stale}` +
        (r.tis.enabled ? `; TIS cap ${r.tis.cap}` : ""),
      async beginStep(step) {
        const published = await adapters.publish(step, (dir) => write(ctx.backend, dir));
        version = step;
        warnings.push(...published.warnings);
        for (const name of published.unloaded) {
          await Deno.remove(join(r.adapterDir, name), { recursive: true }).catch((e) =>
            warnings.push(`could not remove "${join(r.adapterDir, name)}": ${e.message}`)
          );
        }
      },
      sampleGroups: sample,
      metrics: () => ({
        "rollout/policy_version": version,
        "rollout/servers_up": pool.states().filter((s) => s.up).length,
      }),
      takeWarnings: () => warnings.splice(0),
      // Unloads every version this process loaded (best effort, warnings only: close runs in
      // runRl's finally, and must not hide the run's own error).
      async close() {
        const warn = options.onCloseWarning ?? ((m: string) => console.warn(m));
        try {
          for (const w of await adapters.close()) warn(`rollouts: ${w}`);
        } catch (error) {
          warn(`rollouts: closing the adapter sync failed: ${(error as Error).message}`);
        }
      },
    };
  };
}
