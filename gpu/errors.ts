/**
 * The errors halo raises for what the WebGPU device reports (out of memory, device lost,
 * validation errors) and the formatting of the device's collected error messages.
 *
 * @module
 */

/**
 * Joins the device's collected error messages for one error: duplicates are merged into the
 * first with a count (`… (×12)`), at most `max` distinct messages are shown, and the rest is
 * summarised as `and N more (K distinct)`, so thousands of follow-up "… is invalid" errors of
 * one broken buffer do not bury the first.
 *
 * @param messages The messages, oldest first (e.g. `gpu.errors`).
 * @param max Distinct messages to show; default 5.
 * @returns The messages joined by `"; "`, or `""` for none.
 *
 * @example Repeated errors collapse
 * ```ts
 * import { formatGpuErrors } from "./errors.ts";
 * console.log(formatGpuErrors(["a", "b", "a", "a"])); // "a (×3); b"
 * ```
 */
export function formatGpuErrors(messages: readonly string[], max = 5): string {
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m, (counts.get(m) ?? 0) + 1);
  const distinct = [...counts];
  const shown = distinct.slice(0, max).map(([m, n]) => n > 1 ? `${m} (×${n})` : m);
  const rest = distinct.slice(max);
  if (rest.length > 0) {
    const more = rest.reduce((sum, [, n]) => sum + n, 0);
    shown.push(`and ${more} more (${rest.length} distinct)`);
  }
  return shown.join("; ");
}
