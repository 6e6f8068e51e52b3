/**
 * The demo job: load a Qwen3 model directory (default: the random test fixture
 * `tests/fixtures/qwen3-tiny`; a run's `final/`), an adapter directory (a LoRA/HILO run's
 * `final/`) or a checkpoint `<run>/step_NNNNNN/` on its base model, run one forward pass, report
 * the perplexity of a sequence and greedy-decode a few tokens.
 *
 *   deno task demo [--model DIR] [--backend webgpu|cpu|auto] [--tokens N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadModelOrCheckpoint } from "../trainer/checkpoint_model.ts";

const USAGE = "usage: deno task demo [--model DIR] [--backend webgpu|cpu|auto] [--tokens N]";

/** `--help`: the usage, then what each option does. */
const HELP = `${USAGE}

Loads a model, runs one forward pass (the perplexity of a fixed 32-token sequence) and greedy-decodes
a few tokens: a quick check that a model and a backend work.

Options:
  --model DIR          model directory (default tests/fixtures/qwen3-tiny, random weights), adapter
                       directory (a LoRA/HILO run's final/) or checkpoint out/<run>/step_NNNNNN/
  --backend B          webgpu | cpu | auto (default auto: WebGPU when a GPU is found, else the CPU)
  --tokens N           tokens to decode greedily (default 12)
  -h, --help           print this help`;

/**
 * Runs the demo with command-line arguments.
 *
 * @param args The arguments (without the program name).
 * @returns Nothing; prints the report.
 *
 * @example Run on the CPU backend
 * ```ts ignore
 * import { main } from "./demo.ts";
 * await main(["--backend", "cpu", "--tokens", "4"]);
 * ```
 */
export async function main(args: string[]): Promise<void> {
  const options = parseDemoArgs(args);
  if (options !== null) await runDemo(options);
}

/** The demo's options. */
interface DemoOptions {
  model: string;
  backend: "webgpu" | "cpu" | "auto";
  newTokens: number;
}

/**
 * The command line's options, or `null` after `--help` (the usage printed). Its errors are those
 * the usage is printed after.
 */
function parseDemoArgs(args: string[]): DemoOptions | null {
  const { values } = parseArgs({
    args,
    options: {
      model: {
        type: "string",
        default: new URL("../tests/fixtures/qwen3-tiny", import.meta.url).pathname,
      },
      backend: { type: "string", default: "auto" },
      tokens: { type: "string", default: "12" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const newTokens = Number(values.tokens);
  if (!Number.isInteger(newTokens) || newTokens < 1) {
    throw new RangeError(
      `Cannot run the demo: --tokens must be a positive integer: current value is "${values.tokens}"`,
    );
  }
  return {
    model: values.model,
    backend: values.backend as "webgpu" | "cpu" | "auto",
    newTokens,
  };
}

/** The demo proper: its failures (a model that cannot load, a GPU error) print no usage. */
async function runDemo({ model: dir, backend, newTokens }: DemoOptions): Promise<void> {
  const { model } = await loadModelOrCheckpoint(dir, {
    backend,
    warn: true,
    what: `Cannot run the demo: --model "${dir}"`,
  });
  const c = model.config;
  console.log(`model: ${dir}`);
  console.log(
    `  ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, ${c.numAttentionHeads}/${c.numKeyValueHeads} heads of ` +
      `${c.headDim}, MLP ${c.intermediateSize}, vocab ${c.vocabSize}`,
  );
  console.log(`backend: ${model.backend} on ${model.device}`);

  // Perplexity of a deterministic pseudo-random sequence (the bundled model is random weights, so
  // expect about the vocabulary size).
  const seq = Array.from({ length: 32 }, (_, t) => (t * 37 + 11) % c.vocabSize);
  let t0 = performance.now();
  const { logprobs } = await model.tokenLogprobs({ inputIds: [seq] });
  const nll = -logprobs.reduce((a, b) => a + b, 0) / logprobs.length;
  console.log(
    `forward: ${seq.length} tokens in ${(performance.now() - t0).toFixed(1)} ms, ` +
      `perplexity ${Math.exp(nll).toFixed(2)} (vocab ${c.vocabSize})`,
  );

  // Greedy decoding by full re-computation (batched GPU generation with a KV cache lives in
  // model/generate.ts).
  const ids = seq.slice(0, 6);
  t0 = performance.now();
  for (let i = 0; i < newTokens && ids.length < c.maxPositionEmbeddings; i++) {
    const { logits } = await model.forward({ inputIds: [ids] });
    const last = logits.subarray((ids.length - 1) * c.vocabSize, ids.length * c.vocabSize);
    let best = 0;
    for (let j = 1; j < last.length; j++) if (last[j] > last[best]) best = j;
    ids.push(best);
    if (c.eosTokenIds.includes(best)) break;
  }
  console.log(
    `greedy: prompt [${seq.slice(0, 6).join(", ")}] -> [${ids.slice(6).join(", ")}] ` +
      `(${(performance.now() - t0).toFixed(0)} ms)`,
  );
  model.dispose();
}

if (import.meta.main) {
  // The usage follows the command line's errors only, not the demo's (model loading, GPU).
  let options: DemoOptions | null = null;
  try {
    options = parseDemoArgs(Deno.args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    console.error(USAGE);
    Deno.exit(1);
  }
  try {
    if (options !== null) await runDemo(options);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
