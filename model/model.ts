/**
 * The interface every Qwen3 backend implements.
 *
 * @module
 */
import type { Qwen3Config } from "./config.ts";
import type { ForwardInput } from "./forward_input.ts";

/** Output of {@linkcode Qwen3Model.forward}. */
export interface ForwardOutput {
  /** Logits `[batch, seqLen, vocab]`, row-major. */
  logits: Float32Array;
  /**
   * With `outputHiddenStates`: `numHiddenLayers + 1` arrays `[batch, seqLen, hidden]` as HF's
   * `hidden_states`: the embeddings, the output of layers 0 .. L−2, and last the final-norm output
   * of the last layer (HF's `hidden_states[-1]`).
   */
  hiddenStates?: Float32Array[];
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/** Output of {@linkcode Qwen3Model.tokenLogprobs}. */
export interface TokenLogprobsOutput {
  /**
   * `[batch, seqLen − 1]`: log p(inputIds[b][t+1] | inputIds[b][..t]); 0 where that target is
   * masked out.
   */
  logprobs: Float32Array;
  /**
   * `[batch, seqLen − 1]`: the entropy `−Σ_v p_v log p_v` of the next-token distribution at each
   * of those positions (0 where the target is masked out), from the same log-softmax pass.
   */
  entropy: Float32Array;
  /** With `outputHiddenStates`: the final-norm hidden states `[batch, seqLen, hidden]`. */
  lastHidden?: Float32Array;
  /** Number of sequences. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
}

/** Which implementation runs the model math. */
export type Backend = "webgpu" | "cpu";

/** A loaded Qwen3 causal language model. */
export interface Qwen3Model {
  /** The parsed `config.json`. */
  readonly config: Qwen3Config;
  /** The backend running it. */
  readonly backend: Backend;
  /** Where it runs, e.g. the WebGPU adapter's description. */
  readonly device: string;
  /**
   * Runs the model over a batch.
   *
   * @param input Token ids, optional attention mask, whether to return hidden states.
   * @returns Logits (and hidden states).
   */
  forward(input: ForwardInput): Promise<ForwardOutput>;
  /**
   * Log-probability of each next token (the RL trainer's per-token log-probs), without reading
   * the logits back.
   *
   * @param input Token ids and optional attention mask; `outputHiddenStates` adds `lastHidden`.
   * @returns `[batch, seqLen − 1]` log-probs.
   */
  tokenLogprobs(input: ForwardInput): Promise<TokenLogprobsOutput>;
  /** Frees device memory; the model cannot be used afterwards. */
  dispose(): void;
}
