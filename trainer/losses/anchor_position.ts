/**
 * Where the Hidden-Align anchor sits in a response: the token before the graded answer marker
 * (the paper's choice) or one of the ablation's alternatives.
 *
 * @module
 */
import { mixNumber, mulberry32 } from "../../model/_random.ts";
import { checkName, describe } from "./_validate.ts";

/**
 * The anchor positions of the paper's ablation: `"before-marker"` (default), `"marker"`,
 * `"last"`, `"random"`.
 *
 * @example The default
 * ```ts
 * import type { AnchorPositionName } from "./anchor_position.ts";
 * const position: AnchorPositionName = "before-marker";
 * console.log(position);
 * ```
 */
export type AnchorPositionName = "before-marker" | "marker" | "last" | "random";

/**
 * Every {@linkcode AnchorPositionName}.
 *
 * @example List them
 * ```ts
 * import { ANCHOR_POSITIONS } from "./anchor_position.ts";
 * console.log(ANCHOR_POSITIONS.includes("random")); // true
 * ```
 */
export const ANCHOR_POSITIONS: readonly AnchorPositionName[] = [
  "before-marker",
  "marker",
  "last",
  "random",
];

/**
 * Options of {@linkcode anchorPosition}.
 *
 * @example Three response tokens "The", " answer", " \boxed{4}"
 * ```ts
 * import type { AnchorPositionOptions } from "./anchor_position.ts";
 * const options: AnchorPositionOptions = { tokenOffsets: [0, 3, 10], markerOffset: 11 };
 * ```
 */
export interface AnchorPositionOptions {
  /**
   * Character offset in the decoded response where each response token starts (non-decreasing,
   * integers ≥ 0), from the generated token ids: token t spans `[tokenOffsets[t],
   * tokenOffsets[t + 1])`, the last one to the end of the text.
   */
  tokenOffsets: ArrayLike<number>;
  /**
   * The verifier's character offset of the graded answer marker (`\boxed{`, `Answer:`) in the
   * same decoded response; −1 or undefined when there is none.
   */
  markerOffset?: number;
  /** Which position; default `"before-marker"`. */
  position?: AnchorPositionName;
  /** Seed of `"random"` (required there): the same seed gives the same position. */
  seed?: number;
}

const WHERE = "Cannot compute the anchor position";

/**
 * The response-token index of the anchor, or −1 for none. With `t*` the token whose span
 * contains `markerOffset` (the last token starting at or before it; an empty-span token is
 * skipped for the next one):
 * - `"before-marker"`: `t* − 1` (−1 when `t* = 0`);
 * - `"marker"`: `t*`;
 * - `"last"`: the last response token (whether or not there is a marker);
 * - `"random"`: a seeded uniform index in `[0, t*)` (−1 when `t* = 0`), the control.
 *
 * No marker (or a marker before the first token) gives −1 for all but `"last"`; no token gives
 * −1 always. Works on offsets from the generated ids: nothing is re-tokenised.
 *
 * @param options Token offsets, marker offset, position and seed.
 * @returns An index into the response tokens, or −1.
 * @throws {RangeError} When an offset is not an integer ≥ 0, offsets decrease, `markerOffset`
 *   is not an integer ≥ −1, or `"random"` has no integer seed.
 * @throws {TypeError} On an unknown position.
 *
 * @example Anchors around the marker of "x = \boxed{4}"
 * ```ts
 * import { anchorPosition } from "./anchor_position.ts";
 * // Tokens: "x" [0, 1), " =" [1, 3), " \" [3, 5), "boxed" [5, 10), "{4}" [10, 13)
 * const tokenOffsets = [0, 1, 3, 5, 10];
 * const markerOffset = 4; // where "\boxed{" starts: inside token 2
 * console.log(anchorPosition({ tokenOffsets, markerOffset })); // 1
 * console.log(anchorPosition({ tokenOffsets, markerOffset, position: "marker" })); // 2
 * console.log(anchorPosition({ tokenOffsets, markerOffset, position: "last" })); // 4
 * const r = anchorPosition({ tokenOffsets, markerOffset, position: "random", seed: 7 });
 * console.log(r === 0 || r === 1); // true
 * ```
 */
export function anchorPosition(options: AnchorPositionOptions): number {
  const { tokenOffsets, seed } = options;
  const position = checkName(
    WHERE,
    "position",
    options.position ?? "before-marker",
    ANCHOR_POSITIONS,
  );
  if (tokenOffsets === undefined || typeof tokenOffsets.length !== "number") {
    throw new TypeError(
      `${WHERE}: "tokenOffsets" must be an array of character offsets: current value is ` +
        `${describe(tokenOffsets)}`,
    );
  }
  const n = tokenOffsets.length;
  for (let t = 0; t < n; t++) {
    const o = tokenOffsets[t];
    if (!Number.isInteger(o) || o < 0) {
      throw new RangeError(
        `${WHERE}: "tokenOffsets[${t}]" must be an integer ≥ 0: current value is ${describe(o)}`,
      );
    }
    if (t > 0 && o < tokenOffsets[t - 1]) {
      throw new RangeError(
        `${WHERE}: "tokenOffsets" must not decrease: "tokenOffsets[${t}]" is ${o} after ` +
          `${tokenOffsets[t - 1]}`,
      );
    }
  }
  const marker = options.markerOffset ?? -1;
  if (!Number.isInteger(marker) || marker < -1) {
    throw new RangeError(
      `${WHERE}: option "markerOffset" must be −1 or an integer ≥ 0: current value is ` +
        `${describe(marker)}`,
    );
  }
  if (position === "random" && !Number.isSafeInteger(seed)) {
    throw new RangeError(
      `${WHERE}: option "seed" must be an integer for position "random": current value is ` +
        `${describe(seed)}`,
    );
  }
  if (n === 0) return -1;
  if (position === "last") return n - 1;
  if (marker < 0 || marker < tokenOffsets[0]) return -1;
  // t* = the last token starting at or before the marker (binary search).
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tokenOffsets[mid] <= marker) lo = mid;
    else hi = mid - 1;
  }
  const tStar = lo;
  switch (position) {
    case "marker":
      return tStar;
    case "before-marker":
      return tStar - 1;
    case "random": {
      if (tStar === 0) return -1;
      // A non-negative hash of the seed (negative seeds allowed), then one mulberry32 draw.
      const state = mixNumber(0x9e3779b9, Math.abs(seed!) * 2 + (seed! < 0 ? 1 : 0));
      return Math.floor(mulberry32(state)() * tStar);
    }
  }
}
