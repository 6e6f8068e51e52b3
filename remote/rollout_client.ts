/**
 * A rollout client for one inference server on `fetch`: sends {@linkcode RolloutRequest}s in the
 * server's protocol (vLLM, SGLang or llama.cpp), validates every choice and re-requests the bad
 * ones, and runs the connect-time preflight (models, context length, raw vs processed log-probs).
 * Transport failures (network, timeout, HTTP 5xx/429) are thrown as retryable
 * {@linkcode RemoteEngineError}s for the pool to route elsewhere.
 *
 * @module
 */
import type { EngineBackend, EngineKind, ServedModels } from "./engine_backend.ts";
import { llamacppBackend } from "./llamacpp_backend.ts";
import { sglangBackend } from "./sglang_backend.ts";
import { RemoteEngineError, type RolloutChoice, type RolloutRequest } from "./types.ts";
import { validateChoice } from "./validate_choice.ts";
import { vllmBackend } from "./vllm_backend.ts";

const BACKENDS: Record<EngineKind, EngineBackend> = {
  vllm: vllmBackend,
  sglang: sglangBackend,
  llamacpp: llamacppBackend,
};

/**
 * Options of {@linkcode RolloutClient}.
 *
 * @example Usage
 * ```ts
 * import type { RolloutClientOptions } from "./rollout_client.ts";
 *
 * const options: RolloutClientOptions = { engine: "vllm", vocabSize: 151936, timeoutMs: 60_000 };
 * ```
 */
export interface RolloutClientOptions {
  /** The server's protocol (a kind or a backend object). */
  engine: EngineKind | EngineBackend;
  /** halo's vocabulary size: every returned id must be below it. */
  vocabSize: number;
  /** The served base model's id; default the first id of the models route (read by preflight). */
  model?: string;
  /** The `fetch` to use (tests route it to in-process servers); default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /**
   * Milliseconds per HTTP request before it is aborted; default 120 000. A completion request
   * gets `timeoutPerTokenMs` more per requested token (`maxTokens`), since a long chain of
   * thought takes that many decode steps.
   */
  timeoutMs?: number;
  /** Extra milliseconds of a completion request's timeout per requested token; default 50. */
  timeoutPerTokenMs?: number;
  /** Re-requests of bad choices before giving up on the request; default 2. */
  choiceRetries?: number;
  /** A bearer token (vLLM/SGLang `--api-key`). */
  apiKey?: string;
}

/**
 * What the preflight found.
 *
 * @example Usage
 * ```ts
 * import type { PreflightResult } from "./rollout_client.ts";
 *
 * const found: PreflightResult = {
 *   models: ["base"], model: "base", maxModelLen: 128, logprobs: "raw",
 * };
 * ```
 */
export interface PreflightResult extends ServedModels {
  /** The base model the client sends requests for. */
  model: string;
  /**
   * The probe's verdict. The probe reads the log-probs of the 20 most likely tokens (or the
   * server's smaller vLLM `--max-logprobs`) after the probe prompt at temperatures 1 and 0.5,
   * and compares the gap between the most and the least likely of those read at both: `"raw"` when the gap stays the same (ratio within 1 ± 0.25:
   * vLLM's default `--logprobs-mode raw_logprobs`, llama.cpp), `"processed"` when it doubles
   * (ratio within 2 ± 0.4: log_softmax(logits / T), vLLM `processed_logprobs`, SGLang),
   * `"unknown"` otherwise: no probe, top log-probs missing, a gap under 1 nat at temperature 1
   * (too small against cross-request noise), or a ratio in neither band. A server whose top
   * values are logits (vLLM `raw_logits` / `processed_logits`: their probabilities sum past 1)
   * fails the preflight instead.
   */
  logprobs: "raw" | "processed" | "unknown";
  /** What the probe measured, or why it could not tell; absent without a probe. */
  probe?: string;
}

/**
 * Options of {@linkcode RolloutClient.preflight}.
 *
 * @example Usage
 * ```ts
 * import type { PreflightOptions } from "./rollout_client.ts";
 *
 * const options: PreflightOptions = { probePromptIds: [1, 2, 3], eosTokenIds: [54] };
 * ```
 */
export interface PreflightOptions {
  /** A prompt for the log-probs probe; no probe without it. */
  probePromptIds?: readonly number[];
  /** EOS ids of the probe's requests; default none. */
  eosTokenIds?: readonly number[];
}

