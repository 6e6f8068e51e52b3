/**
 * A fake vLLM server backed by a halo model: the subset of vLLM's OpenAI-compatible protocol the
 * rollout client uses (`GET /v1/models`, `POST /v1/completions` with a token-id prompt,
 * `return_token_ids`, `return_tokens_as_token_ids`, `logprobs: 0`), answering with real samples
 * and log-probs of halo's `generate`. For tests and local runs without an inference engine; serve
 * it with `Deno.serve`.
 *
 * Like vLLM it reports `finish_reason: "stop"` for an EOS or a stop id (with `stop_reason` the
 * id, `null` for EOS) and `"length"` at `max_tokens`; `logprobsMode` mirrors vLLM's
 * `--logprobs-mode` (`raw_logprobs`: the model's log-softmax, `processed_logprobs`: after
 * temperature/top-k/top-p; `raw_logits` / `processed_logits`: the logits, or logits /
 * temperature, in place of log-probs, from `nextLogits`). Unknown or ill-typed fields are refused with HTTP 400 and vLLM's error
 * shape.
 *
 * @module
 */
import type { GenerateOptions, GenerateResult } from "../model/generate.ts";

/**
 * Options of {@linkcode fakeVllmHandler}.
 *
 * @example Usage
 * ```ts ignore
 * import type { FakeVllmOptions } from "./fake_vllm_server.ts";
 * import { generate } from "../model/generate.ts";
 * declare const model: import("../model/model.ts").Qwen3Model;
 * const options: FakeVllmOptions = {
 *   generate: (o) => generate(model, o), model: "arith", maxModelLen: 128,
 * };
 * ```
 */
export interface FakeVllmOptions {
  /** halo's generation (e.g. `(o) => generate(model, o)` or a train backend's `generate`). */
  generate: (options: GenerateOptions) => Promise<GenerateResult>;
  /** The served model id. */
  model: string;
  /** The context length it reports and enforces. */
  maxModelLen: number;
  /**
   * vLLM's `--logprobs-mode`; default `"raw_logprobs"` (vLLM's default). The logits modes need
   * `nextLogits` (every returned value, sampled or top, comes from it).
   */
  logprobsMode?: "raw_logprobs" | "processed_logprobs" | "raw_logits" | "processed_logits";
  /** Adapter names it serves besides the model (requests may name them; they sample the model). */
  adapters?: readonly string[];
  /**
   * Loads a PEFT adapter directory for `POST /v1/load_lora_adapter` (vLLM with
   * `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`) and returns its generator; without it the adapter
   * routes answer 404. vLLM's `PEFTHelper` applies one scale (`lora_alpha / r`) to every module
   * and ignores `rank_pattern` / `alpha_pattern`, which a loader such as halo's would honour: so
   * the fake refuses (HTTP 400) an `adapter_config.json` with a non-empty pattern, where vLLM would
   * silently serve a differently scaled adapter.
   */
  loadAdapter?: (path: string) => Promise<(options: GenerateOptions) => Promise<GenerateResult>>;
  /**
   * The base model's next-token logits after a sequence of token ids: with it, a request for the
   * base model with `logprobs: k > 0` gets `top_logprobs` (per position, the `k` most likely
   * tokens and the sampled one, as `"token_id:N"` keys: raw log_softmax(logits), or
   * log_softmax(logits / temperature) under `processed_logprobs`, without top-p/top-k); without
   * it (or for an adapter) `top_logprobs` is `null`.
   */
  nextLogits?: (ids: readonly number[]) => Promise<ArrayLike<number>>;
}

function logSoftmax(z: ArrayLike<number>, temperature: number): Float64Array {
  const out = Float64Array.from(z, (x) => x / temperature);
  let max = -Infinity;
  for (const x of out) max = Math.max(max, x);
  let sum = 0;
  for (const x of out) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return out.map((x) => x - lse);
}

const KNOWN = new Set([
  "model",
  "prompt",
  "n",
  "max_tokens",
  "min_tokens",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "repetition_penalty",
  "presence_penalty",
  "frequency_penalty",
  "seed",
  "stop",
  "stop_token_ids",
  "ignore_eos",
  "skip_special_tokens",
  "include_stop_str_in_output",
  "logprobs",
  "return_tokens_as_token_ids",
  "return_token_ids",
  "echo",
  "stream",
]);

