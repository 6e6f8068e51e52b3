/**
 * A train backend whose generation merges adapters as the RL run decided (`rl.mergeAdapters`, or
 * off when the GPU memory budget says so), for the calls that do not pass the choice themselves:
 * the held-out evaluation.
 *
 * @module
 */
import type { TrainBackend } from "../backend.ts";

/**
 * `backend` with every `generate` call given `mergeAdapters: merge` (unless the call sets it);
 * `backend` itself when `merge` is undefined (the backend's own choice, `rl.mergeAdapters: auto`).
 * The other methods are `backend`'s, bound.
 *
 * @param backend The train backend.
 * @param merge Whether generation merges the adapters; undefined to leave it to the backend.
 * @returns The backend to generate with.
 *
 * @example Evaluate without merging
 * ```ts ignore
 * import { withMergeAdapters } from "./merge_adapters_view.ts";
 * declare const backend: import("../backend.ts").TrainBackend;
 * const evalBackend = withMergeAdapters(backend, false);
 * ```
 */
export function withMergeAdapters(
  backend: TrainBackend,
  merge: boolean | undefined,
): TrainBackend {
  if (merge === undefined) return backend;
  return {
    kind: backend.kind,
    mode: backend.mode,
    model: backend.model,
    params: backend.params,
    forward: (input, options) => backend.forward(input, options),
    lossAndGrads: (input, loss, options) => backend.lossAndGrads(input, loss, options),
    objectiveAndGrads: (input, request, options) =>
      backend.objectiveAndGrads(input, request, options),
    generate: (options) =>
      backend.generate({ ...options, mergeAdapters: options.mergeAdapters ?? merge }),
    setParams: (tree) => backend.setParams(tree),
    releaseWorkspaces: () => backend.releaseWorkspaces?.(),
    dispose: () => backend.dispose(),
  };
}