/**
 * How many of the most likely tokens the preflight probe reads: 20, vLLM's default
 * `--max-logprobs` (a request past it is refused: "Requested sample logprobs of N, which is
 * greater than max allowed: 20"); SGLang's `top_logprobs_num` and llama.cpp's `n_probs` have no
 * such cap. With the top 5, a flat first position (five plausible openings) often spread under
 * the 1 nat the probe needs, and a run at T ≠ 1 was refused; between the 1st and the 20th the
 * gap is almost never that small.
 */
const PROBE_TOP = 20;
/** The least log-prob gap at temperature 1 the probe compares (nat). */
const PROBE_MIN_GAP = 1;
/**
 * The most the log-sum-exp of the probe's top log-probs may exceed 0 (nat): log-probs of one
 * distribution sum to at most probability 1 (log-sum-exp ≤ 0, up to float32 rounding, ~1e-6);
 * logits do not (vLLM's `--logprobs-mode raw_logits` / `processed_logits`).
 */
const PROBE_LOGITS_TOLERANCE = 0.1;

/**
 * vLLM's stand-in for a log-prob of −∞ (it clamps log-probs at −9999 in its answers): values at
 * or below it count as absent in the probe.
 */
const VLLM_LOGPROB_FLOOR = -9999;

/** Whether a probe value is a log-prob the probe may compare (finite and above vLLM's −9999). */
function isProbeValue(x: number | undefined): x is number {
  return x !== undefined && Number.isFinite(x) && x > VLLM_LOGPROB_FLOOR;
}

/**
 * Why the probe's top values at one temperature are logits rather than log-probs (their
 * probabilities sum past 1), or `null`. Logits whose top-k log-sum-exp is at most 0.1 (all well
 * below zero) pass: no single answer can tell them from log-probs.
 */
function logitsProblem(values: Map<number, number>, temperature: number): string | null {
  const finite = [...values.values()].filter(isProbeValue);
  if (finite.length === 0) return null;
  const max = Math.max(...finite);
  const lse = max + Math.log(finite.reduce((a, x) => a + Math.exp(x - max), 0));
  if (!(lse > PROBE_LOGITS_TOLERANCE)) return null;
  return `the top ${finite.length} values it returned at temperature ${temperature} are not ` +
    `log-probs: the largest is ${max.toFixed(3)} and their log-sum-exp ${lse.toFixed(3)} nat ` +
    `(log-probs of one distribution: ≤ 0, their probabilities sum to at most 1)`;
}

/**
 * The probe's verdict from the top log-probs at temperatures 1 and 0.5. The gap between two
 * tokens' log-probs does not depend on the normaliser: raw log-probs give the same gap at both
 * temperatures, processed ones (log_softmax(z / T)) twice the gap at 0.5. The two tokens are the
 * most and the least likely at temperature 1 among those read at both temperatures; a gap of at
 * least 1 nat keeps the ratio within ±0.25 of 1 or 2 under cross-request noise of ±0.05 nat per
 * log-prob (prefix-cache hits, batch shapes: vllm#5543).
 */
function logprobsKind(
  at1: Map<number, number> | string,
  atHalf: Map<number, number> | string,
  top: number,
): { kind: PreflightResult["logprobs"]; probe: string } {
  if (typeof at1 === "string" || typeof atHalf === "string") {
    return { kind: "unknown", probe: `the top log-probs could not be read: ${at1}; ${atHalf}` };
  }
  // vLLM's −9999 (a token masked at both temperatures) is −∞, not a log-prob: its gap to the top
  // token (~9998 nat at both) would read as ratio 1, "raw", whatever the server returns.
  const common = [...at1.keys()].filter((id) =>
    isProbeValue(at1.get(id)) && isProbeValue(atHalf.get(id))
  );
  if (common.length < 2) {
    return {
      kind: "unknown",
      probe: `fewer than 2 tokens among the top ${top} at both temperatures ` +
        `(${common.length})`,
    };
  }
  common.sort((a, b) => at1.get(b)! - at1.get(a)!);
  const [hi, lo] = [common[0], common.at(-1)!];
  const gap1 = at1.get(hi)! - at1.get(lo)!;
  const gapHalf = atHalf.get(hi)! - atHalf.get(lo)!;
  const ratio = gapHalf / gap1;
  const probe = `log-prob gap of tokens ${hi} and ${lo}: ${gap1.toFixed(3)} nat at ` +
    `temperature 1, ${gapHalf.toFixed(3)} at 0.5 (ratio ${ratio.toFixed(3)}; raw 1, processed 2)`;
  if (!(gap1 >= PROBE_MIN_GAP)) {
    return {
      kind: "unknown",
      probe: `${probe}: the gap at temperature 1 is under ${PROBE_MIN_GAP} nat, too small to tell`,
    };
  }
  if (Math.abs(ratio - 1) <= 0.25) return { kind: "raw", probe };
  if (Math.abs(ratio - 2) <= 0.4) return { kind: "processed", probe };
  return { kind: "unknown", probe: `${probe}: neither` };
}

