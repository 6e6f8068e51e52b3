import { ok, strictEqual, throws } from "node:assert/strict";
import { anchorPosition } from "./anchor_position.ts";

// "The answer is \boxed{42}." as tokens:
//   0 "The" [0, 3), 1 " answer" [3, 10), 2 " is" [10, 13), 3 " \" [13, 15), 4 "boxed" [15, 20),
//   5 "{42}" [20, 24), 6 "." [24, 25)
const tokenOffsets = [0, 3, 10, 13, 15, 20, 24];
const inside = 14; // "\boxed{" starts at 14, inside token 3 " \"
const boundary = 13; // a marker starting exactly where token 3 starts

Deno.test("anchorPosition() before-marker (default) is the token before the marker's token", () => {
  strictEqual(anchorPosition({ tokenOffsets, markerOffset: inside }), 2);
  strictEqual(anchorPosition({ tokenOffsets, markerOffset: boundary }), 2);
  // One character earlier the marker's token is token 2.
  strictEqual(anchorPosition({ tokenOffsets, markerOffset: boundary - 1 }), 1);
});

Deno.test("anchorPosition() marker is the token containing the marker", () => {
  const at = (markerOffset: number) =>
    anchorPosition({ tokenOffsets, markerOffset, position: "marker" });
  strictEqual(at(inside), 3);
  strictEqual(at(boundary), 3);
  strictEqual(at(12), 2);
  strictEqual(at(24), 6);
  strictEqual(at(99), 6); // past the last start: the last token
});

Deno.test("anchorPosition() last is the last response token, marker or not", () => {
  strictEqual(anchorPosition({ tokenOffsets, markerOffset: inside, position: "last" }), 6);
  strictEqual(anchorPosition({ tokenOffsets, position: "last" }), 6);
  strictEqual(anchorPosition({ tokenOffsets: [], position: "last" }), -1);
});

Deno.test("anchorPosition() random is seeded, reproducible and in [0, t*)", () => {
  const seen = new Set<number>();
  for (let seed = 0; seed < 200; seed++) {
    const options = { tokenOffsets, markerOffset: inside, position: "random" as const, seed };
    const r = anchorPosition(options);
    ok(Number.isInteger(r) && r >= 0 && r < 3, `seed ${seed}: ${r}`);
    strictEqual(anchorPosition(options), r, `seed ${seed} reproducible`);
    seen.add(r);
  }
  strictEqual(seen.size, 3, "all of 0, 1, 2 drawn over 200 seeds");
  // Negative seeds are allowed and differ from their absolute value somewhere.
  const draws = (sign: number) =>
    Array.from({ length: 20 }, (_, s) =>
      anchorPosition({
        tokenOffsets: Array.from({ length: 100 }, (_, i) => i),
        markerOffset: 99,
        position: "random",
        seed: sign * (s + 1),
      }));
  ok(draws(1).join() !== draws(-1).join());
  throws(() => anchorPosition({ tokenOffsets, markerOffset: inside, position: "random" }), {
    name: "RangeError",
    message: /option "seed" must be an integer for position "random": current value is undefined/,
  });
});

Deno.test("anchorPosition() with the marker in the first token", () => {
  for (const markerOffset of [0, 2]) {
    strictEqual(anchorPosition({ tokenOffsets, markerOffset }), -1);
    strictEqual(anchorPosition({ tokenOffsets, markerOffset, position: "marker" }), 0);
    strictEqual(anchorPosition({ tokenOffsets, markerOffset, position: "random", seed: 1 }), -1);
  }
});

Deno.test("anchorPosition() without a marker gives −1 (but for last)", () => {
  for (const markerOffset of [undefined, -1]) {
    for (const position of ["before-marker", "marker", "random"] as const) {
      strictEqual(anchorPosition({ tokenOffsets, markerOffset, position, seed: 3 }), -1);
    }
  }
  // A marker before the first token's start is no token's either.
  strictEqual(anchorPosition({ tokenOffsets: [5, 8], markerOffset: 2, position: "marker" }), -1);
  strictEqual(anchorPosition({ tokenOffsets: [], markerOffset: 0 }), -1);
});

Deno.test("anchorPosition() skips tokens with an empty span", () => {
  // Token 1 decodes to nothing (a partial UTF-8 sequence): tokens 1 and 2 both start at 3; the
  // character at 3 belongs to token 2.
  const offsets = [0, 3, 3, 6];
  strictEqual(anchorPosition({ tokenOffsets: offsets, markerOffset: 3, position: "marker" }), 2);
  strictEqual(anchorPosition({ tokenOffsets: offsets, markerOffset: 3 }), 1);
});

Deno.test("anchorPosition() names the wrong input", () => {
  throws(() => anchorPosition({ tokenOffsets: [0, 5, 4] }), {
    name: "RangeError",
    message: /"tokenOffsets" must not decrease: "tokenOffsets\[2\]" is 4 after 5/,
  });
  throws(() => anchorPosition({ tokenOffsets: [0, 1.5] }), {
    message: /"tokenOffsets\[1\]" must be an integer ≥ 0: current value is 1.5/,
  });
  throws(() => anchorPosition({ tokenOffsets, markerOffset: -2 }), {
    message: /option "markerOffset" must be −1 or an integer ≥ 0: current value is -2/,
  });
  throws(
    // deno-lint-ignore no-explicit-any
    () => anchorPosition({ tokenOffsets, position: "first" as any }),
    { name: "TypeError", message: /option "position" must be one of .*: current value is "first"/ },
  );
});