function error(status: number, message: string): Response {
  return Response.json(
    { object: "error", message, type: "BadRequestError", param: null, code: status },
    { status },
  );
}

/** The non-empty `rank_pattern` / `alpha_pattern` of an adapter directory, or `null`. */
async function readPatterns(dir: string): Promise<string | null> {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
  } catch {
    return null; // the loader reports a missing or bad config
  }
  const found = (["rank_pattern", "alpha_pattern"] as const).filter((k) => {
    const v = config?.[k];
    return typeof v === "object" && v !== null && Object.keys(v).length > 0;
  });
  return found.length === 0
    ? null
    : found.map((k) => `${k} ${JSON.stringify(config[k])}`).join(" and ");
}

/**
 * A request handler speaking vLLM's completions protocol over halo's `generate`.
 *
 * @param options The generator, model id, context length, log-probs mode.
 * @returns The handler for `Deno.serve`.
 *
 * @example Serve the bundled arithmetic model on a random local port
 * ```ts ignore
 * import { fakeVllmHandler } from "./fake_vllm_server.ts";
 * import { loadModel } from "../model/load_model.ts";
 * import { generate } from "../model/generate.ts";
 *
 * const model = await loadModel("models/arithmetic-tiny", { backend: "cpu" });
 * const handler = fakeVllmHandler({
 *   generate: (o) => generate(model, o), model: "arith", maxModelLen: 128,
 * });
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0 }, handler);
 * console.log(server.addr);
 * ```
 */