/** A seed for re-request `attempt` of a request seeded `seed` (a non-negative 31-bit integer). */
function retrySeed(seed: number, attempt: number): number {
  if (attempt === 0) return seed;
  let h = (seed ^ Math.imul(attempt, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) & 0x7fffffff;
}

function checkRequest(r: RolloutRequest): void {
  const problems: string[] = [];
  if (r.promptIds.length === 0) problems.push("promptIds must not be empty");
  if (!Number.isInteger(r.n) || r.n < 1) problems.push(`n must be an integer ≥ 1: got ${r.n}`);
  if (!Number.isInteger(r.maxTokens) || r.maxTokens < 1) {
    problems.push(`maxTokens must be an integer ≥ 1: got ${r.maxTokens}`);
  }
  if (!(r.temperature > 0)) problems.push(`temperature must be > 0: got ${r.temperature}`);
  if (!(r.topP > 0 && r.topP <= 1)) problems.push(`topP must be in (0, 1]: got ${r.topP}`);
  if (!Number.isInteger(r.topK) || r.topK < 0) problems.push(`topK must be ≥ 0: got ${r.topK}`);
  if (!Number.isSafeInteger(r.seed) || r.seed < 0) {
    problems.push(`seed must be a non-negative integer: got ${r.seed}`);
  }
  if (problems.length > 0) {
    throw new RangeError(`Cannot send the rollout request: ${problems.join("; ")}`);
  }
}

/**
 * A client of one inference server.
 *
 * @example Two samples from a vLLM server (needs a running server)
 * ```ts ignore
 * import { RolloutClient } from "./rollout_client.ts";
 *
 * const client = new RolloutClient("http://127.0.0.1:8000", { engine: "vllm", vocabSize: 151936 });
 * console.log(await client.preflight({ probePromptIds: [9707, 11], eosTokenIds: [151645] }));
 * const choices = await client.generate({
 *   promptIds: [9707, 11], n: 2, maxTokens: 32, temperature: 1, topP: 1, topK: 0, seed: 1,
 *   stopTokenIds: [], eosTokenIds: [151645], adapter: null, policyVersion: 0,
 * });
 * console.log(choices[0].tokenIds, choices[0].samplerLogprobs);
 * ```
 */
export class RolloutClient {
  /** The server's base URL (no trailing slash). */
  readonly url: string;
  /** The server's protocol. */
  readonly backend: EngineBackend;
  /** What the last preflight found, or `null`. */
  preflightResult: PreflightResult | null = null;
  /**
   * The adapters this server holds, as {@linkcode AdapterSync} loaded them; `null` (default):
   * not tracked, so the pool sends it requests for any adapter.
   */
  servedAdapters: Set<string> | null = null;
  /**
   * Loads a tracked adapter again on this server (set by {@linkcode AdapterSync}): the pool calls
   * it when the server answers that it lost an adapter it held (a restarted server lost it); `null`
   * (default): none.
   */
  restoreAdapter: ((name: string) => Promise<void>) | null = null;
  #options: RolloutClientOptions;
  #fetch: typeof fetch;
  #outstanding = 0;

  /**
   * Makes a client of one server.
   *
   * @param url The server's base URL, e.g. `"http://10.0.0.5:8000"`.
   * @param options Protocol, vocabulary size, transport.
   */
  constructor(url: string, options: RolloutClientOptions) {
    this.url = url.replace(/\/+$/, "");
    this.backend = typeof options.engine === "string" ? BACKENDS[options.engine] : options.engine;
    if (this.backend === undefined) {
      throw new RangeError(
        `Cannot create a rollout client: engine must be "vllm", "sglang" or "llamacpp": ` +
          `current value is "${options.engine}"`,
      );
    }
    this.#options = options;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** Milliseconds an HTTP request may take before it is aborted (`timeoutMs`, default 120 000). */
  get timeoutMs(): number {
    return this.#options.timeoutMs ?? 120_000;
  }

  /** Requests in flight on this server. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /**
   * Sends one HTTP request and returns the parsed JSON body (or the text, with `text: true`).
   *
   * @param path The path.
   * @param body The JSON body of a POST, or `null` for a GET.
   * @param options `signal` aborts the request; `text: true` returns the body unparsed (vLLM's
   *   adapter routes answer plain text); `timeoutMs` replaces the client's.
   * @returns The parsed body, or its text.
   * @throws {RemoteEngineError} On a network error, timeout, HTTP error or a non-JSON body.
   */
  async request(
    path: string,
    body: unknown,
    options: { signal?: AbortSignal; text?: boolean; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const signal = options.signal;
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs ?? 120_000;
    const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#options.apiKey) headers.authorization = `Bearer ${this.#options.apiKey}`;
    const where = `${body === null ? "GET" : "POST"} ${path}`;
    this.#outstanding++;
    try {
      let response: Response;
      try {
        response = await this.#fetch(`${this.url}${path}`, {
          method: body === null ? "GET" : "POST",
          headers,
          body: body === null ? undefined : JSON.stringify(body),
          signal: AbortSignal.any(signals),
        });
      } catch (error) {
        const e = error as Error;
        const what = e.name === "TimeoutError"
          ? `no answer to ${where} within ${timeoutMs} ms`
          : `${where} failed: ${e.message}`;
        throw new RemoteEngineError(this.url, what, { retryable: true, cause: error });
      }
      const text = await response.text().catch((error) => {
        throw new RemoteEngineError(this.url, `${where}: reading the body failed`, {
          retryable: true,
          cause: error,
        });
      });
      if (!response.ok) {
        const retryable = response.status >= 500 || response.status === 429;
        throw new RemoteEngineError(
          this.url,
          `${where} answered HTTP ${response.status}: ${text.slice(0, 300)}`,
          { retryable, status: response.status },
        );
      }
      if (options.text) return text;
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new RemoteEngineError(
          this.url,
          `${where}: expected a JSON body: got ${JSON.stringify(text.slice(0, 80))}`,
          { retryable: true, cause: error },
        );
      }
    } finally {
      this.#outstanding--;
    }
  }

  /**
   * Reads the models route (and picks the base model), then, given a probe prompt, asks for one
   * token at temperatures 1 and 0.5 with the log-probs of the 20 most likely tokens (fewer when
   * a vLLM answers that its `--max-logprobs` is smaller), and compares the log-prob gap between
   * two of them (see {@linkcode PreflightResult.logprobs}).
   *
   * @param options The probe's prompt and EOS ids.
   * @returns What was found (also kept as `preflightResult`).
   * @throws {RemoteEngineError} When the server cannot be reached, does not serve the
   *   configured model, refuses the probe, or answers it with logits instead of log-probs
   *   (vLLM's `--logprobs-mode raw_logits` / `processed_logits`: the top values' probabilities
   *   sum past 1, log-sum-exp > 0.1 nat; not retryable).
   */
  async preflight(options: PreflightOptions = {}): Promise<PreflightResult> {
    let served: ServedModels;
    try {
      served = this.backend.parseModels(await this.request(this.backend.modelsPath, null));
    } catch (error) {
      if (error instanceof RemoteEngineError) throw error;
      throw new RemoteEngineError(this.url, (error as Error).message, { retryable: false });
    }
    const model = this.#options.model ?? served.models[0];
    if (model === undefined || !served.models.includes(model)) {
      throw new RemoteEngineError(
        this.url,
        `expected model "${model ?? "(any)"}" in ${this.backend.modelsPath}: the server ` +
          `serves ${JSON.stringify(served.models)}`,
        { retryable: false },
      );
    }
    this.preflightResult = { ...served, model, logprobs: "unknown" };
    if (options.probePromptIds !== undefined) {
      let top = PROBE_TOP;
      const probe = async (temperature: number): Promise<Map<number, number> | string> => {
        const request: RolloutRequest = {
          promptIds: options.probePromptIds!,
          n: 1,
          maxTokens: 1,
          temperature,
          topP: 1,
          topK: 0,
          seed: 12345,
          stopTokenIds: [],
          eosTokenIds: options.eosTokenIds ?? [],
          adapter: null,
          policyVersion: -1,
        };
        checkRequest(request);
        const { path, body } = this.backend.probeRequest(request, model, top);
        try {
          return this.backend.parseProbe(await this.request(path, body));
        } catch (error) {
          // A vLLM started with a smaller --max-logprobs: "… greater than max allowed: M".
          const allowed = error instanceof RemoteEngineError && error.status === 400
            ? /greater than max allowed: (\d+)/.exec(error.message)
            : null;
          if (allowed === null || !(Number(allowed[1]) >= 2 && Number(allowed[1]) < top)) {
            throw error;
          }
          top = Number(allowed[1]);
          return await probe(temperature);
        }
      };
      const [at1, atHalf] = [await probe(1), await probe(0.5)];
      for (const [values, temperature] of [[at1, 1], [atHalf, 0.5]] as const) {
        const problem = typeof values === "string" ? null : logitsProblem(values, temperature);
        if (problem === null) continue;
        this.preflightResult = null;
        throw new RemoteEngineError(
          this.url,
          `the preflight probe found logits where log-probs belong: ${problem}. Its sampled ` +
            `tokens' "log-probs" would be logits too, and as halo's old log-probs they would ` +
            `break every importance ratio: ` + (this.backend.kind === "vllm"
              ? `start vLLM with --logprobs-mode raw_logprobs (the default; rollouts at ` +
                `temperature 1) or processed_logprobs (any temperature, no top-p/top-k), not ` +
                `raw_logits or processed_logits`
              : `the server must return log-probs`),
          { retryable: false },
        );
      }
      const { kind, probe: why } = logprobsKind(at1, atHalf, top);
      this.preflightResult.logprobs = kind;
      this.preflightResult.probe = why;
    }
    return this.preflightResult;
  }

  /**
   * Generates `request.n` samples of one prompt in one request; choices that fail validation
   * are re-requested (fresh seeds derived from the request's) up to `choiceRetries` times.
   *
   * @param request The rollout request.
   * @param signal Aborts the HTTP requests.
   * @returns `request.n` validated choices, in order.
   * @throws {RangeError} When the request itself is invalid, or does not fit the server's context.
   * @throws {RemoteEngineError} On transport errors, or choices still bad after the retries.
   */
  async generate(request: RolloutRequest, signal?: AbortSignal): Promise<RolloutChoice[]> {
    checkRequest(request);
    const maxModelLen = this.preflightResult?.maxModelLen;
    if (maxModelLen !== undefined && request.promptIds.length + request.maxTokens > maxModelLen) {
      throw new RangeError(
        `Cannot send the rollout request to "${this.url}": prompt (${request.promptIds.length}) ` +
          `+ maxTokens (${request.maxTokens}) must fit the server's max length ${maxModelLen}`,
      );
    }
    const model = this.preflightResult?.model ?? this.#options.model;
    if (model === undefined) {
      throw new RangeError(
        `Cannot send the rollout request to "${this.url}": no model: pass "model" or run preflight()`,
      );
    }
    const found = this.preflightResult?.logprobs;
    if (found === "processed" && (request.topP !== 1 || request.topK !== 0)) {
      throw new RangeError(
        `Cannot send the rollout request to "${this.url}": it reports processed log-probs, but ` +
          `the request truncates (top-p ${request.topP}, top-k ${request.topK}) and halo's old ` +
          `log-probs are those of softmax(logits / temperature) without truncation`,
      );
    }
    if (found === "raw" && request.temperature !== 1) {
      throw new RangeError(
        `Cannot send the rollout request to "${this.url}": it reports raw log-probs, but the ` +
          `request samples at temperature ${request.temperature} (start vLLM with ` +
          `--logprobs-mode processed_logprobs, or sample at temperature 1)`,
      );
    }
    const timeoutMs = (this.#options.timeoutMs ?? 120_000) +
      (this.#options.timeoutPerTokenMs ?? 50) * request.maxTokens;
    const out: (RolloutChoice | undefined)[] = new Array(request.n).fill(undefined);
    const problems: string[] = [];
    const retries = this.#options.choiceRetries ?? 2;
    for (let attempt = 0;; attempt++) {
      const missing = out.flatMap((c, i) => (c === undefined ? [i] : []));
      if (missing.length === 0) return out as RolloutChoice[];
      if (attempt > retries) {
        throw new RemoteEngineError(
          this.url,
          `${missing.length} of ${request.n} choices were still bad after ${attempt} requests: ` +
            problems.slice(-3).join("; "),
          { retryable: true },
        );
      }
      const sub = { ...request, n: missing.length, seed: retrySeed(request.seed, attempt) };
      const { path, body } = this.backend.completionRequest(sub, model);
      const json = await this.request(path, body, { signal, timeoutMs });
      let raws: (ReturnType<EngineBackend["parseCompletion"]>[number])[];
      try {
        raws = this.backend.parseCompletion(json, sub);
      } catch (error) {
        problems.push((error as Error).message);
        continue;
      }
      missing.forEach((slot, j) => {
        const raw = raws[j];
        if (raw === undefined) {
          problems.push(`choice ${j}: expected ${sub.n} choices: got ${raws.length}`);
          return;
        }
        const checked = typeof raw === "string"
          ? raw
          : validateChoice(raw, request, { vocabSize: this.#options.vocabSize, maxModelLen });
        if (typeof checked === "string") problems.push(`choice ${j}: ${checked}`);
        else out[slot] = checked;
      });
    }
  }
}
