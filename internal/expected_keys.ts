/**
 * The "expected one of …" part of an error about an unknown key, with a suggestion when a known
 * key is close.
 *
 * @module
 */

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length];
}

/**
 * `expected one of "a", "b" (did you mean "c"?)` for an unknown key among `known`: the suggestion
 * is the nearest known key by edit distance (case-insensitive), when it is near enough.
 *
 * @param key The unknown key.
 * @param known The keys allowed there.
 * @returns The text.
 *
 * @example Suggest a key
 * ```ts
 * import { expectedKeys } from "./expected_keys.ts";
 * console.log(expectedKeys("lrr", ["lr", "steps"])); // expected one of "lr", "steps" (did you mean "lr"?)
 * ```
 */
export function expectedKeys(key: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const hint = best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 3))
    ? ` (did you mean "${best}"?)`
    : "";
  return `expected one of ${known.map((k) => `"${k}"`).join(", ")}${hint}`;
}