export function fakeVllmHandler(options: FakeVllmOptions): (request: Request) => Promise<Response> {
  const generators = new Map<string, (o: GenerateOptions) => Promise<GenerateResult>>();
  for (const name of [options.model, ...(options.adapters ?? [])]) {
    generators.set(name, options.generate);
  }
  let counter = 0;
  return async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const served = [...generators.keys()];
    if (
      request.method === "POST" && options.loadAdapter &&
      (path === "/v1/load_lora_adapter" || path === "/v1/unload_lora_adapter")
    ) {
      // vllm/entrypoints/openai/models/serving.py: load_lora_adapter / unload_lora_adapter.
      const body = await request.json().catch(() => ({}));
      const name = body.lora_name;
      if (typeof name !== "string" || name === "" || name === options.model) {
        return error(400, `Expected "lora_name" of an adapter: got ${JSON.stringify(name)}`);
      }
      if (path === "/v1/unload_lora_adapter") {
        if (!generators.delete(name)) {
          return error(404, `The lora adapter '${name}' cannot be found.`);
        }
        return new Response(`Success: LoRA adapter '${name}' removed successfully.`);
      }
      if (generators.has(name) && body.load_inplace !== true) {
        return error(
          400,
          `The lora adapter '${name}' has already been loaded. If you want to load the ` +
            `adapter in place, set 'load_inplace' to True.`,
        );
      }
      const patterns = await readPatterns(String(body.lora_path));
      if (patterns !== null) {
        return error(
          400,
          `Loading lora ${name} failed: the fake applies vLLM's one-scale rule (PEFTHelper ` +
            `ignores rank_pattern/alpha_pattern), and the adapter has ${patterns}`,
        );
      }
      try {
        generators.set(name, await options.loadAdapter(String(body.lora_path)));
      } catch (e) {
        return error(400, `Loading lora ${name} failed: ${(e as Error).message}`);
      }
      return new Response(`Success: LoRA adapter '${name}' added successfully.`);
    }
    if (request.method === "GET" && path === "/v1/models") {
      return Response.json({
        object: "list",
        data: served.map((id) => ({
          id,
          object: "model",
          created: 0,
          owned_by: "vllm",
          root: options.model,
          parent: id === options.model ? null : options.model,
          max_model_len: options.maxModelLen,
        })),
      });
    }
    if (request.method !== "POST" || path !== "/v1/completions") {
      return error(404, `Not Found: ${request.method} ${path}`);
    }
    let body: Record<string, unknown>;
    try {
      body = await request.json();
    } catch {
      return error(400, "Expected a JSON body");
    }
    for (const key of Object.keys(body)) {
      if (!KNOWN.has(key)) return error(400, `Unsupported field "${key}" in the fake server`);
    }
    if (!served.includes(body.model as string)) {
      return error(404, `The model \`${body.model}\` does not exist.`);
    }
    const prompt = body.prompt;
    if (!Array.isArray(prompt) || prompt.length === 0 || !prompt.every(Number.isInteger)) {
      return error(400, "The fake server takes a prompt of token ids only");
    }
    const n = (body.n ?? 1) as number;
    const maxTokens = (body.max_tokens ?? 16) as number;
    if (prompt.length + maxTokens > options.maxModelLen) {
      return error(
        400,
        `This model's maximum context length is ${options.maxModelLen} tokens. However, you ` +
          `requested ${prompt.length + maxTokens} tokens`,
      );
    }
    const topK = (body.top_k ?? -1) as number;
    const stopIds = (body.stop_token_ids ?? []) as number[];
    let result: GenerateResult;
    try {
      result = await generators.get(body.model as string)!({
        prompts: Array.from({ length: n }, () => prompt as number[]),
        maxNewTokens: maxTokens,
        temperature: (body.temperature ?? 1) as number,
        topP: (body.top_p ?? 1) as number,
        topK: topK < 0 ? 0 : topK,
        minP: (body.min_p ?? 0) as number,
        seed: (body.seed ?? 0) as number,
        stopTokenIds: stopIds,
      });
    } catch (e) {
      return error(500, `Generation failed: ${(e as Error).message}`);
    }
    const mode = options.logprobsMode ?? "raw_logprobs";
    const processed = mode.startsWith("processed");
    const logits = mode.endsWith("logits");
    if (logits && !options.nextLogits) {
      return error(500, `The fake server needs "nextLogits" for --logprobs-mode ${mode}`);
    }
    const withLogprobs = body.logprobs !== undefined && body.logprobs !== null;
    const top = Number(body.logprobs ?? 0);
    const temperature = processed ? (body.temperature ?? 1) as number : 1;
    /** What vLLM returns as the log-probs after `ids`, per token id. */
    const values = async (ids: readonly number[]) => {
      const z = await options.nextLogits!(ids);
      return logits ? Float64Array.from(z, (x) => x / temperature) : logSoftmax(z, temperature);
    };
    const tokenValues = (tokens: readonly number[]) =>
      Promise.all(
        tokens.map(async (t, i) =>
          (await values([...prompt as number[], ...tokens.slice(0, i)]))[t]
        ),
      );
    const topLogprobs = async (tokens: readonly number[]) => {
      if (!(top > 0) || !options.nextLogits || body.model !== options.model) return null;
      return await Promise.all(tokens.map(async (token, i) => {
        const lp = await values([...prompt as number[], ...tokens.slice(0, i)]);
        const ids = [...lp.keys()].sort((a, b) => lp[b] - lp[a]).slice(0, top);
        if (!ids.includes(token)) ids.push(token);
        return Object.fromEntries(ids.map((id) => [`token_id:${id}`, Math.max(lp[id], -9999)]));
      }));
    };
    const tops = await Promise.all(result.sequences.map((s) => topLogprobs(s.tokens)));
    const logitValues = logits
      ? await Promise.all(result.sequences.map((s) => tokenValues(s.tokens)))
      : null;
    const choices = result.sequences.map((s, index) => {
      const lps = logitValues?.[index] ?? Array.from(processed ? s.logprobs : s.modelLogprobs);
      const last = s.tokens[s.tokens.length - 1];
      return {
        index,
        text: s.tokens.map((t) => `<${t}>`).join(""),
        logprobs: withLogprobs
          ? {
            text_offset: s.tokens.map((_, i) => 3 * i),
            token_logprobs: lps,
            tokens: s.tokens.map((t) =>
              body.return_tokens_as_token_ids ? `token_id:${t}` : `<${t}>`
            ),
            top_logprobs: tops[index],
          }
          : null,
        finish_reason: s.stopReason === "length" ? "length" : "stop",
        stop_reason: s.stopReason === "stop" ? last : null,
        ...(body.return_token_ids ? { token_ids: s.tokens, prompt_token_ids: prompt } : {}),
      };
    });
    const completion = choices.reduce((a, c) => a + (c.token_ids?.length ?? 0), 0);
    return Response.json({
      id: `cmpl-fake-${counter++}`,
      object: "text_completion",
      created: 0,
      model: body.model,
      choices,
      usage: {
        prompt_tokens: prompt.length,
        completion_tokens: completion,
        total_tokens: prompt.length + completion,
      },
    });
  };
}
